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

Tests write nothing into the checkout: the CLI's state folder (``NBPIPE_STATE_DIR``,
``.nbpipe`` by default) is pointed at a temporary folder for the whole session, and the
session fails when ``git status --porcelain --ignored`` lists anything it did not list
before the run (a new or changed untracked or ignored file, or a tracked file modified).
The fakes that stand in for engines, CLIs and servers are in ``tests/fakes``.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import subprocess
import sys
import sysconfig
import tempfile
import textwrap
from collections.abc import Mapping
from pathlib import Path

import pytest
from hypothesis import settings
from hypothesis.configuration import set_hypothesis_home_dir

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


PROFILE = hypothesis_profile(os.environ)
settings.load_profile(PROFILE)

REPO = Path(__file__).resolve().parents[1]

# What a run may leave in the checkout: the venv, the editable install's metadata, byte code,
# and, under the `dev` profile only, Hypothesis' example database (.hypothesis/, ignored).
# Under `ci` Hypothesis keeps nothing: its home (the database is off, but it still caches
# the constants it finds in the code under test) is a temporary folder, removed at the end.
_SCRATCH = {".venv", "__pycache__", ".pytest_cache"}
_HYPOTHESIS_HOME: str | None = None
if PROFILE == "dev":
    _SCRATCH.add(".hypothesis")
else:
    _HYPOTHESIS_HOME = tempfile.mkdtemp(prefix="nbpipe-hypothesis-")
    set_hypothesis_home_dir(_HYPOTHESIS_HOME)


def checkout_state(repo: Path = REPO) -> dict[str, tuple] | None:
    """Every path ``git status --porcelain --ignored`` lists (each file of an untracked or
    ignored folder), with its status and, for untracked and ignored files, size and mtime;
    None outside a git checkout."""
    git = shutil.which("git")
    if git is None or not (repo / ".git").exists():
        return None
    r = subprocess.run(
        [git, "status", "--porcelain", "-z", "--ignored=matching", "--untracked-files=all"],
        cwd=repo,
        capture_output=True,
        timeout=120,
    )
    if r.returncode != 0:
        return None
    state = {}
    for entry in r.stdout.decode(errors="surrogateescape").split("\0"):
        code, path = entry[:2], entry[3:]
        if not path or any(p in _SCRATCH or p.endswith(".egg-info") for p in path.split("/")):
            continue
        stamp: tuple = (code,)
        if code in ("??", "!!"):
            with contextlib.suppress(OSError):
                st = (repo / path).lstat()
                stamp = (code, st.st_size, st.st_mtime_ns)
        state[path] = stamp
    return state


def checkout_changes(before: dict[str, tuple], after: dict[str, tuple]) -> list[str]:
    return [
        f"{after.get(p, ('gone',))[0]} {p}"
        for p in sorted(set(before) | set(after))
        if before.get(p) != after.get(p)
    ]


def pytest_sessionstart(session: pytest.Session) -> None:
    session.config.stash[_CHECKOUT] = checkout_state()


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    if _HYPOTHESIS_HOME is not None:
        shutil.rmtree(_HYPOTHESIS_HOME, ignore_errors=True)
    before = session.config.stash.get(_CHECKOUT, None)
    after = checkout_state() if before is not None else None
    if before is None or after is None:
        return
    changed = checkout_changes(before, after)
    if changed:
        reporter = session.config.pluginmanager.get_plugin("terminalreporter")
        text = (
            "the tests wrote into the checkout (tests/conftest.py; write under tmp_path):\n  "
            + "\n  ".join(changed[:50])
        )
        if reporter is not None:
            reporter.write_sep("=", "checkout changed", red=True)
            reporter.write_line(text)
        if session.exitstatus == pytest.ExitCode.OK:
            session.exitstatus = pytest.ExitCode.TESTS_FAILED


_CHECKOUT = pytest.StashKey[dict | None]()


@pytest.fixture(scope="session", autouse=True)
def scratch_state_dir():
    """The CLI's state folder (probe records, logs, SBOMs, the run lock) outside the
    checkout, for this process (the CLI's settings read it at each command line) and every
    nbpipe it starts. And no prefetch (NBPIPE_PREFETCH=0): a command line run on a fake
    engine must not fetch the family's locked files from PyPI and Debian; the tests of
    prefetch turn it on where they mean it (Settings(prefetch=True))."""
    with (
        tempfile.TemporaryDirectory(prefix="nbpipe-state-") as tmp,
        pytest.MonkeyPatch.context() as mp,
    ):
        state = Path(tmp) / ".nbpipe"
        mp.setenv("NBPIPE_STATE_DIR", str(state))
        mp.setenv("NBPIPE_PREFETCH", "0")
        yield state


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
    r = subprocess.run(
        [sys.executable, "-c", REGISTER], capture_output=True, text=True, env=env, timeout=120
    )
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
