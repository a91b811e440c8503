"""`nbpipe plan` then `nbpipe build`, as a user runs them: every digest the plan printed
is the one the build tagged, on this machine's own root choice."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from nbpipe.recipe.image import short

pytestmark = pytest.mark.engine

CATALOG = """
from nbpipe.family import family as ours

def family():
    cat = ours()
    cat.add("plan-check", "base", lambda i: i.with_env("NBPIPE_PLAN_CHECK", "1"))
    return cat
"""


def nbpipe(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": f"{tmp_path}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
    return subprocess.run(
        [sys.executable, "-m", "nbpipe", *args, "--catalog", "plancat:family"],
        capture_output=True,
        text=True,
        env=env,
        timeout=1800,
        cwd=tmp_path,
    )


def test_build_tags_every_digest_plan_printed(engine, local_family, tmp_path: Path) -> None:
    (tmp_path / "plancat.py").write_text(CATALOG)
    r = nbpipe(tmp_path, "plan", "plan-check", "--json")
    assert r.returncode == 0, r.stderr
    plan = json.loads(r.stdout)
    assert plan["order"] == ["base", "plan-check"] and plan["root"] == "local"
    try:
        r = nbpipe(tmp_path, "build", "plan-check", "--no-probe", "--report-dir", "reports")
        assert r.returncode == 0, r.stderr
        report = json.loads((tmp_path / "reports" / "nbpipe-report.json").read_text())
        assert {x["name"]: x["digest"] for x in report} == plan["digests"]
        for name, digest in plan["digests"].items():
            assert engine.exists(f"localhost/nbpipe/{name}:{short(digest, 16)}"), name
        again = json.loads(nbpipe(tmp_path, "plan", "plan-check", "--json").stdout)
        assert {n: s["state"] for n, s in again["states"].items()} == {
            "base": "built",
            "plan-check": "built",
        }
    finally:
        engine.remove(f"localhost/nbpipe/plan-check:{short(plan['digests']['plan-check'], 16)}")


def test_the_store_read_directly_is_what_podman_lists(engine) -> None:
    """The no-op path reads containers/storage's index instead of starting podman: it must
    name the same images, ids and (to a few kB of metadata) sizes as `podman images`."""
    from nbpipe.engines import oci

    if engine.kind != "podman":
        pytest.skip("the direct read is podman's store; this engine is docker")
    for _ in range(5):  # other builds may tag images meanwhile: compare a quiet moment
        fast = oci._storage_index()
        if fast is None:
            pytest.skip("this store is not the plain root one: the engine is asked instead")
        rows = json.loads(
            subprocess.run(
                [engine.binary, "images", "--format", "json"],
                capture_output=True,
                text=True,
                check=True,
            ).stdout
        )
        if oci._storage_index() == fast:
            break
    listed = {n: (f"sha256:{r['Id']}", r["Size"]) for r in rows for n in r.get("Names") or []}
    assert set(fast) == set(listed)
    for name, info in fast.items():
        assert info.id == listed[name][0], name
        assert abs(info.size - listed[name][1]) <= max(64_000, listed[name][1] // 100), name


def test_a_no_op_build_starts_no_engine_process(engine, local_family, tmp_path: Path) -> None:
    """Everything built: `nbpipe build` reads the store once and runs nothing (podman and
    buildah on PATH are wrappers that log every call)."""
    import shutil

    if engine.kind != "podman":
        pytest.skip("the no-process read is podman's store")
    bin_dir, calls = tmp_path / "bin", tmp_path / "calls.log"
    bin_dir.mkdir()
    for tool in ("podman", "buildah"):
        real = shutil.which(tool)
        if real is None:
            continue
        (bin_dir / tool).write_text(f'#!/bin/sh\necho "{tool} $*" >> {calls}\nexec {real} "$@"\n')
        (bin_dir / tool).chmod(0o755)
    env = {**os.environ, "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}"}
    cmd = [sys.executable, "-m", "nbpipe", "build", "base", "--no-probe", "--report-dir", "r"]
    first = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=tmp_path, timeout=1800)
    assert first.returncode == 0, first.stderr  # builds base if this root has none yet
    calls.unlink(missing_ok=True)
    r = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=tmp_path, timeout=300)
    assert r.returncode == 0, r.stderr
    assert "base: cached" in r.stderr
    assert not calls.exists() or calls.read_text() == ""
