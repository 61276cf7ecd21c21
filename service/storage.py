"""Files written all or nothing, storage faults told apart, and the crash points of the fault test.

**All or nothing.** A file feastline writes (a training set's Parquet files, an offline push's batch
file) is written under a temporary name in the target's own folder (:func:`temp_path`: ``.<name>.
<random>.tmp``), flushed to disk, then renamed over the target (:func:`replace`), so a reader or a crash
sees the old file or the new one, never a part. Leftover temporary files are recognised by
:func:`is_temp` (the recovery pass removes those of crashed writers).

**Reading a file that may be replaced.** DuckDB opens a Parquet file more than once per query (to bind,
then to scan): a rename over it in between (an offline push to a single-file source) made the query
fail ("TProtocolException: Invalid data", about 1 query in 8 with a push every few milliseconds).

**Faults.** :func:`storage_fault` turns what the OS or the database raises when storage fails (disk
full, read-only, no permission, a file missing, the database locked past every retry) into a
:class:`StorageUnavailable` that says what is wrong in words, without the path or the SQL, and whether
it may clear by itself (then the 503 carries ``Retry-After``). :func:`probe_writable` is the readiness
check of a folder.

**Crash points.** :func:`crash_point` kills the process (SIGKILL) when ``FEASTLINE_CRASH_AT`` names the
point (``name`` or ``name:N``, the N-th time it is reached): how the fault test stops a write at a
chosen step. Unset (always, outside that test), it does nothing.
"""

from __future__ import annotations

import errno
import os
import re
import shutil
import signal
import threading
import time
import uuid
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, BinaryIO

CRASH_ENV = "FEASTLINE_CRASH_AT"
_TEMP = re.compile(r"^\..+\.[0-9a-f]{8,32}\.tmp$")
_crash_hits: dict[str, int] = {}
_crash_lock = threading.Lock()


# -- all or nothing ------------------------------------------------------------------------------------


def temp_path(target: Path) -> Path:
    """A fresh temporary name next to ``target``: ``.<target name>.<32 hex>.tmp`` in the same folder
    (so the rename that publishes it is atomic)."""
    return target.with_name(f".{target.name}.{uuid.uuid4().hex}.tmp")


def is_temp(path: Path) -> bool:
    """True for a name :func:`temp_path` makes (and that the push's former temporary files had)."""
    return bool(_TEMP.match(path.name))


def write_temp(target: Path, write: Callable[[BinaryIO], Any], tmp: Path | None = None) -> Path:
    """Write a temporary file for ``target`` with ``write(fh)``, flushed and fsynced; returns its path.

    Raises:
        OSError: from the OS (disk full, read-only, ...), naming ``target`` as its ``filename`` where the
            OS named none (a failed write or fsync); the temporary file is removed.
    """
    tmp = tmp or temp_path(target)
    try:
        with open(tmp, "wb") as fh:
            write(fh)
            fh.flush()
            os.fsync(fh.fileno())
    except BaseException as exc:
        tmp.unlink(missing_ok=True)
        if isinstance(exc, OSError) and exc.filename is None:
            exc.filename = str(target)
        raise
    return tmp


def replace(tmp: Path, target: Path) -> None:
    """Rename ``tmp`` over ``target`` (atomic on POSIX within a folder) and fsync the folder, so the
    rename survives a power cut."""
    os.replace(tmp, target)
    _fsync_folder(target.parent)


_WRITERS = ThreadPoolExecutor(max_workers=8, thread_name_prefix="feastline-write")
"""Threads that write the files of :class:`TempWrites` (fsync waits on the disk, not on the GIL)."""


class TempWrites:
    """:func:`write_temp` of each ``(target, write, tmp)`` job, started at once on writer threads (their
    fsyncs overlap, and with whatever the caller does meanwhile); :meth:`wait` for them.

    The caller must :meth:`wait` (also when it fails meanwhile) before it removes the temporary files,
    or a writer still running could leave one behind.
    """

    def __init__(self, jobs: Sequence[tuple[Path, Callable[[BinaryIO], Any], Path]]) -> None:
        self._jobs = list(jobs)
        self._futures = [_WRITERS.submit(write_temp, *job) for job in self._jobs]

    def wait(self) -> None:
        """Return once every write has finished, whatever happened.

        Raises:
            OSError (or what a ``write`` raised): the first failed job's error in ``jobs`` order; every
                temporary file is removed then (those written too).
        """
        errors: list[BaseException] = []
        for future in self._futures:
            try:
                future.result()
            except BaseException as exc:
                errors.append(exc)
        if errors:
            for _, _, tmp in self._jobs:
                tmp.unlink(missing_ok=True)
            raise errors[0]


def replace_all(pairs: Sequence[tuple[Path, Path]]) -> None:
    """Rename each ``(tmp, target)`` of ``pairs`` (atomic each, in order), then fsync each folder once:
    :func:`replace` for several files, one folder fsync instead of one per file."""
    for tmp, target in pairs:
        os.replace(tmp, target)
    for folder in dict.fromkeys(target.parent for _, target in pairs):
        _fsync_folder(folder)


def _fsync_folder(folder: Path) -> None:
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def write_atomically(target: Path, write: Callable[[BinaryIO], Any]) -> None:
    """:func:`write_temp` then :func:`replace`: ``target`` is the old file or the whole new one."""
    replace(write_temp(target, write), target)


# -- faults --------------------------------------------------------------------------------------------


class StorageUnavailable(Exception):
    """A write (or a read) failed because of the storage, not the request: a 503 saying what is wrong.

    Attributes:
        place: what could not be written, in words ("the training-sets directory").
        reason: what is wrong with it ("no space left on the device", "read-only file system").
        retry_after: seconds after which a retry may succeed by itself (a full disk, a busy
            database), or None when it needs someone to act (read-only, permissions, missing file).
        written: for a write with several parts, which parts were written and which were not
            (``{"online": True, "offline": False}``), else None.
    """

    field: str | None = None

    def __init__(
        self,
        place: str,
        reason: str,
        retry_after: int | None = None,
        *,
        written: dict[str, bool] | None = None,
        advice: str | None = None,
    ) -> None:
        self.place, self.reason, self.retry_after, self.written = place, reason, retry_after, written
        parts = ""
        if written is not None:
            done = [k for k, v in written.items() if v]
            missing = [k for k, v in written.items() if not v]
            parts = f"; written: {', '.join(done) or 'nothing'}; not written: {', '.join(missing) or 'nothing'}"
        tail = f"; {advice}" if advice else ("; retry later" if retry_after else "")
        super().__init__(f"{place}: {reason}{parts}{tail}")

    def details(self) -> dict[str, Any]:
        out: dict[str, Any] = {"storage": self.place, "reason": self.reason}
        if self.written is not None:
            out["written"] = self.written
        return out


_REASONS: dict[int, tuple[str, bool]] = {
    errno.ENOSPC: ("no space left on the device", True),
    errno.EDQUOT: ("disk quota exceeded", True),
    errno.EROFS: ("read-only file system", False),
    errno.EACCES: ("permission denied", False),
    errno.EPERM: ("operation not permitted", False),
    errno.ENOENT: ("a file or folder is missing", False),
    errno.ENOTDIR: ("a path that should be a folder is not one", False),
    errno.EIO: ("input/output error", False),
    errno.EMFILE: ("too many open files", True),
    errno.ENFILE: ("too many open files in the system", True),
}
_DB_REASONS: tuple[tuple[str, str, bool], ...] = (
    ("readonly database", "the database is read-only", False),
    ("database or disk is full", "no space left on the device", True),
    ("disk i/o error", "input/output error", False),
    ("unable to open database file", "the database file cannot be opened (missing or not writable)", False),
    ("database is locked", "the database stayed locked by other writers", True),
    ("no space left on device", "no space left on the device", True),
    ("read-only file system", "read-only file system", False),
)


def storage_fault(exc: BaseException, place: str, retry_after: int) -> StorageUnavailable | None:
    """The :class:`StorageUnavailable` that ``exc`` means for ``place``, or None when ``exc`` is not a
    storage fault (a bug: a 500). Reads ``OSError.errno`` and the messages of SQLite and DuckDB.

    ``retry_after`` is used only for faults that can clear by themselves (disk full, a busy database).
    """
    if isinstance(exc, StorageUnavailable):
        return exc
    if isinstance(exc, OSError) and exc.errno in _REASONS:
        reason, clears = _REASONS[exc.errno]
        return StorageUnavailable(place, reason, retry_after if clears else None)
    text = str(getattr(exc, "orig", None) or exc).lower()
    if type(exc).__module__.startswith(("sqlalchemy", "sqlite3", "psycopg", "duckdb", "_duckdb")):
        for needle, reason, clears in _DB_REASONS:
            if needle in text:
                return StorageUnavailable(place, reason, retry_after if clears else None)
    return None


def probe_writable(folder: Path) -> str | None:
    """None if a file can be created, written, flushed and removed in ``folder`` (made if missing)
    and the device has space left; else what is wrong, in words (no path)."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
        probe = folder / f".feastline-probe.{uuid.uuid4().hex}.tmp"
        try:
            with open(probe, "wb") as fh:
                fh.write(b"ok")
                fh.flush()
                os.fsync(fh.fileno())
        finally:
            probe.unlink(missing_ok=True)
        if shutil.disk_usage(folder).free == 0:
            return "no space left on the device"
    except OSError as exc:
        reason, _ = _REASONS.get(exc.errno or 0, (exc.strerror or type(exc).__name__, False))
        return reason
    return None


def probe_clears_by_itself(reason: str) -> bool:
    """Whether the fault :func:`probe_writable` reported may clear without anyone acting (a full disk)."""
    return any(reason == r for r, clears in _REASONS.values() if clears)


# -- crash points --------------------------------------------------------------------------------------


def crash_point(name: str) -> None:
    """SIGKILL this process here if ``FEASTLINE_CRASH_AT`` is ``name`` (or ``name:N`` and this is the
    N-th time ``name`` is reached). For the fault test only; a no-op when the variable is unset."""
    wanted = os.environ.get(CRASH_ENV)
    if not wanted:
        return
    point, _, nth = wanted.partition(":")
    if point != name:
        return
    with _crash_lock:
        _crash_hits[name] = hits = _crash_hits.get(name, 0) + 1
    if hits >= int(nth or 1):
        os.kill(os.getpid(), signal.SIGKILL)
        time.sleep(10)  # the signal is delivered asynchronously; never go on past the point
