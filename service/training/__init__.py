"""Training sets: entity-row validation, creation, catalog, reproduction, and the offline engine."""
