"""lineage.runs: a pipeline run records each step's hashes, counts, status and timestamps."""

import hashlib
import json
import re
from pathlib import Path

import pytest

from lineage.runs import PipelineRun, code_sha256

ISO_Z = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z$")
RUN_KEYS = {"run_id", "started_at", "finished_at", "status", "steps", "parameters", "error"}
STEP_KEYS = {
    "step",
    "code_sha256",
    "inputs",
    "output",
    "data_source",
    "column_lineage",
    "rows_in",
    "rows_out",
    "rows_quarantined",
    "quarantine_path",
    "quality",
    "started_at",
    "finished_at",
    "status",
    "parameters",
    "error",
}


def double(rows: list[int]) -> list[int]:
    return [2 * r for r in rows]


def keep_small(rows: list[int]) -> list[int]:
    return [r for r in rows if r < 5]


def write(path: Path, rows: list[int]) -> Path:
    path.write_text("\n".join(map(str, rows)))
    return path


def sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_two_steps_record_hashes_counts_and_status(tmp_path):
    raw = write(tmp_path / "raw.txt", [1, 2, 3, 4])
    with PipelineRun("toy", parameters={"factor": 2}) as run:
        with run.step("double", code=double, data_source="doubled_source", column_lineage={"v": ["raw.v"]}) as s:
            s.read("raw", raw, rows=4)
            out = write(tmp_path / "doubled.txt", double([1, 2, 3, 4]))
            s.wrote("doubled", out, columns={"v": "int64"})
            s.counts(rows_out=4)
        with run.step("keep_small", code=keep_small) as s:
            s.read("doubled", out, rows=4)
            kept = write(tmp_path / "kept.txt", keep_small([2, 4, 6, 8]))
            s.wrote("kept", kept, columns={"v": "int64"})
            s.counts(rows_out=2, rows_quarantined=2, quarantine_path=tmp_path / "q.txt")
            s.quality_result({"passed": False, "failures": [{"row": 2, "column": "v", "value": 6}]})
    record = run.to_record()
    assert record["status"] == "completed" and record["error"] is None
    assert record["parameters"] == {"factor": 2}
    first, second = record["steps"]
    assert first["inputs"] == [{"table": "raw", "path": str(raw), "sha256": sha(raw), "rows": 4}]
    assert first["output"] == {"table": "doubled", "path": str(out), "sha256": sha(out), "columns": {"v": "int64"}}
    assert first["code_sha256"] == code_sha256(double) and len(first["code_sha256"]) == 64
    assert first["code_sha256"] != second["code_sha256"]
    assert (first["rows_in"], first["rows_out"], first["rows_quarantined"]) == (4, 4, 0)
    assert (second["rows_in"], second["rows_out"], second["rows_quarantined"]) == (4, 2, 2)
    assert second["quarantine_path"] == str(tmp_path / "q.txt")
    assert second["quality"]["failures"][0]["value"] == 6
    assert first["data_source"] == "doubled_source" and first["column_lineage"] == {"v": ["raw.v"]}
    assert [s["status"] for s in record["steps"]] == ["completed", "completed"]
    stamps = [record["started_at"], *(s[k] for s in record["steps"] for k in ("started_at", "finished_at"))]
    stamps.append(record["finished_at"])
    assert all(ISO_Z.match(t) for t in stamps), stamps
    assert stamps == sorted(stamps)  # run starts, steps run in order, run finishes


def test_a_failing_step_marks_step_and_run_failed_and_reraises(tmp_path):
    run = PipelineRun("toy")
    with pytest.raises(ZeroDivisionError, match="division by zero"), run:
        with run.step("ok", code=double):
            pass
        with run.step("boom", code="1 / 0"):
            1 / 0  # noqa: B018
        with run.step("never"):
            pass
    record = run.to_record()
    assert record["status"] == "failed"
    assert record["error"] == "ZeroDivisionError: division by zero"
    assert [(s["step"], s["status"]) for s in record["steps"]] == [("ok", "completed"), ("boom", "failed")]
    assert record["steps"][1]["error"] == "ZeroDivisionError: division by zero"
    assert ISO_Z.match(record["finished_at"]) and ISO_Z.match(record["steps"][1]["finished_at"])


def test_a_swallowed_step_failure_still_fails_the_run():
    with PipelineRun("toy") as run, pytest.raises(ValueError), run.step("bad"):
        raise ValueError("nope")
    assert run.to_record()["status"] == "failed"


def test_code_hash_changes_when_the_code_changes():
    source_v1 = "def f(x):\n    return x + 1\n"
    source_v2 = "def f(x):\n    return x + 2\n"
    assert code_sha256(source_v1) == hashlib.sha256(source_v1.encode()).hexdigest()
    assert code_sha256(source_v1) != code_sha256(source_v2)
    assert code_sha256(double) != code_sha256(keep_small)
    run = PipelineRun("toy")
    assert run.step("a", code=source_v1).code_sha256 != run.step("a", code=source_v2).code_sha256


def test_the_serialised_record_has_the_keys_readers_use(tmp_path):
    raw = write(tmp_path / "raw.txt", [1])
    with PipelineRun("toy") as run, run.step("double", code=double) as s:
        s.read("raw", raw, rows=1)
        s.wrote("doubled", raw, columns={"v": "int64"})
    record = json.loads(json.dumps(run.to_record()))
    assert set(record) >= RUN_KEYS
    [step] = record["steps"]
    assert set(step) >= STEP_KEYS
    assert set(step["inputs"][0]) == {"table", "path", "sha256", "rows"}
    assert set(step["output"]) == {"table", "path", "sha256", "columns"}
