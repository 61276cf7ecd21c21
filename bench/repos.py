"""Temporary copies of the Feast repo for the benchmark, one per offline store under test."""

import shutil
import subprocess
import sys
from pathlib import Path

import yaml

REPO_FILES = ("feature_store.yaml", "definitions.py", ".feastignore")
SKIPPED_DATA = ("training_sets",)  # stored training sets: big, and not read by any variant


def copy_repo(src: Path, dst: Path, offline_store: str | None = None) -> Path:
    """Copy the repo's definitions and ``data/`` to ``dst``; with ``offline_store``, select that store type.

    The copy keeps the registry of ``src``, so it serves as is when the store is unchanged; after a
    change of store, ``apply`` it.
    """
    dst.mkdir(parents=True)
    for name in REPO_FILES:
        shutil.copy2(src / name, dst / name)
    shutil.copytree(src / "data", dst / "data", ignore=lambda _dir, names: [n for n in names if n in SKIPPED_DATA])
    if offline_store:
        config = yaml.safe_load((dst / "feature_store.yaml").read_text())
        config["offline_store"] = {"type": offline_store}
        (dst / "feature_store.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    return dst


def feast_apply(repo: Path, log: Path) -> None:
    """``feast -c repo apply`` (Feast's own CLI, not feastline's); raises with the log's tail on failure."""
    feast = Path(sys.executable).parent / "feast"
    with log.open("wb") as out:
        done = subprocess.run([str(feast), "-c", str(repo), "apply"], stdout=out, stderr=subprocess.STDOUT, timeout=300)
    if done.returncode:
        tail = log.read_text(errors="replace")[-2000:]
        raise RuntimeError(f"feast apply of {repo} failed ({done.returncode}):\n{tail}")
