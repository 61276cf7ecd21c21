"""Feature monitoring (issue #12)."""
