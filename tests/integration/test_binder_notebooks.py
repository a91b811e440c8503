"""The notebook runner the `notebooks` probe sends into an image, run here for real with
nbclient and a real ipykernel (the test extra), as it runs in the image."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from nbpipe.probes import run_notebook

pytest.importorskip("nbclient", reason="nbclient (in the test extra) runs the notebooks")
pytest.importorskip("ipykernel", reason="ipykernel (in the test extra) is the kernel")

REPO = Path(__file__).parents[1] / "binder" / "repo"


def notebook(path: Path, *cells: str) -> Path:
    path.write_text(
        json.dumps(
            {
                "cells": [
                    {
                        "cell_type": "code",
                        "execution_count": None,
                        "metadata": {},
                        "outputs": [],
                        "source": c,
                    }
                    for c in cells
                ],
                "metadata": {
                    "kernelspec": {
                        "name": "python3",
                        "language": "python",
                        "display_name": "Python 3",
                    }
                },
                "nbformat": 4,
                "nbformat_minor": 5,
            }
        )
    )
    return path


def run(path: str, home: Path, timeout: float = 60, *extra: str) -> tuple[int, dict]:
    r = subprocess.run(
        [sys.executable, run_notebook.__file__, path, str(timeout), *extra],
        capture_output=True,
        text=True,
        timeout=timeout + 60,
        env={**os.environ, "HOME": str(home)},
    )
    lines = [line for line in r.stdout.splitlines() if line.startswith(run_notebook.MARK)]
    assert lines, r.stdout + r.stderr
    return r.returncode, json.loads(lines[-1][len(run_notebook.MARK) :])


def test_the_failing_notebook_fails_on_its_third_cell(tmp_path: Path) -> None:
    (tmp_path / "fails.ipynb").write_bytes((REPO / "fails.ipynb").read_bytes())
    rc, result = run("fails.ipynb", tmp_path)  # (the kernel writes to $HOME)
    assert rc == 1
    assert result == {"cell": 3, "error": "ZeroDivisionError: division by zero"}


def test_a_notebook_runs_in_its_own_folder_with_the_servers_environment(tmp_path: Path) -> None:
    (tmp_path / "work").mkdir()
    (tmp_path / "work" / "data.txt").write_text("42\n")
    notebook(
        tmp_path / "work" / "nb.ipynb",
        "import os\nassert open('data.txt').read() == '42\\n', os.getcwd()",
        "assert os.environ['FROM_START'] == 'yes', os.environ.get('FROM_START')",
    )
    server = subprocess.Popen(
        [sys.executable, "-c", "import time; time.sleep(60)"],
        env={**os.environ, "FROM_START": "yes"},
    )
    try:
        rc, result = run("work/nb.ipynb", tmp_path, 60, str(server.pid))
        assert rc == 0 and result["cells"] == 2, result
        rc, result = run("work/nb.ipynb", tmp_path, 60)  # without it: what start set is gone
        assert rc == 1 and result == {"cell": 2, "error": "KeyError: 'FROM_START'"}
    finally:
        server.kill()
        server.wait()


def test_the_timeout_bounds_the_whole_notebook(tmp_path: Path) -> None:
    notebook(
        tmp_path / "slow.ipynb", "import time\ntime.sleep(1)", "time.sleep(1)", "time.sleep(30)"
    )
    rc, result = run("slow.ipynb", tmp_path, 6)  # each cell alone would be within it
    assert rc == 1 and result == {"cell": 3, "error": "the notebook did not finish within 6s"}


def test_a_missing_notebook_says_so(tmp_path: Path) -> None:
    rc, result = run("nope.ipynb", tmp_path, 10)
    assert rc == 2 and result["error"].startswith("cannot read it: FileNotFoundError")
