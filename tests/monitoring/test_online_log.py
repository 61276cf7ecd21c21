"""Online feature logging: what ``/get-online-features`` served is logged off the request path, read
back exactly (``read_log``, ``GET /monitoring/online-log``), sampled per feature service, dropped
only as counted when the queue is full, flushed at shutdown and expired by retention."""

import io
import threading
from datetime import timedelta

import pandas as pd
import pytest

from service.monitoring.online_log import LogRecord, expire_partitions, read_log, write_partition
from service.settings import Settings
from tests.conftest import REPLAY_NOW
from tests.monitoring.conftest import app_client, metric

WINDOW = {"start": "2013-12-30T00:00:00Z", "end": "2013-12-31T01:00:00Z"}
V1 = "delay_model_v1"


def read(client, service, origins, carriers):
    answer = client.post(
        "/get-online-features", json={"feature_service": service, "entities": {"origin": origins, "carrier": carriers}}
    )
    assert answer.status_code == 200, answer.text
    return answer


def test_served_reads_are_logged_exactly(live_repo):
    batches = [(["EWR"], ["UA"]), (["JFK", "LGA", "EWR"], ["B6", "DL", "AA"]), (["LGA"], ["ZZ"])]
    with app_client(live_repo, REPLAY_NOW) as client:
        answers = [read(client, V1, o, c) for o, c in batches]
    settings = Settings(repo=live_repo, now=REPLAY_NOW)
    log = read_log(settings, REPLAY_NOW - timedelta(hours=1), REPLAY_NOW + timedelta(hours=1))
    assert len(log) == 5 and set(log["feature_service"]) == {V1}
    assert (log["logged_at"] == pd.Timestamp(REPLAY_NOW)).all()
    # one request id and sequence number per request, in serving order; rows in request order
    ids = [a.headers["x-request-id"] for a in answers]
    assert log["request_id"].tolist() == [ids[0], ids[1], ids[1], ids[1], ids[2]]
    sequences = log["sequence"].tolist()
    assert sequences[1] == sequences[2] == sequences[3] and sequences[0] < sequences[1] < sequences[4]
    assert log["row"].tolist() == [0, 0, 1, 2, 0]
    # every value, status and event timestamp as answered
    at = 0
    for (origins, carriers), answer in zip(batches, answers, strict=True):
        body = answer.json()
        names = body["metadata"]["feature_names"]
        rows = log.iloc[at : at + len(origins)]
        assert rows["origin"].tolist() == origins and rows["carrier"].tolist() == carriers
        for name, result in zip(names[2:], body["results"][2:], strict=True):
            logged = [None if pd.isna(v) else v for v in rows[name].tolist()]
            assert logged == result["values"], name
            assert rows[f"{name}__status"].tolist() == result["statuses"], name
            stamps = [
                "1970-01-01T00:00:00Z" if pd.isna(t) else t.strftime("%Y-%m-%dT%H:%M:%SZ")
                for t in rows[f"{name}__event_timestamp"]
            ]
            assert stamps == result["event_timestamps"], name
        at += len(origins)
    assert "NOT_FOUND" in log["flights_7d__status"].tolist()  # carrier ZZ


def test_online_log_route_answers_parquet_and_json(live_repo):
    with app_client(live_repo, REPLAY_NOW) as client:
        read(client, V1, ["EWR", "JFK"], ["UA", "B6"])
        client.app.state.online_log.flush()
        parquet = client.get("/monitoring/online-log", params=WINDOW)
        as_json = client.get(
            "/monitoring/online-log", params=WINDOW | {"feature_service": V1}, headers={"accept": "application/json"}
        )
        other = client.get("/monitoring/online-log", params=WINDOW | {"feature_service": "delay_model_v2"})
        unknown = client.get("/monitoring/online-log", params=WINDOW | {"feature_service": "nope"})
        backwards = client.get("/monitoring/online-log", params={"start": WINDOW["end"], "end": WINDOW["start"]})
        naive = client.get("/monitoring/online-log", params={"start": "2013-12-30T00:00:00", "end": WINDOW["end"]})
    assert parquet.status_code == 200 and parquet.headers["content-type"] == "application/vnd.apache.parquet"
    frame = pd.read_parquet(io.BytesIO(parquet.content))
    expected = read_log(Settings(repo=live_repo), REPLAY_NOW - timedelta(days=1), REPLAY_NOW + timedelta(hours=1))
    assert frame["request_id"].tolist() == expected["request_id"].tolist() and len(frame) == 2
    assert frame["temp"].tolist() == expected["temp"].tolist()
    body = as_json.json()
    assert body["row_count"] == 2 and [r["origin"] for r in body["rows"]] == ["EWR", "JFK"]
    assert body["rows"][0]["logged_at"] == "2013-12-31T00:00:00Z"
    assert body["rows"][0]["temp__status"] == "PRESENT"
    assert len(pd.read_parquet(io.BytesIO(other.content))) == 0  # v2 was never read
    assert unknown.status_code == 404
    assert backwards.status_code == 422 and backwards.json()["field"] == "query.end"
    assert naive.status_code == 422


def test_sampling_is_per_feature_service(live_repo):
    with app_client(live_repo, REPLAY_NOW) as client:
        answer = client.post(
            "/get-online-features", json={"feature_service": "unlogged_weather", "entities": {"origin": ["EWR"]}}
        )
        listed = client.post(
            "/get-online-features", json={"features": ["origin_weather:temp"], "entities": {"origin": ["EWR"]}}
        )
        assert answer.status_code == listed.status_code == 200
        assert answer.headers["x-request-id"] != listed.headers["x-request-id"]
        read(client, V1, ["EWR"], ["UA"])
    log = read_log(Settings(repo=live_repo), REPLAY_NOW, REPLAY_NOW + timedelta(seconds=1))
    assert log["feature_service"].tolist() == [V1]  # rate 0 and a features list: not logged


def test_a_full_queue_drops_records_only_as_counted_and_never_fails_a_read(live_repo):
    with app_client(live_repo, REPLAY_NOW, online_log_queue=5) as client:
        online_log = client.app.state.online_log
        online_log.close()  # no writer: the queue fills after 5 records
        answers = [read(client, V1, ["EWR"], ["UA"]) for _ in range(40)]
        assert all(a.json()["results"][2]["statuses"] == ["PRESENT"] for a in answers)
        assert metric(client, "feastline_online_log_queue_records") == 5
        online_log.start(client.app.state.feature_store)
        online_log.flush()
        assert metric(client, "feastline_online_log_records_total", feature_service=V1, outcome="dropped") == 35
        assert metric(client, "feastline_online_log_records_total", feature_service=V1, outcome="logged") == 5
    log = read_log(Settings(repo=live_repo), REPLAY_NOW, REPLAY_NOW + timedelta(seconds=1))
    assert log["request_id"].tolist() == [a.headers["x-request-id"] for a in answers[:5]]


def test_concurrent_burst_served_equals_logged_plus_dropped(live_repo):
    threads, per_thread = 6, 30
    errors: list[str] = []
    ids: list[str] = []
    with app_client(live_repo, REPLAY_NOW, online_log_queue=8, online_log_flush_seconds=0.01) as client:

        def burst() -> None:
            for _ in range(per_thread):
                answer = client.post(
                    "/get-online-features",
                    json={"feature_service": V1, "entities": {"origin": ["EWR", "JFK"], "carrier": ["UA", "B6"]}},
                )
                if answer.status_code != 200:
                    errors.append(answer.text)
                ids.append(answer.headers["x-request-id"])

        workers = [threading.Thread(target=burst) for _ in range(threads)]
        for w in workers:
            w.start()
        for w in workers:
            w.join()
        client.app.state.online_log.flush()
        logged = metric(client, "feastline_online_log_records_total", feature_service=V1, outcome="logged")
        dropped = metric(client, "feastline_online_log_records_total", feature_service=V1, outcome="dropped")
    assert errors == []
    assert logged + dropped == threads * per_thread
    log = read_log(Settings(repo=live_repo), REPLAY_NOW, REPLAY_NOW + timedelta(seconds=1))
    assert log["request_id"].nunique() == logged and len(log) == 2 * logged
    assert set(log["request_id"]) <= set(ids)
    assert log.groupby("request_id")["sequence"].nunique().eq(1).all()
    assert log.drop_duplicates("request_id")["sequence"].is_unique


def test_shutdown_flushes_and_sequence_continues_after_restart(live_repo):
    with app_client(live_repo, REPLAY_NOW, online_log_flush_seconds=3600) as client:
        read(client, V1, ["EWR"], ["UA"])  # not flushed for an hour...
    settings = Settings(repo=live_repo)
    window = (REPLAY_NOW, REPLAY_NOW + timedelta(hours=2))
    first = read_log(settings, *window)
    assert len(first) == 1  # ...but the shutdown wrote it
    later = REPLAY_NOW + timedelta(hours=1)
    with app_client(live_repo, later) as client:
        read(client, V1, ["JFK"], ["B6"])
    both = read_log(settings, *window)
    assert both["origin"].tolist() == ["EWR", "JFK"]
    assert both["sequence"].tolist()[1] > both["sequence"].tolist()[0]
    assert len(read_log(settings, later, later + timedelta(seconds=1))) == 1


def test_retention_deletes_old_hour_partitions(tmp_path):
    root = tmp_path / "log"

    def record(at, seq):
        return LogRecord(
            "r",
            at,
            seq,
            V1,
            {"origin": ["EWR"]},
            ["temp"],
            [{"values": [1.5], "statuses": ["PRESENT"], "event_timestamps": ["2013-12-30T23:00:00Z"]}],
        )

    hours = [REPLAY_NOW - timedelta(hours=h) for h in (0, 5, 30)]
    for i, at in enumerate(hours):
        write_partition(root, V1, at.strftime("%Y-%m-%dT%H"), [record(at, i)])
    removed = expire_partitions(root, REPLAY_NOW - timedelta(hours=24))
    assert [p.name for p in removed] == [f"hour={hours[2].strftime('%Y-%m-%dT%H')}"]
    settings = Settings(repo=tmp_path, online_log_dir=root)
    left = read_log(settings, REPLAY_NOW - timedelta(days=3), REPLAY_NOW + timedelta(hours=1))
    assert sorted(left["sequence"].tolist()) == [0, 1]
    assert left["temp"].tolist() == [1.5, 1.5]
    # the retention setting, applied by the writer at the service clock
    with app_client_none(tmp_path, root):
        pass
    left = read_log(settings, REPLAY_NOW - timedelta(days=3), REPLAY_NOW + timedelta(hours=1))
    assert left["sequence"].tolist() == [0]


def app_client_none(tmp_path, root):
    """An online log alone (no app), with 2 h retention at the pinned clock, started and closed."""
    from contextlib import contextmanager

    from service.monitoring.online_log import OnlineLog

    @contextmanager
    def run():
        online_log = OnlineLog(
            Settings(repo=tmp_path, online_log_dir=root, now=REPLAY_NOW, online_log_retention_hours=2)
        )
        online_log.start(None)  # type: ignore[arg-type]
        yield online_log
        online_log.close()

    return run()


@pytest.mark.parametrize("bad", [{"start": "x", "end": WINDOW["end"]}, {"end": WINDOW["end"]}])
def test_bad_windows_are_422(client, bad):
    answer = client.get("/monitoring/online-log", params=bad)
    assert answer.status_code == 422


def test_records_of_mixed_shapes_become_the_rows_they_served(tmp_path):
    """Records of 1 and 3 entities, one answering a feature fewer, event times in the answered form,
    in other ISO 8601 forms and the epoch (none): the table's rows, column by column, written out."""
    stamps = ["2013-12-30T23:00:00Z", "2013-12-30T22:30:00.5+01:00", "1970-01-01T00:00:00Z"]
    one = LogRecord(
        "a",
        REPLAY_NOW,
        7,
        V1,
        {"origin": ["EWR"]},
        ["temp", "humid"],
        [
            {"values": [1.5], "statuses": ["PRESENT"], "event_timestamps": [stamps[0]]},
            {"values": [None], "statuses": ["NOT_FOUND"], "event_timestamps": [stamps[2]]},
        ],
    )
    three = LogRecord(
        "b",
        REPLAY_NOW,
        8,
        V1,
        {"origin": ["JFK", "LGA", "EWR"]},
        ["temp"],
        [{"values": [2.0, 3.0, None], "statuses": ["PRESENT"] * 2 + ["NULL_VALUE"], "event_timestamps": stamps}],
    )
    path = write_partition(tmp_path, V1, REPLAY_NOW.strftime("%Y-%m-%dT%H"), [one, three])
    table = pd.read_parquet(path)
    assert table["request_id"].tolist() == ["a", "b", "b", "b"]
    assert table["sequence"].tolist() == [7, 8, 8, 8]
    assert table["row"].tolist() == [0, 0, 1, 2]
    assert table["origin"].tolist() == ["EWR", "JFK", "LGA", "EWR"]
    assert table["temp"].tolist()[:3] == [1.5, 2.0, 3.0] and pd.isna(table["temp"].iloc[3])
    assert table["temp__status"].tolist() == ["PRESENT", "PRESENT", "PRESENT", "NULL_VALUE"]
    utc = [pd.Timestamp("2013-12-30T23:00:00", tz="UTC"), pd.Timestamp("2013-12-30T21:30:00.5", tz="UTC")]
    assert table["temp__event_timestamp"].tolist()[:3] == [utc[0], utc[0], utc[1]]
    assert pd.isna(table["temp__event_timestamp"].iloc[3])  # the epoch: none answered
    assert pd.isna(table["humid"].iloc[0]) and table["humid__status"].tolist() == ["NOT_FOUND", None, None, None]
    assert table["humid__event_timestamp"].isna().all()
    assert str(table["temp__event_timestamp"].dtype) == "datetime64[ns, UTC]"
