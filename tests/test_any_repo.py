"""feastline on any small Feast repo: random repos (tests/repo_gen.py, repo_gen_files.py), applied and served.

For each generated repo the test checks, through the ASGI app (a 5xx fails at once):

1. ``POST /training-sets`` (JSON, the feature service, full feature names) = :func:`reference_row`,
   a plain loop over each source in file order that reads the README's contract literally: the
   row with the greatest ``(event_ts, created known, created_ts, file row)`` such that
   ``event_ts <= t``, ``event_ts >= t - ttl`` (TTL 0 or none: no bound) and, under the created
   cut-off, a known ``created_ts <= t`` (a null ``created`` is unknown knowledge time: excluded under
   the cut-off, and below any known ``created`` at an event-time tie). Checked with the cut-off (the
   default) and with ``allow_created_after_entity``.
2. after ``POST /materialize`` up to the clock, ``POST /get-online-features`` at the clock = the same
   reference at the clock with the cut-off off (the online store holds every row the materializer
   read, whatever its ``created``): value and status (``NOT_FOUND``, ``OUTSIDE_MAX_AGE``,
   ``NULL_VALUE``, ``PRESENT``).
3. ``POST /push`` (``online_and_offline``) then an online read and a training set at the clock give
   the pushed values.

Values are compared exactly and with their JSON type (an ``Int64`` 2**63-1 is that integer, a
``Float32`` 1.111 is 1.111). ``FEASTLINE_REPO_GEN_KINDS`` narrows the repos drawn (see
tests/repo_gen.py), ``FEASTLINE_REPO_GEN_EXAMPLES`` sets how many (default 100),
``FEASTLINE_REPO_GEN_SHRINK=0`` skips shrinking.
"""

import os
import time
import uuid
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from service.app import create_app
from service.settings import Settings
from tests.conftest import NoServerErrorClient
from tests.repo_gen import BASE, RepoDef, ViewDef, kinds_from_env, repos
from tests.repo_gen_files import apply_repo, definitions_code, expected_json, iso, wire_key, wire_value, write_repo

EXAMPLES = int(os.environ.get("FEASTLINE_REPO_GEN_EXAMPLES", "100"))
# FEASTLINE_REPO_GEN_SHRINK=0: report the first failing repo as drawn (quicker while surveying failures)
PHASES = tuple(p for p in Phase if p is not Phase.shrink or os.environ.get("FEASTLINE_REPO_GEN_SHRINK") != "0")
TIMINGS: list[float] = []


# --- the reference -------------------------------------------------------------------------------


def matches(view: ViewDef, row: dict[str, Any], entity: dict[str, Any], columns: dict[str, str]) -> bool:
    """Whether a feature row belongs to the entity row; ``columns``: join key -> entity-row column."""
    return all(row[key] == entity[columns.get(key, key)] for key in row if key in columns)


def reference_row(
    repo: RepoDef,
    view: ViewDef,
    entity: dict[str, Any],
    t: pd.Timestamp,
    created_filter: bool,
    key_map: dict[str, str] | None = None,
    use_ttl: bool = True,
) -> dict[str, Any] | None:
    """The row the contract picks for one entity row at ``t``, or None."""
    columns = {k: (key_map or {}).get(k, k) for k in repo.keys(view)}
    best, best_rank = None, None
    for file_row, row in enumerate(view.rows):
        if any(row[k] != entity[c] for k, c in columns.items()):
            continue
        if row["event_ts"] > t:
            continue
        if use_ttl and view.ttl and row["event_ts"] < t - pd.Timedelta(seconds=view.ttl):
            continue
        if created_filter and view.has_created and (row["created"] is None or row["created"] > t):
            continue
        known = row["created"] is not None
        rank = (row["event_ts"], known, row["created"] if known else BASE, file_row)
        if best_rank is None or rank > best_rank:
            best, best_rank = row, rank
    return best


def expected_features(
    repo: RepoDef, entity: dict[str, Any], t: pd.Timestamp, created_filter: bool, online: bool = False
) -> dict:
    """Column -> expected JSON value for the feature service ``svc`` with full feature names (``online``:
    as ``/get-online-features`` answers it, see ``expected_json``)."""
    out: dict[str, Any] = {}
    members = [(v, v.name, [f.name for f in v.features], {}) for v in repo.views]
    if repo.projection:
        p = repo.projection
        members.append((repo.view(p.view), p.alias, list(p.features), dict(p.key_map)))
    for view, name, features, key_map in members:
        row = reference_row(repo, view, entity, t, created_filter, key_map)
        for f in view.features:
            if f.name in features:
                out[f"{name}__{f.name}"] = expected_json(None if row is None else row[f.name], f.dtype, online)
    if repo.on_demand:
        o = repo.on_demand
        out[f"{o.name}__echo"] = expected_json(entity[o.request_field], o.request_dtype, online)
        if o.plus_of:
            row = reference_row(repo, repo.view(o.view), entity, t, created_filter)
            value = None if row is None else row[o.plus_of]
            out[f"{o.name}__plus"] = None if value is None else float(value) + 1.0
    return out


def same(got: Any, want: Any) -> bool:
    """Equal and of the same JSON type (True is not 1, 2.0 is not 2)."""
    if isinstance(want, list):
        return isinstance(got, list) and len(got) == len(want) and all(map(same, got, want))
    return type(got) is type(want) and got == want


# --- the requests --------------------------------------------------------------------------------


def entity_json(repo: RepoDef, entity: dict[str, Any], label: int) -> dict[str, Any]:
    row = {k: (iso(v) if k == "event_ts" else wire_key(v)) for k, v in entity.items()}
    row["event_timestamp"] = row.pop("event_ts")
    if repo.on_demand and repo.on_demand.request_field in entity:  # only rows of requests that read the view
        row[repo.on_demand.request_field] = wire_value(entity[repo.on_demand.request_field])
    row["label"] = label
    return row


def training_set(client: NoServerErrorClient, repo: RepoDef, entities: list[dict], allow_after: bool, **what):
    body = {
        **what,
        "full_feature_names": True,
        "allow_created_after_entity": allow_after,
        "entity_rows": [entity_json(repo, e, i) for i, e in enumerate(entities)],
    }
    response = client.post("/training-sets", json=body)
    assert response.status_code == 201, f"training set: {response.status_code} {response.text[:1500]}"
    return response.json()["rows"]


def service_columns(repo: RepoDef) -> list[str]:
    """The entity columns ``svc`` reads: its views' join keys, the projection's mapped keys, the request field."""
    columns = [k for v in repo.views for k in repo.keys(v)]
    if repo.projection:
        key_map = dict(repo.projection.key_map)
        columns += [key_map.get(k, k) for k in repo.keys(repo.view(repo.projection.view))]
    if repo.on_demand:
        columns.append(repo.on_demand.request_field)
    return list(dict.fromkeys(columns))


def online(
    client: NoServerErrorClient, repo: RepoDef, entities: list[dict], columns: list[str], **what
) -> dict[str, dict]:
    request_field = repo.on_demand.request_field if repo.on_demand else None
    body = {
        **what,
        "full_feature_names": True,
        "entities": {
            c: [wire_value(e[c]) if c == request_field else wire_key(e[c]) for e in entities] for c in columns
        },
    }
    response = client.post("/get-online-features", json=body)
    assert response.status_code == 200, f"online read: {response.status_code} {response.text[:1500]}"
    answer = response.json()
    return dict(zip(answer["metadata"]["feature_names"], answer["results"], strict=True))


def materialize(client: NoServerErrorClient, repo: RepoDef) -> None:
    body = {"start": iso(BASE - pd.Timedelta(days=1)), "end": iso(repo.clock), "feature_views": None}
    response = client.post("/materialize", json=body)
    assert response.status_code == 202, f"materialize: {response.status_code} {response.text[:1500]}"
    job_id = response.json()["id"]
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        job = client.get(f"/jobs/{job_id}").json()
        if job["status"] in ("completed", "failed"):
            break
        time.sleep(0.02)
    assert job["status"] == "completed", f"materialization job: {job}"


def compare(where: str, got: dict[str, Any], want: dict[str, Any]) -> list[str]:
    return [
        f"{where} {c}: feastline={got.get(c, '<missing>')!r} reference={w!r}"
        for c, w in want.items()
        if not same(got.get(c), w)
    ]


def online_status(repo: RepoDef, view: ViewDef, entity: dict, key_map: dict[str, str], value: Any) -> str:
    latest = reference_row(repo, view, entity, repo.clock, False, key_map, use_ttl=False)
    if latest is None:
        return "NOT_FOUND"
    if reference_row(repo, view, entity, repo.clock, False, key_map) is None:
        return "OUTSIDE_MAX_AGE"
    return "NULL_VALUE" if value is None else "PRESENT"


# --- the checks ----------------------------------------------------------------------------------


def check_training_sets(client: NoServerErrorClient, repo: RepoDef) -> list[str]:
    found = []
    entities = list(repo.entity_rows)
    for allow_after in (False, True):
        rows = training_set(client, repo, entities, allow_after, feature_service="svc")
        assert [r["label"] for r in rows] == list(range(len(entities))), "rows out of input order"
        for i, (entity, row) in enumerate(zip(entities, rows, strict=True)):
            want = expected_features(repo, entity, entity["event_ts"], created_filter=not allow_after)
            found += compare(f"training set (allow_created_after_entity={allow_after}) row {i} {entity}", row, want)
    return found


def check_online(client: NoServerErrorClient, repo: RepoDef) -> list[str]:
    materialize(client, repo)
    entities = [{**e, "event_ts": repo.clock} for e in repo.entity_rows]
    results = online(client, repo, entities, service_columns(repo), feature_service="svc")
    found = []
    members = [(v, v.name, {}) for v in repo.views]
    if repo.projection:
        members.append((repo.view(repo.projection.view), repo.projection.alias, dict(repo.projection.key_map)))
    for i, entity in enumerate(entities):
        want = expected_features(repo, entity, repo.clock, created_filter=False, online=True)
        got = {name: r["values"][i] for name, r in results.items() if name in want}
        found += compare(f"online row {i} {entity}", got, want)
        for view, name, key_map in members:
            for f in view.features:
                column = f"{name}__{f.name}"
                if column in want and column in results:
                    status = online_status(repo, view, entity, key_map, want[column])
                    if results[column]["statuses"][i] != status:
                        found.append(f"online row {i} {column}: status {results[column]['statuses'][i]} want {status}")
    return found


def check_push(client: NoServerErrorClient, repo: RepoDef) -> list[str]:
    view = repo.push_view
    if view is None:
        return []
    for pushed in repo.pushes:
        df = {k: [wire_key(pushed[k])] for k in repo.keys(view)}
        df[view.timestamp_column] = [iso(pushed["event_ts"])]
        if view.has_created:
            df[view.created_column] = [iso(pushed["created"])]
        for f in view.features:
            df[view.source_column(f.name)] = [wire_value(pushed[f.name])]
        body = {"push_source_name": f"{view.name}_push", "df": df, "to": "online_and_offline"}
        body["allow_client_created"] = view.has_created  # the generated pushes carry their own created times
        response = client.post("/push", json=body)
        assert response.status_code == 200, f"push {body}: {response.status_code} {response.text[:1500]}"
    last: dict[tuple, dict] = {}  # per key the newest event time wins; a tie: the later push
    for p in repo.pushes:
        key = tuple(wire_key(p[k]) for k in repo.keys(view))
        if key not in last or p["event_ts"] >= last[key]["event_ts"]:
            last[key] = p
    entities = [{**{k: p[k] for k in repo.keys(view)}, "event_ts": repo.clock} for p in last.values()]
    refs = [f"{view.name}:{f.name}" for f in view.features]
    results = online(client, repo, entities, list(repo.keys(view)), features=refs)
    rows = training_set(client, repo, entities, False, features=refs)
    found = []
    for i, pushed in enumerate(last.values()):
        want = {f"{view.name}__{f.name}": expected_json(pushed[f.name], f.dtype, True) for f in view.features}
        found += compare(f"online after push {i}", {n: r["values"][i] for n, r in results.items()}, want)
        want = {f"{view.name}__{f.name}": expected_json(pushed[f.name], f.dtype) for f in view.features}
        found += compare(f"training set after push {i}", rows[i], want)
    return found


def check_repo(repo: RepoDef, folder: Path) -> None:
    start = time.perf_counter()
    write_repo(repo, folder)
    apply_repo(folder)
    with NoServerErrorClient(create_app(Settings(repo=folder, now=repo.clock.to_pydatetime()))) as client:
        found = check_training_sets(client, repo)
        found += check_online(client, repo)
        found += check_push(client, repo)
    TIMINGS.append(time.perf_counter() - start)
    assert not found, (
        "feastline differs from the reference:\n"
        + "\n".join(found[:40])
        + f"\n--- repo ---\n{repo.describe()}\n--- definitions.py ---\n{definitions_code(repo)}"
    )


@pytest.fixture(scope="module", autouse=True)
def report_timings():  # type: ignore[no-untyped-def]
    """Print the wall time per repo (write + apply + serve + checks) when the module ends (``-s`` shows it)."""
    yield
    if TIMINGS:
        t = sorted(TIMINGS)
        print(f"\nrepos {len(t)}: per repo median {t[len(t) // 2]:.2f} s, max {t[-1]:.2f} s, total {sum(t):.1f} s")


@pytest.mark.slow
@settings(
    max_examples=EXAMPLES,
    deadline=None,
    phases=PHASES,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture, HealthCheck.data_too_large],
)
@given(data=st.data())
def test_any_small_repo_is_served_as_the_reference_says(data: st.DataObject, tmp_path: Path) -> None:
    repo = data.draw(repos(kinds_from_env()), label="repo")
    check_repo(repo, tmp_path / uuid.uuid4().hex[:12])
