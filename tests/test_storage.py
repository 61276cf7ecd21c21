"""``service.storage``: files written all or nothing, temporary names recognised, faults told apart."""

import errno
import sqlite3
import uuid
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import sqlalchemy.exc

from service.storage import is_temp, storage_fault, write_atomically

QUERY = """SELECT a, v FROM read_parquet(?, file_row_number = true, filename = '__file')
           QUALIFY row_number() OVER (PARTITION BY a ORDER BY ts DESC, __file DESC, file_row_number DESC) = 1"""


def write(path: Path, n: int) -> None:
    table = pa.table({"a": [i % 97 for i in range(n)], "ts": list(range(n)), "v": [float(i) for i in range(n)]})
    write_atomically(path, lambda fh: pq.write_table(table, fh))


def test_temp_names_are_recognised(tmp_path):
    path = tmp_path / "x.parquet"
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
