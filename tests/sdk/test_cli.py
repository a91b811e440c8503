"""The `nbpipe` command as a user runs it (a real subprocess, the real entry point)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

from tests.sdk.test_family import EDGES


def nbpipe(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "nbpipe", *args], capture_output=True,
                          text=True, env={**os.environ, **(env or {})}, timeout=120)


def test_images_lists_all_17_with_parents() -> None:
    r = nbpipe("images", "--root", "registry")
    assert r.returncode == 0, r.stderr
    rows = [line for line in r.stdout.splitlines() if line.startswith("│")]
    table = {cells[0]: cells[1] for cells in
             ([c.strip() for c in row.strip("│").split("│")] for row in rows)}
    assert set(table) == set(EDGES)
    for name, parent in EDGES.items():
        assert table[name] == (parent or "docker.io/library/debian:bookworm-slim")


def test_graph_mermaid_has_every_family_edge() -> None:
    r = nbpipe("graph", "--format", "mermaid")
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert lines[0] == "graph TD"
    edges = {tuple(x.strip() for x in line.split("-->")) for line in lines if "-->" in line}
    ident = lambda n: n.replace("-", "_")  # noqa: E731
    assert edges == {(ident(p), ident(c)) for c, p in EDGES.items() if p}


def test_graph_dot_and_bad_format() -> None:
    assert '"jupyter" -> "jupyter-scipy";' in nbpipe("graph", "--format", "dot").stdout
    r = nbpipe("graph", "--format", "svg")
    assert r.returncode == 2 and "'svg': use one of text, mermaid, dot, json" in r.stderr


def test_plan_orders_the_chain() -> None:
    r = nbpipe("plan", "jupyter-pytorch-cuda-full")
    assert r.returncode == 0, r.stderr
    names = [line.split()[1] for line in r.stdout.splitlines()[:-1]]
    assert names == ["base", "jupyter", "jupyter-pytorch-cuda", "jupyter-pytorch-cuda-full"]
    assert " root: " in r.stdout.splitlines()[-1]  # the summary: where, and what is to do


def test_plan_since_lists_only_changed_images(tmp_path: Path) -> None:
    r = nbpipe("plan", "--json")
    plan = json.loads(r.stdout)
    assert len(plan["order"]) == 17
    plan["digests"]["jupyter-scipy"] = "sha256:" + "0" * 64
    (tmp_path / "plan.json").write_text(json.dumps(plan))
    r = nbpipe("plan", "--since", str(tmp_path / "plan.json"))
    assert r.returncode == 0, r.stderr
    assert [line.split()[1] for line in r.stdout.splitlines()[:-1]] == ["jupyter-scipy"]


def test_unknown_image_is_one_line_error() -> None:
    r = nbpipe("plan", "jupyter-scpiy")
    assert r.returncode == 1
    assert r.stderr.count("\n") == 1 and "Traceback" not in r.stderr
    assert "unknown image 'jupyter-scpiy'" in r.stderr and "jupyter-scipy" in r.stderr


def test_bad_catalog_is_one_line_error(tmp_path: Path) -> None:
    (tmp_path / "badcat.py").write_text(textwrap.dedent("""
        from nbpipe.recipe.catalog import Catalog
        from nbpipe.family.pins import DEBIAN_ROOT
        def family():
            c = Catalog()
            c.add("base", DEBIAN_ROOT, lambda i: i)
            c.add("team", "jupyterr", lambda i: i)
            return c
    """))
    r = nbpipe("images", "--catalog", "badcat:family",
               env={"PYTHONPATH": f"{tmp_path}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"})
    assert r.returncode == 1
    assert "Traceback" not in r.stderr and r.stderr.count("\n") == 1
    assert "image 'team' has unknown parent 'jupyterr'" in r.stderr


def test_a_failing_command_exits_non_zero(tmp_path) -> None:
    (tmp_path / "empty.json").write_text('{"locks": {}}')
    r = nbpipe("lock", "--check", "--lock-file", str(tmp_path / "empty.json"), "jupyter")
    assert r.returncode == 1 and "6 step(s) not locked" in r.stdout  # 3 steps x 2 platforms
    r = nbpipe("lock", "--check")  # the family's own lock covers every step that builds here
    assert r.returncode == 0 and "not locked:" not in r.stdout, r.stdout


def test_export_prints_a_dockerfile() -> None:
    r = nbpipe("export", "jupyter-scipy")
    assert r.returncode == 0, r.stderr
    assert r.stdout.splitlines()[2].startswith("FROM localhost/nbpipe/jupyter:")
    assert "cm-super" in r.stdout and "statsmodels==" in r.stdout


def test_export_of_a_spec_needs_no_name() -> None:
    spec = Path(__file__).parents[2] / "examples" / "team-astro" / "team-astro.yaml"
    r = nbpipe("export", "-f", str(spec))
    assert r.returncode == 0, r.stderr
    assert '"io.nbpipe.image"="team-astro"' in r.stdout
    r = nbpipe("export", "-f", str(spec), "-f", str(spec))
    # the same spec twice is refused when it is read (once), naming the file, line and field
    assert r.returncode == 1 and "team-astro.yaml:4: name: 'team-astro' is already an image" in r.stderr


def test_engine_dagger_without_an_engine_says_so() -> None:
    import shutil

    if shutil.which("dagger") or os.environ.get("DAGGER_SESSION_PORT"):
        import pytest

        pytest.skip("a Dagger engine is available here")
    r = nbpipe("build", "base", "--engine", "dagger")
    assert r.returncode == 1 and "Traceback" not in r.stderr
    assert "no Dagger engine here" in r.stderr
