"""Lineage query latency on a generated 100,000-node graph; writes its section of bench/RESULTS.md.

Run from the project root: ``.venv/bin/python bench/lineage.py``. The graph is layered like the
lineage :mod:`lineage.builders` produces (raw tables -> transforms -> data sources -> feature views and
on-demand views -> features -> feature services -> training sets -> models), with Zipf-like popularity
so a few raw tables, sources and views feed much of the graph. Seeded, so every run builds the same graph.
"""

from __future__ import annotations

import argparse
import gc
import os
import platform
import random
import resource
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path

import networkx as nx  # type: ignore[import-untyped]
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from lineage import Edge, LineageGraph, Node, NodeKind, NodeRef, Relation  # noqa: E402

K, R = NodeKind, Relation
SEED = 20261130
QUERIES = 1_000
TARGET_MS = 20.0
RESULTS = Path(__file__).with_name("RESULTS.md")
START, END = "<!-- lineage:start -->", "<!-- lineage:end -->"


def zipf(rng: random.Random, items: Sequence[NodeRef], k: int, s: float = 0.9) -> list[NodeRef]:
    """``k`` distinct items, earlier ones far more likely (weights 1 / rank**s)."""
    weights = [1.0 / (i + 1) ** s for i in range(len(items))]
    picked: dict[NodeRef, None] = {}
    while len(picked) < min(k, len(items)):
        picked.update(dict.fromkeys(rng.choices(items, weights=weights, k=k - len(picked))))
    return list(picked)


def generate(rng: random.Random) -> tuple[list[Node], list[Edge]]:
    """A layered lineage graph of >= 100,000 nodes and a few hundred thousand edges."""
    refs: dict[NodeKind, list[NodeRef]] = {}
    edges: list[Edge] = []

    def make(kind: NodeKind, n: int, prefix: str) -> list[NodeRef]:
        new = [NodeRef(kind, f"{prefix}_{i:05d}") for i in range(n)]
        refs.setdefault(kind, []).extend(new)
        return new

    raws = make(K.RAW_TABLE, 1_000, "warehouse.table")
    transforms = make(K.TRANSFORM, 2_000, "step")
    sources = make(K.DATA_SOURCE, 2_000, "source")
    entities = make(K.ENTITY, 200, "entity")
    views = make(K.FEATURE_VIEW, 2_850, "view")
    odfvs = make(K.ON_DEMAND_FEATURE_VIEW, 500, "odfv")
    services = make(K.FEATURE_SERVICE, 2_000, "service")
    training_sets = make(K.TRAINING_SET, 5_000, "training_set")
    models = make(K.MODEL, 1_300, "model")

    columns: dict[NodeRef, list[NodeRef]] = {}  # column grain: raw table / data source -> its columns
    for owner in raws + sources:
        columns[owner] = [NodeRef(K.COLUMN, f"{owner.name}.c{j}") for j in range(10 if owner in raws else 8)]
        edges += [Edge(owner, c, R.DEFINES) for c in columns[owner]]
    refs[K.COLUMN] = [c for cols in columns.values() for c in cols]
    for t in transforms:
        for raw in zipf(rng, raws, rng.randint(1, 4)):
            edges.append(Edge(raw, t, R.READS))
            edges += [Edge(c, t, R.READS) for c in rng.sample(columns[raw], rng.randint(2, 5))]
    for s in sources[:1_800]:  # the rest are read straight from the warehouse: no transform upstream
        t = rng.choice(transforms)
        edges.append(Edge(t, s, R.WRITES))
        edges += [Edge(t, c, R.WRITES) for c in columns[s]]
    view_features: dict[NodeRef, list[NodeRef]] = {}
    for v in views:
        sources_of = zipf(rng, sources, 2 if rng.random() < 0.15 else 1, s=0.6)
        edges += [Edge(s, v, R.READS) for s in sources_of]
        edges += [Edge(e, v, R.KEYS) for e in zipf(rng, entities, rng.randint(1, 2))]
        feats = [NodeRef(K.FEATURE, f"{v.name}.f{j:02d}") for j in range(rng.randint(5, 35))]
        view_features[v] = feats
        edges += [Edge(v, f, R.DEFINES) for f in feats]
        source_columns = [c for s in sources_of for c in columns[s]]
        edges += [Edge(rng.choice(source_columns), f, R.DERIVES) for f in feats]
    for o in odfvs:
        parents = zipf(rng, views, rng.randint(1, 3), s=0.5)
        edges += [Edge(p, o, R.READS) for p in parents]
        inputs = [f for p in parents for f in view_features[p]]
        outs = [NodeRef(K.FEATURE, f"{o.name}.out{j}") for j in range(rng.randint(1, 6))]
        view_features[o] = outs
        for f in outs:
            edges.append(Edge(o, f, R.DEFINES))
            edges += [Edge(i, f, R.DERIVES) for i in rng.sample(inputs, min(len(inputs), rng.randint(1, 4)))]
    refs[K.FEATURE] = [f for feats in view_features.values() for f in feats]
    feature_views = views + odfvs
    service_features: dict[NodeRef, list[NodeRef]] = {}
    for svc in services:
        chosen = []
        for v in zipf(rng, feature_views, rng.randint(1, 5), s=0.7):
            feats = view_features[v]
            chosen += rng.sample(feats, max(1, int(len(feats) * rng.uniform(0.3, 1.0))))
        service_features[svc] = chosen
        edges += [Edge(f, svc, R.INCLUDES) for f in chosen]
    for ts in training_sets:  # as lineage.builders records a training set: its features and its service
        for svc in zipf(rng, services, 2 if rng.random() < 0.1 else 1, s=0.5):
            edges.append(Edge(svc, ts, R.TRAINED_ON))
            edges += [Edge(f, ts, R.TRAINED_ON) for f in service_features[svc]]
    for m in models:
        edges += [Edge(ts, m, R.TRAINED_ON) for ts in rng.sample(training_sets, rng.randint(1, 5))]

    nodes = [
        Node(ref, f"{i:064x}", {"owner": f"team_{i % 17}", "rows": i})
        for i, ref in enumerate(r for kind_refs in refs.values() for r in kind_refs)
    ]
    return nodes, list(dict.fromkeys(edges))


def rss_mib() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def machine() -> str:
    cpu = next(
        (
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if "model name" in line
        ),
        platform.processor() or "unknown CPU",
    )
    mem_kib = int(Path("/proc/meminfo").read_text().split()[1])
    return f"{len(os.sched_getaffinity(0))} CPUs (`nproc`), {mem_kib / 2**20:.1f} GiB RAM, {cpu}"


def timed(call: Callable[[], object]) -> tuple[float, object]:
    t0 = time.perf_counter()
    out = call()
    return (time.perf_counter() - t0) * 1000, out


def size_of(out: object) -> int:
    if isinstance(out, list):
        return len(out)
    return len(out.nodes)  # type: ignore[attr-defined]


def main() -> None:
    """Generate, build, time every query type, and (unless ``--dry-run``) write the RESULTS.md section."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--queries", type=int, default=QUERIES, help="calls per query type (default 1,000)")
    parser.add_argument("--dry-run", action="store_true", help="print only; do not touch RESULTS.md")
    args = parser.parse_args()
    started = time.perf_counter()
    rng = random.Random(SEED)
    rss0 = rss_mib()
    t0 = time.perf_counter()
    nodes, edges = generate(rng)
    gen_s = time.perf_counter() - t0
    rss1 = rss_mib()
    build_s, graph = timed(lambda: LineageGraph.of(nodes, edges))
    assert isinstance(graph, LineageGraph)
    build_s /= 1000
    rss2 = rss_mib()
    kinds = {kind: sum(1 for n in nodes if n.ref.kind == kind) for kind in NodeKind}

    # Query inputs, drawn before any clock starts.
    by_kind: dict[NodeKind, list[NodeRef]] = {kind: [] for kind in NodeKind}
    for n in nodes:
        by_kind[n.ref.kind].append(n.ref)
    all_refs = [n.ref for n in nodes]
    picks = [rng.choice(all_refs) for _ in range(args.queries)]
    heavy_roots = [rng.choice(by_kind[K.RAW_TABLE] + by_kind[K.DATA_SOURCE]) for _ in range(args.queries)]
    models = [rng.choice(by_kind[K.MODEL]) for _ in range(args.queries)]
    reads = {raw: 0 for raw in by_kind[K.RAW_TABLE]}
    for e in edges:
        if e.source in reads and e.relation == R.READS:
            reads[e.source] += 1
    hubs = sorted(reads, key=reads.__getitem__, reverse=True)[:10]
    hub_calls = [hubs[i % len(hubs)] for i in range(args.queries)]
    nxg = nx.DiGraph((e.source, e.target) for e in edges)  # an independent copy, only to choose pairs
    nxg.add_nodes_from(all_refs)
    connected: list[tuple[NodeRef, NodeRef]] = []
    while len(connected) < args.queries:
        a = rng.choice(by_kind[K.FEATURE_VIEW] + by_kind[K.DATA_SOURCE] + by_kind[K.FEATURE])
        below = list(nx.descendants(nxg, a))
        if below:
            b = rng.choice(below)
            connected.append((a, b) if rng.random() < 0.5 else (b, a))
    unconnected: list[tuple[NodeRef, NodeRef]] = []
    while len(unconnected) < args.queries:
        a, b = rng.choice(all_refs), rng.choice(all_refs)
        if a != b and not nx.has_path(nxg, a, b) and not nx.has_path(nxg, b, a):
            unconnected.append((a, b))
    del nxg

    cases: list[tuple[str, str, list[Callable[[], object]]]] = [
        ("`upstream_of(ref, depth=2)`", "any node", [lambda r=r: graph.upstream_of(r, depth=2) for r in picks]),
        ("`upstream_of(ref)`", "any node", [lambda r=r: graph.upstream_of(r) for r in picks]),
        ("`upstream_of(ref)`", "models (heavy)", [lambda r=r: graph.upstream_of(r) for r in models]),
        ("`downstream_of(ref, depth=2)`", "any node", [lambda r=r: graph.downstream_of(r, depth=2) for r in picks]),
        ("`downstream_of(ref)`", "any node", [lambda r=r: graph.downstream_of(r) for r in picks]),
        (
            "`downstream_of(ref)`",
            "raw tables / data sources (heavy)",
            [lambda r=r: graph.downstream_of(r) for r in heavy_roots],
        ),
        (
            "`downstream_of(ref)`",
            "the 10 most-read raw tables (worst case)",
            [lambda r=r: graph.downstream_of(r) for r in hub_calls],
        ),
        (
            "`downstream_of(ref, depth=2)`",
            "the 10 most-read raw tables",
            [lambda r=r: graph.downstream_of(r, depth=2) for r in hub_calls],
        ),
        ("`path_between(a, b)`", "connected pairs", [lambda p=p: graph.path_between(*p) for p in connected]),
        ("`path_between(a, b)`", "unconnected pairs", [lambda p=p: graph.path_between(*p) for p in unconnected]),
        (
            "`impact_of(ref)`",
            "raw tables / data sources (heavy)",
            [lambda r=r: graph.impact_of(r) for r in heavy_roots],
        ),
        (
            "`impact_of(ref)`",
            "the 10 most-read raw tables (worst case)",
            [lambda r=r: graph.impact_of(r) for r in hub_calls],
        ),
        ("`impact_of(ref)`", "any node", [lambda r=r: graph.impact_of(r) for r in picks]),
    ]
    for warm in cases:  # one warm-up call per case (imports, caches); not measured
        warm[2][0]()
    rows = []
    for name, over, calls in cases:
        times, sizes = [], []
        for call in calls:
            ms, out = timed(call)
            times.append(ms)
            sizes.append(size_of(out))
        times.sort()
        p99 = times[max(0, round(0.99 * len(times)) - 1)]
        rows.append(
            (name, over, len(times), statistics.median(times), p99, times[-1], statistics.median(sizes), max(sizes))
        )
        print(
            f"{name:34} {over:36} p50 {rows[-1][3]:8.3f} p99 {p99:8.3f} max {times[-1]:8.3f} size p50"
            f" {rows[-1][6]:,.0f} max {rows[-1][7]:,}",
            flush=True,
        )
    rss3 = rss_mib()
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    if not args.dry_run:
        write(rows, nodes, edges, kinds, gen_s, build_s, (rss0, rss1, rss2, rss3, peak), time.perf_counter() - started)


def write(rows, nodes, edges, kinds, gen_s, build_s, rss, total_s) -> None:  # type: ignore[no-untyped-def]
    rss0, rss1, rss2, rss3, peak = rss
    lines = [
        START,
        "# Lineage queries on a 100,000-node graph",
        "",
        "Written by `bench/lineage.py`; every number below was measured by the run it describes.",
        "",
        "- command: `.venv/bin/python bench/lineage.py` (from the project root)",
        f"- date: {datetime.now(UTC):%Y-%m-%d %H:%M} UTC; whole run {total_s:.0f} s",
        f"- machine: {machine()}; 1-min load average at the end {os.getloadavg()[0]:.2f} (other sessions may share it)",
        f"- versions: Python {platform.python_version()}, networkx {nx.__version__}, numpy {np.__version__}",
        f"- graph (seed {SEED}): {len(nodes):,} nodes, {len(edges):,} edges; "
        + ", ".join(f"{kind} {n:,}" for kind, n in kinds.items()),
        "- shape: raw tables have 10 columns and sources 8 (`defines`); each transform reads 1-4 raw tables and 2-5"
        " of each one's columns, and writes its source's columns; a source is written by one transform"
        " (200 by none), a view reads"
        " 1-2 sources and is keyed by 1-2 entities and defines 5-35 features, each derived from one"
        " source column, an on-demand view reads 1-3 views and derives"
        " 1-6 features from 1-4 inputs each, a service includes 30-100 % of the features of 1-5 views,"
        " a training set is"
        " trained on 1-2 services and each of their features (as `lineage.builders` records it), a"
        " model on 1-5 training"
        " sets; parents are drawn with Zipf-like weights (1 / rank^0.5-0.9), so a few tables, sources"
        " and views are hubs.",
        f"- build: generating the values {gen_s:.2f} s; `LineageGraph.of(nodes, edges)` {build_s:.2f} s"
        " (networkx graph, cycle check and the query index)",
        f"- memory (VmRSS, MiB = 2^20 bytes): {rss0:.0f} at start, {rss1:.0f} with the node/edge values,"
        f" {rss2:.0f} after `LineageGraph.of` (+{rss2 - rss1:.0f} for the graph), {rss3:.0f} after the queries;"
        f" peak {peak:.0f}",
        f"- method: {rows[0][2]:,} calls per row on nodes drawn with the same seed (uniformly from all"
        " nodes for 'any node',"
        " so most are features); one warm-up call per row, then each call timed alone with `time.perf_counter`,"
        " GC left on; p99 = nearest rank; 'result' = nodes in the Subgraph or list returned. Path pairs are checked"
        " connected / unconnected with a separate networkx graph before timing.",
        "",
        "| query | on | calls | p50 ms | p99 ms | max ms | result p50 | result max | p99 ≤ 20 ms |",
        "|---|---|---:|---:|---:|---:|---:|---:|---|",
    ]
    for name, over, n, p50, p99, worst, size50, size_max in rows:
        verdict = "met" if p99 <= TARGET_MS else "**NOT met**"
        lines.append(
            f"| {name} | {over} | {n:,} | {p50:.3f} | {p99:.3f} | {worst:.3f} | {size50:,.0f} | {size_max:,}"
            f" | {verdict} |"
        )
    lines += [END]
    block = "\n".join(lines)
    text = RESULTS.read_text() if RESULTS.exists() else ""
    if START in text and END in text:
        head, rest = text.split(START, 1)
        _, tail = rest.split(END, 1)
        text = head + block + tail
    else:
        text = text.rstrip("\n") + "\n\n" + block + "\n"
    RESULTS.write_text(text)
    print(f"wrote {RESULTS}")


if __name__ == "__main__":
    gc.collect()
    main()
