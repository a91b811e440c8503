"""Shared fixtures, and the Hypothesis profile the whole suite runs under.

Real-engine fixtures live in tests/engine/conftest.py.

Why profiles: property tests explore at random where someone works (a new draw each run
finds new bugs), but CI must give the same verdict on the same code. So with ``CI`` set
(GitHub Actions sets ``CI=true``; ``.ci/run`` sets it too) every property test is
derandomized (its seed comes from the test itself) and reads and writes no example
database: a failure saved in a checkout's ``.hypothesis/`` can never fail a later CI run
of code that is right. ``pytest --hypothesis-profile=NAME`` picks one by hand;
``--hypothesis-seed=N`` replays a local draw. The profile is loaded here, before any test
module is imported, because ``@settings(...)`` takes its defaults when it decorates.

The fakes that stand in for engines, CLIs and servers are in ``tests/fakes``.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import sysconfig
import textwrap
from collections.abc import Mapping
from pathlib import Path

import pytest
from hypothesis import settings

from nbpipe import family as images
from nbpipe.recipe.catalog import Catalog

_FALSE = {"", "0", "false", "no", "off"}

# Both start from Hypothesis' own defaults, never from the profile loaded at import:
# recent Hypothesis (6.170 here) loads a built-in "ci" profile by itself wherever CI is in
# the environment, even CI=false, and a profile built on it would inherit its choices unseen.
# No deadline in either: a per-example time limit fails on a busy machine, not on a bug.
# (database=None is what Hypothesis makes of derandomize=True anyway; written for the reader.)
_DEFAULTS = settings.get_profile("default")
settings.register_profile(
    "ci", _DEFAULTS, derandomize=True, database=None, deadline=None, print_blob=True
)
# Locally: a fresh random draw each run, failures replayed from the checkout's .hypothesis/
# until they pass (Hypothesis' default database).
settings.register_profile("dev", _DEFAULTS, derandomize=False, deadline=None, print_blob=True)


def hypothesis_profile(environ: Mapping[str, str]) -> str:
    """The profile for an environment: ``ci`` wherever ``CI`` is set to a true value."""
    return "ci" if environ.get("CI", "").strip().lower() not in _FALSE else "dev"


settings.load_profile(hypothesis_profile(os.environ))

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture()
def family() -> Catalog:
    return images.family()


REGISTER = textwrap.dedent("""
    import json, anyio
    from dagger.client import gen
    from dagger.mod.cli import load_module

    async def query_only(self):  # the typedef query is what we check: do not send it
        return self
    gen.Module.id = query_only

    def args(obj):
        return [(f.name, {k: args(v) if hasattr(v, "_ctx") else v for k, v in f.args.items()})
                for f in obj._ctx.selections]

    mod = anyio.run(load_module()._typedefs)
    print(json.dumps(args(mod), default=str))
""")


@pytest.fixture(scope="session")
def registered() -> dict:
    """The Dagger module's functions as dagger-io registers them (name -> returns, doc,
    args), offline: the typedef query is built and read, never sent."""
    env = {**os.environ, "DAGGER_MODULE": "nbpipe", "DAGGER_MAIN_OBJECT": "Nbpipe"}
    r = subprocess.run([sys.executable, "-c", REGISTER], capture_output=True, text=True,
                       env=env, timeout=120)
    assert r.returncode == 0, r.stderr
    query = json.loads(r.stdout)
    obj = [a["object"] for name, a in query if name == "withObject"][0]
    functions = {}
    for name, a in obj:
        if name == "withFunction":
            fn = a["function"]
            head = fn[0][1]
            functions[head["name"]] = {
                "returns": head["returnType"],
                "doc": next((x[1]["description"] for x in fn if x[0] == "withDescription"), ""),
                "args": {x[1]["name"]: x[1] for x in fn if x[0] == "withArg"},
            }
    return functions


def run(
    argv: list, cwd: Path, env: dict | None = None, ok: bool = True
) -> subprocess.CompletedProcess:
    clean = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "NBPIPE_CATALOG")}
    r = subprocess.run(
        [str(a) for a in argv],
        cwd=cwd,
        capture_output=True,
        text=True,
        env=clean | (env or {}),
        timeout=300,
    )
    if ok:
        assert r.returncode == 0, f"{argv}: {r.stdout}{r.stderr}"
    return r


@pytest.fixture(scope="session")
def wheel(tmp_path_factory) -> Path:
    """nbpipe's wheel, built from this checkout as `pip wheel` builds it (no index needed)."""
    out = tmp_path_factory.mktemp("wheel")
    src = out / "src"  # a copy: an in-tree build/ would leak stale files into the wheel
    shutil.copytree(
        REPO,
        src,
        symlinks=True,
        ignore=shutil.ignore_patterns(
            ".git",
            ".venv",
            "build",
            "*.egg-info",
            "__pycache__",
            "reports",
            ".nbpipe",
            ".pytest_cache",
        ),
    )
    run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "--no-build-isolation",
            "--disable-pip-version-check",
            "-q",
            "-w",
            out,
            src,
        ],
        cwd=out,
    )
    (whl,) = out.glob("nbpipe-*.whl")
    return whl


@pytest.fixture(scope="session")
def venv(tmp_path_factory, wheel) -> Path:
    """A fresh venv outside the repository with only the wheel installed; its dependencies
    come from this venv's site-packages as a plain path (no .pth of ours runs there, so the
    editable checkout is not visible)."""
    env = tmp_path_factory.mktemp("team-venv") / "venv"
    run([sys.executable, "-m", "venv", "--without-pip", env], cwd=env.parent)
    python = env / "bin" / "python"
    run(
        [
            sys.executable,
            "-m",
            "pip",
            "--python",
            python,
            "install",
            "--no-deps",
            "--no-index",
            "--disable-pip-version-check",
            "-q",
            wheel,
        ],
        cwd=env.parent,
    )
    site = Path(
        run(
            [python, "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"], cwd=env.parent
        ).stdout.strip()
    )
    (site / "deps-from-the-test-venv.pth").write_text(sysconfig.get_path("purelib") + "\n")
    return env


@pytest.fixture(scope="session")
def live_dagger():
    """A `dagger` CLI that really reaches a running engine, asked once per session with a
    bounded query (nbpipe.engines.dagger_session); otherwise every live Dagger test is
    SKIPPED with the reason (no CLI, no engine behind it, no answer in time)."""
    from nbpipe.engines.dagger_session import reach

    found = reach()
    if not found.ok:
        pytest.skip(f"no live Dagger engine: {found.reason}")
    return found
