"""The service's settings: one class, read from ``FEASTLINE_*`` environment variables.

``feature_store.yaml`` in the repo stays the single truth for Feast's own configuration (online
and offline stores, registry); these settings only say where things are.
"""

from datetime import UTC, datetime
from pathlib import Path

from pydantic import field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="FEASTLINE_")

    repo: Path = Path("feature_repo")
    """The Feast repo served (a folder with ``feature_store.yaml``)."""
    lineage_url: str | None = None
    """SQLAlchemy URL of the lineage database; default ``sqlite:///<repo>/data/lineage.db``."""
    training_sets_dir: Path | None = None
    """Where training sets are stored as Parquet; default ``<repo>/data/training_sets``."""
    max_json_rows: int = 50_000
    """Largest training set answered as JSON rows (bigger ones: ask for Parquet)."""
    now: datetime | None = None
    """Pin the service clock (ISO 8601 with offset, e.g. ``2013-12-31T00:00:00Z``) for replays; default wall time."""
    retry_after_seconds: int = 5
    """``Retry-After`` sent with a 503 when the online store is unreachable."""
    openlineage_url: str | None = None
    """Base URL of an OpenLineage consumer; events are also POSTed to ``<url>/api/v1/lineage``."""

    @field_validator("now")
    @classmethod
    def _aware(cls, value: datetime | None) -> datetime | None:
        if value is not None and value.tzinfo is None:
            raise ValueError("FEASTLINE_NOW needs a timezone: end it with Z or an offset")
        return value.astimezone(UTC) if value is not None else None

    @property
    def repo_path(self) -> Path:
        return self.repo.resolve()

    @property
    def data_dir(self) -> Path:
        return self.repo_path / "data"

    @property
    def lineage_database_url(self) -> str:
        return self.lineage_url or f"sqlite:///{self.data_dir / 'lineage.db'}"

    @property
    def training_sets_path(self) -> Path:
        return (self.training_sets_dir or self.data_dir / "training_sets").resolve()
