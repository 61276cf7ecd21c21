"""Materialization: the materializer, its background jobs, and Feast's own materialize path."""
