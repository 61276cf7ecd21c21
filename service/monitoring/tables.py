"""The monitoring reports as tables of text: what the monitoring page (:mod:`service.monitoring.page`)
and ``feastline monitor`` (rich tables) both show, cell for cell.

Each function takes a report as the service answers it and returns ``(headers, rows)``, every cell a
string. Numbers: PSI and JS with 4 decimals, p-values and statistics with 3 significant digits, rates
as percentages with 2 decimals, ages and objectives as durations (``1h 05m``); a missing value is ``—``.
"""

from collections.abc import Mapping, Sequence
from typing import Any

Table = tuple[list[str], list[list[str]]]
MISSING = "—"
DRIFT_HEADERS = ["feature", "kind", "psi", "js", "test", "p_value", "nulls baseline", "nulls target", "verdict"]
PARITY_HEADERS = ["feature", "feature view", "compared", "matches", "match rate", "online statuses", "causes"]
MISMATCH_HEADERS = ["logged at", "request", "entity", "feature", "online", "offline", "cause"]
FRESHNESS_HEADERS = ["feature view", "newest event time", "age", "objective", "status"]


def decimal(value: float | None, places: int = 4) -> str:
    """``0.81234567`` -> ``0.8123``; None -> ``—``."""
    return MISSING if value is None else f"{value:.{places}f}"


def significant(value: float | None) -> str:
    """3 significant digits (``1.23e-45``); None -> ``—``."""
    return MISSING if value is None else f"{value:.3g}"


def percent(rate: float | None) -> str:
    """A rate in [0, 1] as ``12.34%``; None -> ``—``."""
    return MISSING if rate is None else f"{100 * rate:.2f}%"


def duration(seconds: float | None) -> str:
    """Seconds as ``45s``, ``12m 05s``, ``3h 07m``, ``2d 04h`` (sign kept: ``-1h 00m``); None -> ``—``."""
    if seconds is None:
        return MISSING
    sign, s = ("-" if seconds < 0 else ""), int(round(abs(seconds)))
    days, rest = divmod(s, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    if days:
        return f"{sign}{days}d {hours:02d}h"
    if hours:
        return f"{sign}{hours}h {minutes:02d}m"
    if minutes:
        return f"{sign}{minutes}m {secs:02d}s"
    return f"{sign}{secs}s"


def counts(mapping: Mapping[str, int] | None) -> str:
    """``{"PRESENT": 3, "NOT_FOUND": 1}`` -> ``NOT_FOUND 1, PRESENT 3`` (sorted by key); empty -> ``—``."""
    return ", ".join(f"{k} {v:,}" for k, v in sorted((mapping or {}).items())) or MISSING


def text(value: Any) -> str:
    """A JSON value as a short string (None -> ``—``)."""
    return MISSING if value is None else str(value)


def drift_table(report: Mapping[str, Any]) -> Table:
    """One row per assessed feature of a drift report (``POST /monitoring/drift``'s answer)."""
    rows = [
        [
            str(f["name"]),
            str(f["kind"]),
            decimal(f["psi"]),
            decimal(f["js"]),
            text(f["test"]),
            significant(f["p_value"]),
            percent(f["null_rate_baseline"]),
            percent(f["null_rate_target"]),
            str(f["verdict"]),
        ]
        for f in report["features"]
    ]
    return DRIFT_HEADERS, rows


def parity_table(report: Mapping[str, Any]) -> Table:
    """One row per feature of a parity report (``POST /monitoring/parity``'s answer)."""
    rows = [
        [
            str(f["name"]),
            str(f["feature_view"]),
            f"{f['compared']:,}",
            f"{f['matches']:,}",
            percent(f["match_rate"]),
            counts(f.get("statuses")),
            counts(f.get("causes")),
        ]
        for f in report["features"]
    ]
    return PARITY_HEADERS, rows


def mismatch_table(report: Mapping[str, Any], limit: int = 20) -> Table:
    """The first ``limit`` mismatching values listed in a parity report."""
    rows = [
        [
            str(m["logged_at"]),
            f"{m['request_id']}#{m['row']}",
            ", ".join(f"{k}={v}" for k, v in m["entity"].items()),
            str(m["feature"]),
            text(m["online_value"]),
            text(m["offline_value"]),
            str(m["cause"]),
        ]
        for m in report["mismatches"][:limit]
    ]
    return MISMATCH_HEADERS, rows


def freshness_table(views: Sequence[Mapping[str, Any]]) -> Table:
    """One row per online feature view (items of ``GET /monitoring/freshness``'s ``feature_views``)."""
    rows = [
        [
            str(v["name"]),
            text(v["newest_event_time"]),
            duration(v["age_seconds"]),
            duration(v["objective_seconds"]) if v["objective_problem"] is None else "invalid tag",
            str(v["status"]),
        ]
        for v in views
    ]
    return FRESHNESS_HEADERS, rows
