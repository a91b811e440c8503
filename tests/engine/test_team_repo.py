"""A team repository from `nbpipe new --repo`, outside this one, runs its own test with the
installed wheel (not this checkout): the nbpipe CLI builds its image on our (already built)
jupyter and probes it with the whole contract plus the image's own probes."""

from __future__ import annotations

import json
import os
import subprocess

import pytest

from nbpipe.cli import scaffold

from .conftest import run_pipeline

pytestmark = pytest.mark.engine


def test_scaffolded_repo_builds_and_passes_the_contract(
    local_family,
    engine,
    platform,
    options,
    state_dir,
    venv,  # noqa: F811  (the fixture imported above)
    tmp_path,
) -> None:
    jupyter = run_pipeline(
        local_family, engine, platform, options, state_dir, ["jupyter"], probe=False
    )["jupyter"]  # shared with the other engine tests
    assert jupyter.ok, jupyter.message
    repo = tmp_path / "team-x"
    scaffold.write_repo("team-x", "jupyter", repo)
    temp = tmp_path / "pytest"
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "NBPIPE_CATALOG")}
    r = subprocess.run(
        [
            venv / "bin" / "python",
            "-m",
            "pytest",
            "tests",
            "-q",
            "-rs",
            "-p",
            "no:cacheprovider",
            "--basetemp",
            str(temp),
        ],
        cwd=repo,
        env=env,
        capture_output=True,
        text=True,
        timeout=1500,
    )
    assert r.returncode == 0 and "1 passed" in r.stdout, r.stdout[-4000:] + r.stderr[-2000:]
    where = subprocess.run(
        [venv / "bin" / "python", "-c", "import nbpipe; print(nbpipe.__file__)"],
        cwd=repo,
        capture_output=True,
        text=True,
    ).stdout
    assert where.startswith(f"{venv}/lib/"), where  # the wheel's nbpipe ran the build
    reports = [p for p in temp.glob("*/nbpipe-report.json") if not p.parent.is_symlink()]
    assert len(reports) == 1, reports
    report = reports[0]
    results = {i["name"]: i for i in json.loads(report.read_text())}
    assert results["jupyter"]["status"] == "cached"  # ours, reused as built, not rebuilt
    assert results["jupyter"]["digest"] == jupyter.digest
    probes = {p["name"]: p["status"] for p in results["team-x"]["probes"]}
    assert {"http-ready", "api-kernels", "kernel-runs-code", "process-user", "imports"} <= {
        n for n, s in probes.items() if s == "passed"
    }, probes
