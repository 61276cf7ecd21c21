"""feastline."""
