"""``feastline apply``: check a Feast repo against what feastline serves, then apply it atomically.

What feastline serves (everything else is refused before Feast's registry changes, with a message
naming the object):

- batch sources: ``FileSource`` over local Parquet: one file, a directory of Parquet files (read
  recursively) or a glob; a ``PushSource`` or a stream source (``KafkaSource``, ``KinesisSource``)
  over such a batch source; ``RequestSource`` for on-demand views. A push source whose batch source
  is a glob is refused (a push to offline would not know where to write: give a directory instead,
  where each push to offline adds one file);
- entity join keys of Feast's key types: ``String``, ``Bytes``, ``Int32``, ``Int64``, ``UnixTimestamp``.

Atomic: the registry and the lineage version both change or neither does. The repo is parsed and
checked first (nothing written), then ``feast apply`` runs, then the registry as Feast wrote it
(entity columns inferred) is checked again and its lineage graph recorded; a failure after
``feast apply`` restores the previous registry file (or removes the one it created). Only a local
file registry can be restored this way (Feast's default; a SQL or remote registry is refused).
"""

import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterable
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from feast.value_type import ValueType

KEY_TYPES = (ValueType.STRING, ValueType.BYTES, ValueType.INT32, ValueType.INT64, ValueType.UNIX_TIMESTAMP)


class RepoRefused(Exception):
    """The repo uses something feastline cannot serve; ``problems`` lists each, naming the object."""

    def __init__(self, problems: list[str]):
        self.problems = problems
        super().__init__("feastline cannot serve this repo:\n  - " + "\n  - ".join(problems))


def _is_glob(path: str) -> bool:
    return any(c in path for c in "*?[")


def _file_problem(where: str, source: Any, pushed: bool = False) -> str | None:
    """Why ``source`` cannot be a batch source (None: it can)."""
    from feast import FileSource
    from feast.data_format import ParquetFormat

    if not isinstance(source, FileSource):
        kind = type(source).__name__
        return f"{where}: batch source {source.name!r} is a {kind}; feastline reads FileSource (Parquet) only"
    fmt = source.file_options.file_format
    if fmt is not None and not isinstance(fmt, ParquetFormat):
        return f"{where}: FileSource {source.name!r} is {type(fmt).__name__}; feastline reads Parquet only"
    parsed = urlparse(source.path)
    if parsed.scheme and parsed.scheme != "file":
        return f"{where}: FileSource {source.name!r} path {source.path!r} is remote; feastline reads local files only"
    if pushed and _is_glob(source.path):
        return (
            f"{where}: its batch source {source.name!r} is the glob {source.path!r}; a push to offline needs a "
            "file or a directory to write to"
        )
    return None


def source_problems(sources: Iterable[Any]) -> list[str]:
    """Problems of data sources (see the module docstring for what is served)."""
    from feast import FileSource, KafkaSource, KinesisSource, PushSource, RequestSource

    problems = []
    for ds in sources:
        where = f"data source {ds.name!r}"
        if isinstance(ds, RequestSource | FileSource):
            problem = None if isinstance(ds, RequestSource) else _file_problem(where, ds)
        elif isinstance(ds, PushSource | KafkaSource | KinesisSource):
            batch = ds.batch_source
            if batch is None:
                problem = f"{where}: a {type(ds).__name__} without a batch source has no offline data to serve"
            else:
                problem = _file_problem(where, batch, pushed=isinstance(ds, PushSource))
        else:
            kind = type(ds).__name__
            problem = f"{where} is a {kind}; feastline serves file (Parquet), push, stream and request sources"
        if problem:
            problems.append(problem)
    return problems


def key_problems(entities: Iterable[Any], views: Iterable[Any]) -> list[str]:
    """Entities and view join-key columns whose type Feast cannot key by (an unset entity type is
    inferred by Feast from the views' columns, checked here too)."""
    from feast.feature_view import DUMMY_ENTITY_ID

    allowed = ", ".join(t.name for t in KEY_TYPES)
    problems = [
        f"entity {e.name!r}: join key {e.join_key!r} is {e.value_type.name}; feastline keys by {allowed}"
        for e in entities
        if e.value_type not in (*KEY_TYPES, ValueType.UNKNOWN)
    ]
    for fv in views:
        for column in fv.entity_columns:
            value_type = column.dtype.to_value_type()
            if column.name != DUMMY_ENTITY_ID and value_type not in KEY_TYPES:
                problems.append(
                    f"feature view {fv.name!r}: join key {column.name!r} is {value_type.name}; "
                    f"feastline keys by {allowed}"
                )
    return problems


def check_contents(contents: Any) -> list[str]:
    """Problems of a parsed repo (Feast's ``RepoContents``) or of a registry-backed store's listings."""
    views = [*contents.feature_views, *contents.stream_feature_views]
    sources = list(contents.data_sources)
    sources += [fv.stream_source or fv.batch_source for fv in views if fv.batch_source is not None]
    return key_problems(contents.entities, views) + source_problems({id(s): s for s in sources}.values())


def check_store(store: Any) -> list[str]:
    """The same checks on what the registry holds (after ``feast apply``: entity columns inferred)."""
    views = [*store.list_feature_views(), *store.list_stream_feature_views()]
    sources = [*store.list_data_sources(), *(fv.stream_source or fv.batch_source for fv in views)]
    return key_problems(store.list_entities(), views) + source_problems({id(s): s for s in sources}.values())


def parse(repo: Path) -> Any:
    """The repo's definitions as Feast's ``parse_repo`` collects them (imports its files; writes nothing)."""
    from feast.repo_operations import parse_repo

    sys.path.insert(0, str(repo))
    cwd = os.getcwd()
    try:
        os.chdir(repo)
        return parse_repo(repo)
    finally:
        os.chdir(cwd)
        sys.path.remove(str(repo))


def registry_file(repo: Path) -> Path:
    """The local registry file of the repo's ``feature_store.yaml``.

    Raises:
        RepoRefused: the registry is not a local file (it could not be restored on a failed apply).
    """
    from feast.repo_config import load_repo_config

    config = load_repo_config(repo, repo / "feature_store.yaml")
    registry = config.registry
    path = str(registry.path)
    if getattr(registry, "registry_type", "file") != "file" or urlparse(path).scheme not in ("", "file"):
        problem = f"registry {path!r}: feastline apply needs a local file registry (it restores it on failure)"
        raise RepoRefused([problem])
    path = urlparse(path).path if path.startswith("file:") else path
    return Path(path) if Path(path).is_absolute() else repo / path


class RegistryBackup:
    """A copy of the registry file taken before ``feast apply``, put back by :meth:`restore`."""

    def __init__(self, path: Path):
        self.path = path
        self._dir = tempfile.mkdtemp(prefix="feastline-registry-")
        self._copy = Path(self._dir) / "registry.db" if path.exists() else None
        if self._copy is not None:
            shutil.copy2(path, self._copy)

    def restore(self) -> None:
        if self._copy is None:
            self.path.unlink(missing_ok=True)
        else:  # a new inode and ctime: readers (service.registry) see the restored version as a change
            tmp = self.path.with_name(self.path.name + ".feastline-restore")
            shutil.copy2(self._copy, tmp)
            tmp.replace(self.path)

    def discard(self) -> None:
        shutil.rmtree(self._dir, ignore_errors=True)


def feast_apply(repo: Path) -> int:
    """``feast -c repo apply`` in a subprocess (Feast's own type checks of the definitions); its exit code.

    Feast's CLI runs with the registry written atomically (``service.registry.feast_cli``: a temporary
    file renamed over ``registry.db``), so a server reading the registry meanwhile never parses half a file.
    """
    command = [sys.executable, "-m", "service.registry", "-c", str(repo), "apply"]
    return subprocess.run(command, check=False).returncode
