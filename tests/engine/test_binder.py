"""A Binder repository (tests/binder/repo) built on our jupyter, as its author expects:
the repository in the home of an empty volume, every Binder file honoured, its notebooks
run as a probe, and a failing notebook named with its cell."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from nbpipe.inputs import binder as repo2docker
from nbpipe.probes.result import Status
from nbpipe.recipe import contract

from .conftest import run_pipeline
from .test_chain import JUPYTER

pytestmark = pytest.mark.engine

REPO = Path(__file__).parents[1] / "binder" / "repo"


@pytest.fixture(scope="module")
def built(local_family, engine, platform, options, state_dir, tmp_path_factory):
    """The repository twice: as it is (both notebooks probed), and with an nbpipe.yaml
    that probes only passes.ipynb. Only the repository layers differ between the two."""
    chosen = tmp_path_factory.mktemp("binder") / "repo"
    shutil.copytree(REPO, chosen)
    (chosen / "binder" / "nbpipe.yaml").write_text("probes:\n  notebooks: [passes.ipynb]\n")
    repo2docker.from_repo(REPO, name="binder-both").register(local_family)
    repo2docker.from_repo(chosen, name="binder-passes").register(local_family)
    return run_pipeline(
        local_family,
        engine,
        platform,
        options,
        state_dir,
        ["binder-both", "binder-passes"],
        force_probe=True,
    )


def test_repository_builds_and_its_notebook_runs_as_a_probe(built) -> None:
    res = built["binder-passes"]
    assert res.status in ("built", "cached"), res.message
    probes = {p.name: p for p in res.probes}
    failed = {n: p.message for n, p in probes.items() if p.status is Status.FAILED}
    assert not failed, failed
    passed = {n for n, p in probes.items() if p.status is Status.PASSED}
    assert JUPYTER | {"notebooks", "distributions", "python-version"} <= passed
    # passes.ipynb asserts runtime.txt, apt.txt, postBuild, start and the repo's files
    assert "1 notebook(s) ran top to bottom: passes.ipynb (7 cells" in probes["notebooks"].message
    assert "python-slugify -> slugify" in probes["distributions"].message


def test_failing_notebook_is_named_with_its_cell(built) -> None:
    res = built["binder-both"]
    assert res.status == "failed"
    probes = {p.name: p for p in res.probes}
    failed = {n for n, p in probes.items() if p.status is Status.FAILED}
    assert failed == {"notebooks"}, res.message
    msg = probes["notebooks"].message
    assert msg.startswith("1 of 2 notebook(s) failed: fails.ipynb: cell 3: ZeroDivisionError"), msg
    assert "passes.ipynb" not in msg


def test_empty_home_receives_the_repository_and_a_used_one_keeps_its_files(
    built, engine, tmp_path
) -> None:
    ref = built["binder-passes"].ref
    homes = {"empty": tmp_path / "empty", "used": tmp_path / "used"}
    for home in homes.values():
        home.mkdir()
        if os.geteuid() == 0:  # what a fresh PVC with fsGroup: 100 looks like
            os.chown(home, 0, contract.USERS_GID)
        os.chmod(home, 0o2775 if os.geteuid() == 0 else 0o777)
    mine = homes["used"] / "passes.ipynb"
    mine.write_text("the user's own version\n")
    if os.geteuid() == 0:
        os.chown(mine, contract.NB_UID, contract.USERS_GID)
    for kind, home in homes.items():
        r = engine.run_once(
            ref,
            [
                "/init",
                "stat",
                "-c",
                "%U %a %n",
                "passes.ipynb",
                "binder/start",
                "data/table.csv",
                "postbuild.txt",
            ],
            extra=["-v", f"{home}:{contract.HOME}", "-w", contract.HOME],
            timeout=120,
        )
        assert r.returncode == 0, r.stdout + r.stderr
        listing = [line for line in r.stdout.splitlines() if not line.startswith("[nbpipe")]
        assert (
            listing
            == [
                f"jovyan {mode} {name}"
                for mode, name in (
                    ("664", "passes.ipynb"),
                    ("775", "binder/start"),
                    ("664", "data/table.csv"),
                    ("644", "postbuild.txt"),
                )
            ]
            or kind == "used"
        ), listing
    assert mine.read_text() == "the user's own version\n"
    assert (homes["used"] / "fails.ipynb").exists()  # the rest arrived around it
    assert (homes["empty"] / "fails.ipynb").read_bytes() == (REPO / "fails.ipynb").read_bytes()
    assert not (homes["empty"] / ".cache").exists()  # postBuild's caches are not shipped
