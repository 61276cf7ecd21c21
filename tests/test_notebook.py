"""The walkthrough notebook runs top to bottom against a live ``feastline serve`` over the built repo.

The notebook's own ``assert`` cells check the product; this test adds that the server answered no
request with a 5xx (read from uvicorn's access log). The server serves a private copy of the built repo:
the notebook pushes weather (online and offline), logs online reads and registers a model, none of
which may reach the session's shared repo.
"""

from pathlib import Path

import nbclient
import nbformat
import pytest
from nbclient.exceptions import CellExecutionError

from tests.conftest import copy_repo
from tests.live_server import live_server

NOTEBOOKS = Path(__file__).resolve().parents[1] / "notebooks_demo"
WALKTHROUGH = NOTEBOOKS / "walkthrough.ipynb"


@pytest.mark.slow
def test_walkthrough_runs_against_a_live_server(
    built_repo: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    repo = copy_repo(built_repo, tmp_path / "repo", ignore=("training_sets", "online_log"))
    log = tmp_path / "server.log"
    with live_server(repo, log) as url:
        monkeypatch.setenv("FEASTLINE_URL", url)
        monkeypatch.setenv("FEASTLINE_REPO", str(repo))
        nb = nbformat.read(WALKTHROUGH, as_version=4)
        client = nbclient.NotebookClient(
            nb, timeout=300, kernel_name="python3", resources={"metadata": {"path": str(NOTEBOOKS)}}
        )
        try:
            client.execute()
        except CellExecutionError as err:
            pytest.fail(f"{err}\n--- server output ---\n{log.read_text()}")
    served = log.read_text()
    assert "POST /training-sets" in served, f"no training set was requested:\n{served}"
