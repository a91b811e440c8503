"""The module installs the way Dagger's Python runtime (v0.21, sdk/python/runtime) installs it.

The runtime vendors the SDK into ./sdk as the package dagger-io 0.0.0 and then runs, in the
module's source folder, either `uv pip install -e ./sdk -e .` + `uv pip check` (no uv.lock:
our layout) or `uv lock` + `uv sync --no-dev` (with a uv.lock). Here both run with uv against a
stand-in ./sdk: the dagger package installed in this venv, declared as dagger-io 0.0.0 with
the same requirements, so the installed module is imported through its entry point for real.
"""

from __future__ import annotations

import importlib.metadata
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

dagger = pytest.importorskip("dagger")

REPO = Path(__file__).resolve().parents[2]
SKIP = {".git", ".venv", "sdk", "build", "reports", ".nbpipe", ".pytest_cache", "__pycache__"}
OLD_PIN = '"dagger-io==0.21.*"'


def uv() -> str:
    exe = shutil.which("uv", path=str(Path(sys.executable).parent)) or shutil.which("uv")
    if exe is None:
        pytest.skip("uv is not installed (it is in the test extra: pip install -e '.[test]')")
    return exe


def pip_config() -> dict[str, str]:
    """pip's own index settings (a mirror here), so uv resolves from the same places."""
    r = subprocess.run(
        [sys.executable, "-m", "pip", "config", "list"], capture_output=True, text=True, timeout=60
    )
    out = {}
    for line in r.stdout.splitlines():
        m = re.match(r"(?:global|install|:env:)\.([\w-]+)='(.*)'$", line)
        if m:
            out[m[1]] = m[2]
    return out


def uv_env(tmp: Path) -> dict[str, str]:
    cfg = pip_config()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("UV_", "VIRTUAL_ENV"))}
    env |= {
        "UV_SYSTEM_CERTS": "1",
        "UV_NATIVE_TLS": "1",
        "UV_LINK_MODE": "copy",
        "UV_INDEX_STRATEGY": "unsafe-best-match",
    }  # pip merges its indexes; so does this
    if "index-url" in cfg:
        env["UV_INDEX_URL"] = cfg["index-url"]
    if "extra-index-url" in cfg:
        env["UV_EXTRA_INDEX_URL"] = cfg["extra-index-url"]
    if "find-links" in cfg:
        env["UV_FIND_LINKS"] = ",".join(cfg["find-links"].split())
    if "cert" in cfg:
        env.setdefault("SSL_CERT_FILE", cfg["cert"])
    return env


def stand_in_sdk(dest: Path) -> None:
    """./sdk as the runtime vendors it: dagger-io 0.0.0 holding the dagger package."""
    src = Path(dagger.__file__).parent
    shutil.copytree(src, dest / "src" / "dagger", ignore=shutil.ignore_patterns("__pycache__"))
    reqs = importlib.metadata.requires("dagger-io") or []
    deps = ",\n".join(f"    {r.split(';')[0].strip()!r}" for r in reqs if "extra ==" not in r)
    (dest / "pyproject.toml").write_text(
        '[project]\nname = "dagger-io"\nversion = "0.0.0"\nrequires-python = ">=3.10"\n'
        f"dependencies = [\n{deps}\n]\n\n"
        '[build-system]\nrequires = ["setuptools>=68"]\nbuild-backend = "setuptools.build_meta"\n'
        '\n[tool.setuptools.packages.find]\nwhere = ["src"]\n'
    )


def module_copy(tmp: Path, pyproject: str | None = None) -> Path:
    """The module's source as the runtime mounts it: no .venv, a freshly vendored ./sdk."""
    root = tmp / "src"
    shutil.copytree(
        REPO,
        root,
        symlinks=True,
        ignore=lambda d, names: [n for n in names if n in SKIP or n.endswith(".egg-info")],
    )
    if pyproject is not None:
        (root / "pyproject.toml").write_text(pyproject)
    stand_in_sdk(root / "sdk")
    return root


FLOWS = {
    "pip": [["pip", "install", "-e", "./sdk", "-e", "."], ["pip", "check"]],
    "lock": [["lock"], ["sync", "--no-dev"]],
}

LOAD = """
import importlib.metadata as m
from dagger.mod.cli import get_entry_point, load_module
mod = load_module()
print(m.version("dagger-io"), get_entry_point().value,
      " ".join(sorted(mod._objects["Nbpipe"].functions)))
"""


def run_flow(tmp: Path, flow: str, pyproject: str | None = None) -> subprocess.CompletedProcess:
    root = module_copy(tmp, pyproject)
    env = uv_env(tmp)
    venv = tmp / "venv"  # never this test's own venv: every uv call below is pointed here
    if flow == "pip":
        subprocess.run(
            [uv(), "venv", "-q", "--python", sys.executable, str(venv)],
            env=env,
            check=True,
            timeout=120,
        )
        env["VIRTUAL_ENV"] = str(venv)  # the runtime: UV_SYSTEM_PYTHON in its image
    else:
        env |= {"UV_PROJECT_ENVIRONMENT": str(venv), "UV_PYTHON": sys.executable}
    for args in FLOWS[flow]:
        r = subprocess.run(
            [uv(), *args], cwd=root, env=env, capture_output=True, text=True, timeout=600
        )
        if r.returncode != 0:
            if (
                re.search(r"(?i)failed to fetch|connect|dns|network|timed out", r.stderr)
                and "unsatisfiable" not in r.stderr
            ):
                pytest.skip(f"uv cannot reach a package index here: {r.stderr.strip()[-300:]}")
            return r
    return subprocess.run(
        [str(tmp / "venv" / "bin" / "python"), "-c", LOAD],
        cwd=root,
        env={**env, "DAGGER_MODULE": "nbpipe", "DAGGER_MAIN_OBJECT": "Nbpipe"},
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.mark.parametrize("flow", sorted(FLOWS))
def test_runtime_installs_the_module_with_the_vendored_sdk(tmp_path: Path, flow: str) -> None:
    r = run_flow(tmp_path, flow)
    assert r.returncode == 0, r.stderr
    version, entry, functions = r.stdout.split(maxsplit=2)
    assert version == "0.0.0", "the vendored SDK, not the index's dagger-io"
    assert entry == "nbpipe.pipelines:Nbpipe"
    assert {"build", "test", "publish", "ci", "build_spec", "test_container"} <= set(
        functions.split()
    )


@pytest.mark.parametrize("sources", [True, False], ids=["with-uv-sources", "as-before"])
def test_a_version_pin_cannot_install_in_the_runtime(tmp_path: Path, sources: bool) -> None:
    """The old `dagger-io==0.21.*` put back: the runtime's install (this repository keeps no
    uv.lock, so `uv pip install` + `uv pip check`) fails, with or without [tool.uv.sources]."""
    text = (REPO / "pyproject.toml").read_text()
    pinned = re.sub(r'"dagger-io[^"]*"', OLD_PIN, text, count=1)
    if not sources:
        pinned = re.sub(r"\[tool\.uv\.sources\]\n[^\[]*", "", pinned)
    assert OLD_PIN in pinned and ("\n[tool.uv.sources]\n" in pinned) == sources
    r = run_flow(tmp_path, "pip", pinned)
    assert r.returncode != 0
    assert re.search(
        r"dagger-io==0\.21\.\*.*(unsatisfiable|0\.0\.0. is installed)", r.stderr, re.S
    ), r.stderr


def test_pip_outside_dagger_stays_on_the_engine_s_sdk_line() -> None:
    """Outside Dagger `pip install -e .` takes dagger-io from the index: the 0.21 line that
    dagger.json's engine speaks (the requirement also admits the vendored 0.0.0)."""
    import json

    from packaging.requirements import Requirement

    req = next(
        Requirement(r)
        for r in importlib.metadata.requires("nbpipe") or []
        if r.startswith("dagger-io")
    )
    engine = json.loads((REPO / "dagger.json").read_text())["engineVersion"].lstrip("v")
    line = ".".join(engine.split(".")[:2])
    assert req.specifier.contains("0.0.0")
    assert req.specifier.contains(engine)
    assert not req.specifier.contains(f"0.{int(line.split('.')[1]) + 1}.0")
    assert importlib.metadata.version("dagger-io").startswith(line + ".")
