"""Freshness of the features held online, against each feature view's objective.

**Newest event time** of an online feature view: the newest event time feastline wrote online for it,
the later of (a) the newest row of its batch source before the end of the last materialized interval
(DuckDB over the source's Parquet, cached by file modification time) and (b) the newest row a push to
this process wrote (``PushGate.newest_pushed``). It does not read the online store: a flushed or
failed-over store shows in ``/health/ready``, not here.

**Age**: service clock (``service.clock.service_now``) minus the newest event time, seconds; negative
in a replay pinned before the data's end (the store holds values newer than the clock).

**Objective**: the view's tag ``feastline.freshness_slo``, a whole positive number followed by a unit,
``s`` (seconds), ``m`` (minutes), ``h`` (hours) or ``d`` (days): ``90s``, ``30m``, ``2h``, ``1d``.
Nothing else is taken (no spaces, signs, fractions or compound ``1h30m``); a bad value is reported
with the view (``objective_problem``), never an error of the request.

**Status**: ``ok`` (age ≤ objective), ``late`` (age > objective) or ``unknown`` (no objective, a bad
one, or no event time held online yet).
"""

import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Literal

import duckdb
from feast import FeatureStore, FeatureView

from service.training.offline.views import batch_spec

SLO_TAG = "feastline.freshness_slo"
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}
_DURATION = re.compile(r"([1-9][0-9]{0,8})([smhd])")

Status = Literal["ok", "late", "unknown"]


class InvalidObjective(ValueError):
    """A ``feastline.freshness_slo`` tag value that is not a duration like ``30m``, ``2h``, ``1d``."""


def parse_objective(text: str) -> timedelta:
    """``"2h"`` -> 2 hours. Raises :class:`InvalidObjective` on anything but a whole positive number
    (at most 9 digits) followed by ``s``, ``m``, ``h`` or ``d``."""
    match = _DURATION.fullmatch(text)
    if match is None:
        raise InvalidObjective(
            f"{SLO_TAG}: {text!r} is not a duration (a whole positive number followed by s, m, h or d, "
            "e.g. 30m, 2h, 1d)"
        )
    return timedelta(seconds=int(match.group(1)) * _UNITS[match.group(2)])


@dataclass(frozen=True)
class ViewFreshness:
    """One online feature view's freshness. ``age_seconds`` is None when nothing is held online;
    ``objective_seconds`` is None without a (valid) objective, and ``objective_problem`` says why a
    tag value was refused."""

    name: str
    newest_event_time: datetime | None
    age_seconds: float | None
    objective_seconds: float | None
    objective_problem: str | None

    @property
    def status(self) -> Status:
        if self.age_seconds is None or self.objective_seconds is None:
            return "unknown"
        return "ok" if self.age_seconds <= self.objective_seconds else "late"

    def to_dict(self) -> dict[str, Any]:
        """The JSON answer's item: times ISO 8601 UTC, ages and objectives in seconds."""
        newest = self.newest_event_time
        return {
            "name": self.name,
            "newest_event_time": None if newest is None else newest.isoformat().replace("+00:00", "Z"),
            "age_seconds": self.age_seconds,
            "objective_seconds": self.objective_seconds,
            "objective_problem": self.objective_problem,
            "status": self.status,
        }


def freshness(store: FeatureStore, repo: Path, now: datetime, pushed: Mapping[str, datetime]) -> list[ViewFreshness]:
    """Every online feature view of ``store`` (sorted by name) at ``now`` (tz-aware UTC), with
    ``pushed`` the newest event time pushed per view name. Blocking (DuckDB reads): call it from a worker.
    A view whose source cannot be read has no materialized event time (a scrape never fails on one view)."""
    views = []
    for fv in sorted(store.list_feature_views(), key=lambda v: v.name):
        if not fv.online:
            continue
        try:
            materialized = newest_materialized(repo, fv)
        except (duckdb.Error, OSError, ValueError, OverflowError):
            materialized = None
        candidates = [t for t in (materialized, pushed.get(fv.name)) if t is not None]
        newest = max(candidates) if candidates else None
        objective: float | None = None
        problem: str | None = None
        tag = (fv.tags or {}).get(SLO_TAG)
        if tag is not None:
            try:
                objective = parse_objective(tag).total_seconds()
            except InvalidObjective as e:
                problem = str(e)
        age = None if newest is None else (now - newest).total_seconds()
        views.append(ViewFreshness(fv.name, newest, age, objective, problem))
    return views


def newest_materialized(repo: Path, fv: FeatureView) -> datetime | None:
    """Newest event time in the view's source among the intervals materialized so far (DuckDB, cached
    by file modification time); None if never materialized or the source file is missing."""
    if not fv.materialization_intervals:
        return None
    end = max(e if e.tzinfo else e.replace(tzinfo=UTC) for _, e in fv.materialization_intervals)
    spec = batch_spec(repo, fv)
    if not spec.path.exists():
        return None
    key = (str(spec.path), spec.path.stat().st_mtime_ns, end)
    if key not in _NEWEST:
        ts = '"' + spec.timestamp_field.replace('"', '""') + '"'
        path = str(spec.path).replace("'", "''")
        with duckdb.connect() as con:
            row = con.execute(
                f"SELECT max(epoch_ns({ts})) FROM read_parquet('{path}') WHERE {ts} < ?", [end]
            ).fetchone()
        _NEWEST[key] = datetime.fromtimestamp(row[0] / 1e9, tz=UTC) if row and row[0] is not None else None
    return _NEWEST[key]


_NEWEST: dict[tuple[str, int, datetime], datetime | None] = {}
