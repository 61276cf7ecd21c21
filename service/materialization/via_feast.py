"""Materialization: load offline feature values into the online store through Feast.

Feast 0.67's DuckDB offline store reads a relative ``FileSource`` path against the *current
directory*, not the repo (``FileSource.get_uri_for_file_path`` is skipped on that code path), so a
materialization started elsewhere finds no files. We run Feast from inside the repo.
"""

import contextlib
from datetime import datetime
from pathlib import Path

from feast import FeatureStore


def materialize(repo: Path, start: datetime, end: datetime, views: list[str] | None = None) -> None:
    """Materialize ``views`` (default: all online views) for event times in ``[start, end)`` (UTC-aware)."""
    repo = Path(repo).resolve()
    with contextlib.chdir(repo):
        FeatureStore(repo_path=str(repo)).materialize(start, end, feature_views=views)
