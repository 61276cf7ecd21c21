"""``service.storage``: files written all or nothing, readers pinned against renames, faults told apart."""

import errno
import os
import sqlite3
import threading
import time
import uuid
from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import sqlalchemy.exc

from service.storage import is_stale_pin, is_temp, pinned, storage_fault, write_atomically

QUERY = """SELECT a, v FROM read_parquet(?, file_row_number = true, filename = '__file')
           QUALIFY row_number() OVER (PARTITION BY a ORDER BY ts DESC, __file DESC, file_row_number DESC) = 1"""


def write(path: Path, n: int) -> None:
    table = pa.table({"a": [i % 97 for i in range(n)], "ts": list(range(n)), "v": [float(i) for i in range(n)]})
    write_atomically(path, lambda fh: pq.write_table(table, fh))


def test_a_pinned_file_reads_whole_while_pushes_rename_new_files_over_it(tmp_path):
    """DuckDB opens a Parquet file twice per query; unpinned, a rename in between failed about 1 query
    in 8 ("TProtocolException: Invalid data"). Pinned (a hard link), every query reads one file whole."""
    path = tmp_path / "source.parquet"
    write(path, 20_000)
    stop = threading.Event()

    def rewrite() -> None:
        n = 20_000
        while not stop.is_set():
            n += 7
            write(path, n)

    writer = threading.Thread(target=rewrite)
    writer.start()
    errors, reads = [], 0
    con = duckdb.connect()
    deadline = time.monotonic() + 3
    try:
        while time.monotonic() < deadline:
            with pinned(path) as file:
                try:
                    rows = con.cursor().sql(QUERY, params=[str(file)]).to_arrow_table()
                    assert rows.num_rows == 97
                    reads += 1
                except duckdb.Error as exc:
                    errors.append(str(exc))
    finally:
        stop.set()
        writer.join()
    assert errors == [] and reads > 10
    assert sorted(p.name for p in tmp_path.iterdir()) == ["source.parquet"]  # no link or temp file left


def test_pins_of_dead_processes_are_stale_and_temp_names_are_recognised(tmp_path):
    path = tmp_path / "x.parquet"
    path.write_bytes(b"PAR1")
    with pinned(path) as link:
        assert link != path and not is_stale_pin(link)  # this process: alive
        dead = link.with_name(link.name.replace(f"-{os.getpid()}-", "-999999999-"))
        os.link(link, dead)
        assert is_stale_pin(dead)
    assert is_temp(tmp_path / f".x.parquet.{uuid.uuid4().hex}.tmp") and not is_temp(path)


@pytest.mark.parametrize(
    ("exc", "reason", "clears"),
    [
        (OSError(errno.ENOSPC, "No space left on device"), "no space left on the device", True),
        (OSError(errno.EROFS, "Read-only file system"), "read-only file system", False),
        (PermissionError(errno.EACCES, "Permission denied"), "permission denied", False),
        (FileNotFoundError(errno.ENOENT, "No such file"), "a file or folder is missing", False),
        (
            sqlalchemy.exc.OperationalError("INSERT ...", {}, sqlite3.OperationalError("database or disk is full")),
            "no space left on the device",
            True,
        ),
        (
            sqlalchemy.exc.OperationalError("INSERT ...", {}, sqlite3.OperationalError("database is locked")),
            "the database stayed locked by other writers",
            True,
        ),
    ],
)
def test_storage_faults_say_what_is_wrong_and_whether_it_clears(exc, reason, clears):
    fault = storage_fault(exc, "the place", 7)
    assert fault is not None and fault.reason == reason and str(fault).startswith(f"the place: {reason}")
    assert fault.retry_after == (7 if clears else None)
    assert "INSERT" not in str(fault)


def test_other_errors_are_not_storage_faults():
    assert storage_fault(ValueError("x"), "p", 5) is None
    assert storage_fault(ConnectionRefusedError(errno.ECONNREFUSED, "refused"), "p", 5) is None
