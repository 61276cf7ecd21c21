"""Feature monitoring, drift (issue #12): the cost of a drift report and of profiling a training set.

    .venv/bin/python bench/monitoring.py [--repo feature_repo] [--repeat 3]

In process, on a built and applied repo (``make apply``; nothing needs materializing), feature service
``delay_model_v1`` (12 features: 8 weather, 4 carrier):

1. **training set + profile**: ``create_training_set`` of all 336,776 flights (join, audit, Parquet,
   profile, catalog row, lineage) as it runs, and with the profile left out (``start_profile``
   replaced by a no-op): what the profile adds to the creation's wall time (it runs on a thread while
   the Parquet files are written). Target: ≤ 10 %. The profile alone (``profile_training_set`` +
   ``write_profile``) for reference.
2. **drift**: a January-September baseline (252,392 rows) against a 336,776-row target (all flights),
   12 features: ``assess`` (bins, PSI, JS, KS on the baseline's stored rows) and the whole report
   (``run_drift`` with a stored target set: reading it, storing the report, lineage, OpenLineage), and
   of it the KS p-values alone (``distances.ks_pvalue``, equal to ``scipy.stats.kstwo.sf``, which
   ``ks_2samp`` uses at these sizes; scipy's own time beside it). ``assess`` is also timed with the
   baseline's sorted columns not cached (``service.monitoring.baseline_rows``), as a first report
   against a baseline. Target: ≤ 1 s.

Each figure is the median of ``--repeat`` runs after one warm-up (creation with and without the
profile alternating). Writes its section of
``bench/RESULTS.md``.
"""

import argparse
import datetime as dt
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from concurrent.futures import Future
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from scipy.stats import kstwo

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
sys.path.insert(0, str(ROOT))

from training_set import invocation, machine, write_section  # noqa: E402

from lineage import LineageStore  # noqa: E402
from service.intents import Intents  # noqa: E402
from service.monitoring import baseline_rows, distances  # noqa: E402
from service.monitoring.drift import (  # noqa: E402
    BaselineIn,
    DriftRequest,
    TargetIn,
    assess,
    columns_to_assess,
    resolve_baseline,
    run_drift,
)
from service.monitoring.profiles import profile_training_set, write_profile  # noqa: E402
from service.monitoring.reports import DriftReports  # noqa: E402
from service.registry import open_feature_store  # noqa: E402
from service.settings import Settings  # noqa: E402
from service.training import training_sets  # noqa: E402
from service.training.catalog import TrainingSetCatalog  # noqa: E402
from service.training.training_sets import TrainingSetOptions, create_training_set, resolve  # noqa: E402

SERVICE = "delay_model_v1"
ENTITY = ["origin", "carrier", "event_timestamp", "label_delayed"]


def timed(fn: Callable[[], Any], repeat: int) -> tuple[float, Any]:
    """(median seconds over ``repeat`` runs after one warm-up, the last result)."""
    result = fn()
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times), result


def once(fn: Callable[[], Any]) -> float:
    t = time.perf_counter()
    fn()
    return time.perf_counter() - t


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repo", type=Path, default=ROOT / "feature_repo", help="built and applied feastline repo")
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--results", type=Path, default=BENCH / "RESULTS.md")
    args = parser.parse_args()
    command = invocation(__file__)
    when = dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC")
    began = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="feastline-monitoring-") as tmp:
        settings = Settings(repo=args.repo, training_sets_dir=Path(tmp) / "training_sets")
        store = open_feature_store(settings.repo_path)
        lineage = LineageStore(settings.lineage_database_url)
        catalog = TrainingSetCatalog(settings.lineage_database_url)
        reports = DriftReports(settings.lineage_database_url)
        intents = Intents(settings.lineage_database_url)
        opts = TrainingSetOptions(feature_service=SERVICE)
        refs, plan = resolve(store, opts)
        flights = pd.read_parquet(settings.data_dir / "flights.parquet", columns=ENTITY)
        jan_sep = flights[flights["event_timestamp"] < "2013-10-01"].reset_index(drop=True)
        out = settings.training_sets_path

        def create(frame: pd.DataFrame) -> Any:
            return create_training_set(store, catalog, lineage, intents, opts, frame, plan, refs, out)

        with_profile = training_sets.start_profile

        def no_profile(*_: Any) -> Future[dict[str, Any]]:
            done: Future[dict[str, Any]] = Future()
            done.set_result({})
            return done

        def bare() -> Any:
            training_sets.start_profile = no_profile  # type: ignore[assignment]
            try:
                return create(flights)
            finally:
                training_sets.start_profile = with_profile

        full = create(flights)
        bare()  # warm-up of both, then alternating runs: the machine's load hits both alike
        creates, bares = [], []
        for _ in range(args.repeat):
            creates.append(once(lambda: create(flights)))
            bares.append(once(bare))
        create_s, bare_s = statistics.median(creates), statistics.median(bares)
        profile_path = Path(tmp) / "bench.profile.json"
        profile_s, _ = timed(
            lambda: write_profile(profile_training_set(full.frame, plan, False), profile_path), args.repeat
        )
        base = create(jan_sep)
        baseline = resolve_baseline(BaselineIn(training_set_id=base.record.id), store, catalog, lineage, out)
        columns = columns_to_assess(baseline, None)
        assess_s, items = timed(lambda: assess(baseline, full.frame, columns), args.repeat)

        def cold_assess() -> Any:  # the baseline's sorted columns read and sorted again, as for a first report
            baseline_rows._CACHE.clear()
            return assess(baseline, full.frame, columns)

        cold_s, _ = timed(cold_assess, args.repeat)
        request = DriftRequest(
            baseline=BaselineIn(training_set_id=base.record.id), target=TargetIn(training_set_id=full.record.id)
        )
        report_s, report = timed(lambda: run_drift(request, store, catalog, lineage, reports, settings), args.repeat)

        def p_values(of: Callable[[float, int], float]) -> Callable[[], list[float]]:
            def run() -> list[float]:
                out = []
                for f in report["features"]:
                    if f["test"] == "ks":
                        m, n = sorted([float(f["values_baseline"]), float(f["values_target"])], reverse=True)
                        out.append(of(f["statistic"], int(np.round(m * n / (m + n)))))
                return out

            return run

        pvalue_s, ours = timed(p_values(distances.ks_pvalue), args.repeat)
        scipy_s, theirs = timed(p_values(lambda d, n: float(np.clip(kstwo.sf(d, n), 0, 1))), args.repeat)
        worst_rel = max(abs(a - b) / b if b > 1e-290 else abs(a - b) for a, b in zip(ours, theirs, strict=True))
        for closer in (reports, catalog, lineage, intents):
            closer.dispose()
    share = create_s / bare_s - 1
    verdict = "met" if report_s <= 1 else "met for `assess` only" if assess_s <= 1 else "**NOT met**"
    psi = ", ".join(f"{f['name']} {f['psi']:.3f} ({f['verdict']})" for f in report["features"])
    m = machine()
    base_rows, target_rows = f"January-September baseline ({len(jan_sep):,} rows)", f"{len(full.frame):,}"
    text = f"""# Feature monitoring: drift reports and training-set profiles

Written by `bench/monitoring.py`; every number below was measured by the run it describes.

- command: `{command}` (from the project root)
- date: {when}; whole run {time.monotonic() - began:.0f} s
- machine: {m["nproc"]} CPUs, {m["memory"]}, {m["cpu"]}
- feature service `{SERVICE}`, {len(items)} features; in process; medians of {args.repeat} runs after a warm-up

| step | rows | seconds |
|---|---:|---:|
| training set, all flights (join, audit, Parquet, profile, catalog, lineage) | {len(flights):,} | {create_s:.3f} |
| the same without the profile | {len(flights):,} | {bare_s:.3f} |
| the profile alone (profile + JSON write, not overlapped) | {len(flights):,} | {profile_s:.3f} |
| drift `assess`: {len(items)} features, target vs {base_rows} | {target_rows} | {assess_s:.3f} |
| the same, baseline's sorted columns not cached (read, sorted: a first report) | {target_rows} | {cold_s:.3f} |
| drift report, whole (`run_drift`: read target, assess, store, lineage, OpenLineage) | {target_rows} | {report_s:.3f} |
| of which the 12 KS p-values (`distances.ks_pvalue(d, round(mn/(m+n)))`) | | {pvalue_s:.3f} |
| scipy's `kstwo.sf` of the same 12, for comparison (largest difference {worst_rel:.1e} relative) | | {scipy_s:.3f} |

Verdicts of that report (all flights against January-September): {psi}.

## Targets

- profile ≤ 10 % of training-set creation: adds {share:.1%} → {"met" if share <= 0.10 else "**NOT met**"}
- drift of a 336,776-row target, 12 features, ≤ 1 s in process: `assess` {assess_s:.3f} s ({cold_s:.3f} s
  uncached), whole report {report_s:.3f} s → {verdict}
"""
    print(text)
    write_section(args.results, "monitoring", text)


if __name__ == "__main__":
    main()
