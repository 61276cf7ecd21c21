"""The service's settings: one class, read from ``FEASTLINE_*`` environment variables.

``feature_store.yaml`` in the repo stays the single truth for Feast's own configuration (online
and offline stores, registry); these settings only say where things are.
"""

from datetime import UTC, datetime
from pathlib import Path
from typing import Literal

from pydantic import Field, field_validator
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

    offline_engine: Literal["duckdb", "spark"] = "duckdb"
    """Which engine joins training sets: DuckDB in process, or Spark (needs ``pip install 'feastline[spark]'``
    and Java 17+); both give the same answer (service/training/offline/spark_engine.py)."""
    spark_master: str = "local[*]"
    """The Spark master the Spark engine's session is built on, the first time it joins (e.g.
    ``spark://host:7077``; the sources' paths must be readable there)."""

    # -- limits and worker pools (service/limits.py, service/workers.py) --
    max_body_bytes: int = Field(1 << 20, ge=0)
    """Largest request body of a route not listed below (413 beyond)."""
    max_online_body_bytes: int = Field(2 << 20, ge=0)
    """Largest body of ``POST /get-online-features``."""
    max_push_body_bytes: int = Field(8 << 20, ge=0)
    """Largest body of ``POST /push`` (JSON)."""
    max_training_set_json_bytes: int = Field(8 << 20, ge=0)
    """Largest JSON body of ``POST /training-sets`` (bigger entity tables: send Parquet or Arrow)."""
    max_training_set_table_bytes: int = Field(1 << 30, ge=0)
    """Largest Parquet or Arrow body of ``POST /training-sets``."""
    max_online_entities: int = Field(10_000, ge=1)
    """Most entities in one online read (413 beyond)."""
    body_timeout_seconds: float = Field(15.0, gt=0)
    """Longest wait for the next part of a request body (408 after it)."""
    store_timeout_seconds: float = Field(5.0, gt=0)
    """Longest an online read waits for the online store (503 with ``Retry-After`` after it)."""
    online_workers: int = Field(8, ge=1)
    """Threads for online reads."""
    online_queue: int = Field(64, ge=0)
    """Online reads that may wait for a thread; one more is a 503 with ``Retry-After``."""
    workers: int = Field(8, ge=1)
    """Threads for every other blocking request step (pushes, training sets, lineage, ...)."""
    work_queue: int = Field(32, ge=0)
    """Requests that may wait for one of those threads; one more is a 503 with ``Retry-After``."""
    queue_timeout_seconds: float = Field(10.0, gt=0)
    """Longest a request waits for a worker thread before a 503 (it was not started)."""

    # -- online feature logging (service/monitoring/online_log.py) --
    online_log_enabled: bool = True
    """Log online reads at all (false: nothing is logged, whatever the feature services' tags say)."""
    online_log_dir: Path | None = None
    """Where served online features are logged as Parquet partitions; default ``<repo>/data/online_log``."""
    online_log_retention_hours: float = Field(168.0, ge=0)
    """Hour partitions older than this at the service clock are deleted (0: keep every partition)."""
    online_log_queue: int = Field(100_000, ge=1)
    """Logged requests that may wait for the background writer; past it records are dropped (counted)."""
    online_log_flush_seconds: float = Field(1.0, gt=0)
    """Longest a logged request waits in memory before the writer flushes it to Parquet."""
    online_log_sample_rate: float = Field(0.0, ge=0, le=1)
    """Sampling rate of a feature service without the ``feastline.log_sample_rate`` tag (0: not logged)."""

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
    def online_log_path(self) -> Path:
        return (self.online_log_dir or self.data_dir / "online_log").resolve()

    @property
    def training_sets_path(self) -> Path:
        return (self.training_sets_dir or self.data_dir / "training_sets").resolve()
