"""One materialization engine, timed in process, in a fresh process of its own (run by ``bench/online.py``).

    python bench/materialize_inproc.py {feast|feastline} REPO START END

With cwd = REPO (Feast 0.67 resolves relative Parquet paths against the cwd). Prints one JSON object:
``import_s`` (importing Feast, or feastline's materializer and Feast), ``store_s`` (``FeatureStore(REPO)``),
``materialize_s`` (only the call that reads the offline data and writes the online store and the
registry: ``FeatureStore.materialize(START, END)`` for ``feast``, ``service.materialization.materializer.materialize``
over the same window for ``feastline``). START and END are ISO 8601, UTC.
"""

import contextlib
import gc
import json
import sys
import time
from datetime import UTC, datetime
from pathlib import Path


def main() -> None:
    # run as a script, sys.path[0] is bench/, whose lineage.py would shadow the lineage package
    sys.path[0] = str(Path(__file__).resolve().parents[1])
    tool, repo, start_text, end_text = sys.argv[1], Path(sys.argv[2]), sys.argv[3], sys.argv[4]
    start, end = (datetime.fromisoformat(t).replace(tzinfo=UTC) for t in (start_text, end_text))
    t0 = time.perf_counter()
    if tool == "feastline":
        from service.feast_runtime import skip_definition_typechecks

        skip_definition_typechecks()  # as `feastline materialize` does
        from service.materialization.materializer import full_windows, materialize, online_views
    from feast import FeatureStore

    t1 = time.perf_counter()
    with contextlib.chdir(repo):
        store = FeatureStore(repo_path=".")
        if tool == "feastline":  # as `feastline materialize` does
            gc.collect()
            gc.freeze()
        t2 = time.perf_counter()
        if tool == "feastline":
            materialize(store, full_windows(online_views(store), start, end))
        else:
            store.materialize(start, end)
        t3 = time.perf_counter()
    print(json.dumps({"import_s": t1 - t0, "store_s": t2 - t1, "materialize_s": t3 - t2}))


if __name__ == "__main__":
    main()
