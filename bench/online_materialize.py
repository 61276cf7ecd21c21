"""Materialization, side by side, for ``bench/online.py``: ``feast materialize`` (this repo's stores and Feast's
stock ones) against ``feastline materialize``, each command on a fresh applied copy; and each engine timed
in process (``bench/materialize_inproc.py``). Also the helpers to compare the online stores they leave.
"""

import json
import sqlite3
import sys
from pathlib import Path
from typing import Any

import pandas as pd
from online_servers import STOCK_FEAST_STORES, VENV_BIN, prepare_repo, run_logged

BENCH = Path(__file__).resolve().parent
START, END = "2012-12-01T00:00:00", "2014-01-02T00:00:00"  # UTC, the materialization benchmark's window
ONLINE_VIEWS = ("origin_weather", "carrier_daily_stats", "plane_profile", "origin_weather_fresh")


def rows_in_window(data: Path) -> dict[str, int]:
    """Source rows with ``START <= event_timestamp < END`` (UTC), per online view's Parquet file."""
    lo, hi = pd.Timestamp(START, tz="UTC"), pd.Timestamp(END, tz="UTC")
    counts = {}
    for view in ONLINE_VIEWS:
        ts = pd.read_parquet(data / f"{view}.parquet", columns=["event_timestamp"])["event_timestamp"]
        counts[view] = int(((ts >= lo) & (ts < hi)).sum())
    return counts


def online_rows(db: Path) -> dict[str, set[tuple[Any, ...]]]:
    """Every ``(entity_key, feature_name, value, event_ts)`` per table of a Feast SQLite online store
    (feastline's ``<table>__feastline_order`` side tables of full event times are not Feast's: left out)."""
    with sqlite3.connect(db) as conn:
        tables = [r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")]
        return {
            t: set(conn.execute(f'SELECT entity_key, feature_name, value, event_ts FROM "{t}"').fetchall())
            for t in sorted(tables)
            if not t.endswith("__feastline_order")
        }


def store_difference(a: dict[str, set[tuple[Any, ...]]], b: dict[str, set[tuple[Any, ...]]]) -> str:
    diffs = [f"{t}: {len(a.get(t, set()) ^ b.get(t, set())):,} rows differ" for t in sorted(set(a) | set(b))]
    diffs = [d for d, t in zip(diffs, sorted(set(a) | set(b)), strict=True) if a.get(t) != b.get(t)]
    total = sum(len(rows) for rows in a.values())
    return f"identical ({total:,} stored values in {len(a)} tables)" if not diffs else "DIFFERENT: " + "; ".join(diffs)


def materialize_commands(repo: Path) -> dict[str, list[str]]:
    feast = [str(VENV_BIN / "feast"), "-c", str(repo), "materialize", START, END]
    return {
        "feast materialize": feast,
        "feast materialize (stock Feast stores)": feast,
        "feastline materialize": [
            str(VENV_BIN / "feastline"),
            "materialize",
            "--repo",
            str(repo),
            "--start",
            f"{START}Z",
            "--end",
            f"{END}Z",
        ],
    }


#: in-process engines: (label, engine passed to bench/materialize_inproc.py, stock Feast stores?)
ENGINES = (
    ("feastline materializer", "feastline", False),
    ("Feast `FeatureStore.materialize`, this repo's stores", "feast", False),
    ("Feast `FeatureStore.materialize`, stock Feast stores", "feast", True),
)


def time_materialization(src: Path, work: Path) -> dict[str, dict[str, Any]]:
    """Per command: wall seconds on a fresh applied copy, and the copy's online store."""
    out = {}
    for i, tool in enumerate(materialize_commands(work)):
        stores = STOCK_FEAST_STORES if "stock" in tool else None
        repo = prepare_repo(src, work / f"repo_materialize_{i}", work, stores)
        cmd = materialize_commands(repo)[tool]
        wall = run_logged(cmd, work / f"materialize_{i}.log", repo, 240)
        out[tool] = {"wall_s": wall, "command": cmd, "repo": repo, "db": repo / "data" / "online_store.db"}
        print(f"-- {tool}: {wall:.2f} s", flush=True)
    return out


def time_engines(src: Path, work: Path) -> dict[str, dict[str, float]]:
    """Per engine, in a fresh process on a fresh applied copy: import, FeatureStore and materialize seconds."""
    out = {}
    for i, (label, engine, stock) in enumerate(ENGINES):
        repo = prepare_repo(src, work / f"repo_engine_{i}", work, STOCK_FEAST_STORES if stock else None)
        cmd = [sys.executable, str(BENCH / "materialize_inproc.py"), engine, str(repo), START, END]
        log = work / f"engine_{i}.log"
        run_logged(cmd, log, repo, 240)
        out[label] = json.loads(log.read_text().strip().splitlines()[-1])
        print(f"-- {label}: materialize {out[label]['materialize_s']:.2f} s", flush=True)
    return out


def command_table(timing: dict[str, dict[str, Any]], rows_total: int) -> list[str]:
    """Markdown rows: wall seconds and rows/s per command."""
    lines = ["| command | wall s | source rows in window | rows/s |", "|---|---:|---:|---:|"]
    for tool, t in timing.items():
        lines.append(f"| `{tool}` | {t['wall_s']:.2f} | {rows_total:,} | {rows_total / t['wall_s']:,.0f} |")
    return lines


def engine_table(engines: dict[str, dict[str, float]], rows_total: int) -> list[str]:
    """Markdown rows: import / FeatureStore / materialize seconds per engine, rows/s of the materialize call."""
    lines = [
        "| engine (in process) | import s | FeatureStore s | materialize s | rows/s (materialize only) |",
        "|---|---:|---:|---:|---:|",
    ]
    for label, e in engines.items():
        lines.append(
            f"| {label} | {e['import_s']:.2f} | {e['store_s']:.2f} | {e['materialize_s']:.2f} "
            f"| {rows_total / e['materialize_s']:,.0f} |"
        )
    return lines
