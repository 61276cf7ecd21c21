"""The Feast registry as feastline reads and writes it: immutable snapshots, atomic replacement.

Feast's file registry store (``feast.infra.registry.file.FileRegistryStore``) rewrites
``registry.db`` in place (truncate, then write), and Feast's ``Registry`` re-reads the file whenever
its modification time moved. A request reading it while a materialization job committed its
intervals parsed a truncated file (``DecodeError``: 500) or a partial one (a push source or feature
service missing: 404, a view's features missing: valid push rows refused with 422). Here:

- **writes** go through :class:`AtomicFileRegistryStore`: the new registry is written to a temporary
  file in the same folder, fsynced and renamed over ``registry.db`` (then the folder is fsynced), so a
  reader opens either the old file or the new one, never a mix. Every registry write feastline causes
  uses it: materialization intervals (the registry of :func:`open_feature_store`), and ``feastline
  apply``, whose ``feast apply`` runs as :func:`feast_cli` (Feast's own CLI with this store). A
  read-modify-write of the registry (intervals, apply) holds :func:`registry_lock`, an advisory lock
  file next to it, so two processes committing never lose each other's changes.
- **reads** go through :class:`SnapshotRegistry`: one parsed :class:`RegistrySnapshot` per version of
  the file (a version is identified by inode, size, modification and change times, checked with one
  ``stat`` per registry access), swapped by a single reference assignment when the file changes. A
  snapshot is never modified: a write works on a private copy and lands in the file, and the file is
  read back as the next snapshot. A file written in place by another tool (Feast's own ``feast
  apply``) is taken only once it was stable over a whole read and parses; until then the previous
  snapshot keeps being served.

Only a local file registry (Feast's default) is handled this way; any other registry type is
Feast's own, unchanged.
"""

import contextlib
import fcntl
import logging
import os
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from feast import FeatureStore
from feast.infra.registry.file import FileRegistryStore
from feast.infra.registry.registry import REGISTRY_STORE_CLASS_FOR_TYPE, Registry
from feast.permissions.auth_model import AuthConfig, NoAuthConfig
from feast.protos.feast.core.Registry_pb2 import Registry as RegistryProto
from feast.repo_config import RegistryConfig
from feast.utils import _utc_now
from google.protobuf.message import DecodeError

log = logging.getLogger("feastline.registry")

ATOMIC_STORE = "service.registry.AtomicFileRegistryStore"
READ_ATTEMPTS = 25
READ_PAUSE_SECONDS = 0.01  # a file written in place is retried for up to ~0.25 s before the old snapshot is kept

FileKey = tuple[int, int, int, int, int]
"""``(device, inode, size, mtime ns, ctime ns)``: one version of the registry file."""


class RegistryUnreadable(Exception):
    """The registry file did not hold still long enough to be read whole, or does not parse."""

    def __init__(self, path: Path, reason: str):
        self.path, self.reason = path, reason
        super().__init__(f"registry {path.name} could not be read consistently: {reason}")


@dataclass(frozen=True)
class RegistrySnapshot:
    """One version of the registry file, parsed: ``proto`` must not be modified (readers share it)."""

    key: FileKey | None
    proto: RegistryProto


def _key(st: os.stat_result) -> FileKey:
    return (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)


def write_atomically(path: Path, data: bytes) -> None:
    """Replace ``path`` with ``data``: a temporary file in the same folder, fsynced, renamed over it, the
    folder fsynced. A reader sees the old content or the new one; a crash leaves one of them."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")
    try:
        with open(tmp, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    folder = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(folder)
    finally:
        os.close(folder)


class AtomicFileRegistryStore(FileRegistryStore):
    """Feast's local file registry store, written by rename and read only when consistent.

    Set as ``registry_store_type`` by :class:`SnapshotRegistry` (and by :func:`feast_cli` for Feast's
    CLI); the file format is Feast's, so Feast reads what it writes.
    """

    def __init__(self, registry_config: RegistryConfig, repo_path: Path):
        super().__init__(registry_config, repo_path)
        self.path = Path(self._filepath)
        self.last_key: FileKey | None = None  # the version the last read (or write) saw

    def identity(self) -> FileKey | None:
        """The current version of the file (one ``stat``), or None if there is none."""
        try:
            return _key(os.stat(self.path))
        except FileNotFoundError:
            return None

    def read(self) -> RegistrySnapshot:
        """The file, read whole while it held still (same version before, during and after the read), parsed.

        Raises:
            FileNotFoundError: there is no registry file (Feast's own message: run ``feast apply``).
            RegistryUnreadable: it kept changing, or it does not parse, for ``READ_ATTEMPTS`` reads.
        """
        reason = "unknown"
        for _ in range(READ_ATTEMPTS):
            try:
                with open(self.path, "rb") as f:
                    before = _key(os.fstat(f.fileno()))
                    data = f.read()
                    after = _key(os.fstat(f.fileno()))
                now = self.identity()
            except FileNotFoundError:
                raise FileNotFoundError(
                    f'Registry not found at path "{self.path}". Have you run "feast apply"?'
                ) from None
            if before != after or before != now or len(data) != before[2]:
                reason = "it changed while being read (written in place by another program?)"
            elif not data:
                reason = "it is empty (being written in place?)"
            else:
                proto = RegistryProto()
                try:
                    proto.ParseFromString(data)
                except DecodeError as exc:
                    reason = f"it does not parse ({exc})"
                else:
                    self.last_key = before
                    return RegistrySnapshot(before, proto)
            time.sleep(READ_PAUSE_SECONDS)
        raise RegistryUnreadable(self.path, reason)

    def get_registry_proto(self) -> RegistryProto:
        return self.read().proto

    def _write_registry(self, registry_proto: RegistryProto) -> None:
        """Feast's write (a new ``version_id``, ``last_updated`` now), on a copy and by rename."""
        proto = RegistryProto()
        proto.CopyFrom(registry_proto)  # the caller's proto may be a snapshot other threads read
        proto.version_id = str(uuid.uuid4())
        proto.last_updated.FromDatetime(_utc_now())
        write_atomically(self.path, proto.SerializeToString())
        self.last_key = None


_held = threading.local()


@contextlib.contextmanager
def registry_lock(registry_path: Path) -> Iterator[None]:
    """Hold the advisory lock of the registry at ``registry_path`` (``<name>.lock`` beside it) for a
    read-modify-write. Blocks until other processes (and threads) release it; re-entrant in a thread."""
    lock_path = Path(registry_path).with_name(Path(registry_path).name + ".lock")
    depth: dict[str, int] = _held.__dict__.setdefault("depth", {})
    key = str(lock_path)
    if depth.get(key):
        depth[key] += 1
        try:
            yield
        finally:
            depth[key] -= 1
        return
    lock_path.parent.mkdir(parents=True, exist_ok=True)
    with open(lock_path, "a+b") as f:
        fcntl.flock(f.fileno(), fcntl.LOCK_EX)
        depth[key] = 1
        try:
            yield
        finally:
            depth[key] = 0
            fcntl.flock(f.fileno(), fcntl.LOCK_UN)


class SnapshotRegistry(Registry):
    """Feast's file ``Registry``, read from immutable snapshots (see the module docstring).

    Every read (``list_feature_views``, ``get_feature_service``, ...) takes the current snapshot: one
    ``stat`` of the file, and a new parse only when the file is a new version. Writes (``apply_*``)
    change a private copy (``cached_registry_proto``) and :meth:`commit` writes it atomically, then
    reads the file back as the new snapshot. :meth:`apply_materialization` holds :func:`registry_lock`
    and starts from the file's latest version, so concurrent committers do not lose intervals.
    """

    _registry_store: AtomicFileRegistryStore

    def __init__(
        self,
        project: str,
        registry_config: RegistryConfig,
        repo_path: Path,
        auth_config: AuthConfig | None = None,
    ):
        self._snapshot: RegistrySnapshot | None = None
        self._failed_key: FileKey | None = None
        config = registry_config.model_copy(update={"registry_store_type": ATOMIC_STORE})
        super().__init__(project, config, repo_path, auth_config or NoAuthConfig())
        # Feast's __init__ read the file once through the atomic store (or created an empty one)
        self._snapshot = RegistrySnapshot(self._registry_store.last_key, self.cached_registry_proto)

    @property
    def path(self) -> Path:
        return self._registry_store.path

    def snapshot(self) -> RegistrySnapshot:
        """The registry as the file holds it now (the last consistent version, if the current one is being
        written in place). Cheap when unchanged: one ``stat``.

        Raises:
            FileNotFoundError, RegistryUnreadable: no snapshot could ever be read.
        """
        current = self._snapshot
        if current is not None and current.key is not None and self._registry_store.identity() == current.key:
            return current
        with self._refresh_lock:
            current = self._snapshot
            key = self._registry_store.identity()
            if current is not None and (key == current.key or (key is not None and key == self._failed_key)):
                return current
            try:
                fresh = self._registry_store.read()
            except (FileNotFoundError, RegistryUnreadable) as exc:
                if current is None:
                    raise
                self._failed_key = key
                log.warning("%s; still serving the registry as last read", exc)
                return current
            self._install(fresh)
            return fresh

    def _install(self, fresh: RegistrySnapshot) -> None:
        """Publish ``fresh`` (one reference assignment); keep a pending private copy if a write is under way."""
        previous = self._snapshot
        pending = previous is not None and self.cached_registry_proto is not previous.proto
        self._snapshot = fresh
        if not pending:
            self.cached_registry_proto = fresh.proto
        self.cached_registry_proto_created = _utc_now()
        cache = getattr(self, "_feature_service_cache", None)  # FeatureStore's, keyed on the old definitions
        if isinstance(cache, dict):
            cache.clear()

    def _get_registry_proto(self, project: str | None, allow_cache: bool = False) -> RegistryProto:
        """The current snapshot's proto (``allow_cache`` no longer matters: every access checks the file)."""
        return self.snapshot().proto

    def refresh(self, project: str | None = None) -> None:
        self.snapshot()

    def _prepare_registry_for_changes(self, project_name: str) -> RegistryProto:
        """Feast's preparation, on a private copy of the snapshot (never the proto readers share)."""
        snapshot = self.snapshot()
        if self.cached_registry_proto is snapshot.proto:
            private = RegistryProto()
            private.CopyFrom(snapshot.proto)
            self.cached_registry_proto = private
        return super()._prepare_registry_for_changes(project_name)

    def commit(self) -> None:
        """Write the pending registry atomically, then read it back as the current snapshot."""
        super().commit()
        with self._refresh_lock:
            fresh = self._registry_store.read()
            self._snapshot = None  # nothing pending any more: _install publishes the file's version
            self._install(fresh)

    def apply_materialization(
        self,
        feature_view: Any,
        project: str,
        start_date: datetime,
        end_date: datetime,
        commit: bool = True,
    ) -> None:
        """Feast's ``apply_materialization`` under :func:`registry_lock`, on the file's latest version."""
        with registry_lock(self.path):
            self.snapshot()
            super().apply_materialization(feature_view, project, start_date, end_date, commit=commit)


def is_local_file_registry(config: RegistryConfig) -> bool:
    path = str(config.path)
    scheme = urlparse(path).scheme
    local = scheme in ("", "file") or (len(scheme) == 1 and path[1:3] in (":\\", ":/"))
    return config.registry_type == "file" and config.registry_store_type in (None, ATOMIC_STORE) and local


class SnapshotFeatureStore(FeatureStore):
    """A ``FeatureStore`` whose local file registry is a :class:`SnapshotRegistry` (other registries: Feast's)."""

    def _create_registry(self) -> Any:
        config = self.config.registry
        if not is_local_file_registry(config):
            return super()._create_registry()
        return SnapshotRegistry(self.config.project, config, Path(self.repo_path), self.config.auth_config)


def open_feature_store(repo: Path | str) -> FeatureStore:
    """The Feast store of ``repo`` (a folder with ``feature_store.yaml``), its registry read from snapshots
    and written atomically. Use it wherever feastline serves or materializes."""
    return SnapshotFeatureStore(repo_path=str(repo))


def feast_cli() -> None:
    """Feast's own CLI (``feast ...``; exits as it does), with every local file registry written by
    :class:`AtomicFileRegistryStore`. ``feastline apply`` runs ``feast apply`` this way:
    ``python -m service.registry -c <repo> apply``."""
    REGISTRY_STORE_CLASS_FOR_TYPE["FileRegistryStore"] = ATOMIC_STORE
    from feast.cli.cli import cli

    cli(prog_name="feast")


if __name__ == "__main__":
    from service.registry import feast_cli as main  # the importable module (Feast imports the store from it)

    main()
