"""The service's settings: one class, read from ``FEASTLINE_*`` environment variables.

``feature_store.yaml`` in the repo stays the single truth for Feast's own configuration (online
and offline stores, registry); these settings only say where things are.
"""

from pathlib import Path

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
    """Largest training set answered as JSON rows (bigger ones: ask for Parquet, issue 3)."""

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
