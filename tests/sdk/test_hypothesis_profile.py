"""The suite's Hypothesis profile (tests/conftest.py): in CI every property test draws the
same examples on every run and keeps no example database; locally each seed draws anew.

The CI case runs a small property file in fresh pytest processes next to a copy of the real
tests/conftest.py, so what is checked is the profile as pytest loads it, not a settings
object built here."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import settings

from tests.conftest import hypothesis_profile

CONFTEST = Path(__file__).resolve().parents[1] / "conftest.py"
PROPERTIES = '''
import os
from hypothesis import given, settings, strategies as st

@settings(max_examples=25)
@given(st.integers())
def test_draws(x):
    with open(os.environ["DRAWS"], "a") as out:
        out.write(f"{x}\\n")

@given(st.integers())
def test_fails(x):  # a failure is what Hypothesis saves in an example database
    assert False
'''


def run(tmp: Path, name: str, seed: int | None, ci: str | None) -> tuple[list[str], bool]:
    """The draws of one pytest run in its own folder, and whether it left an example
    database there (.hypothesis/examples; Hypothesis' other caches, such as constants/
    taken from the source, do not decide what fails)."""
    folder = tmp / name
    folder.mkdir()
    shutil.copy(CONFTEST, folder / "conftest.py")
    (folder / "test_properties.py").write_text(PROPERTIES)
    env = {k: v for k, v in os.environ.items()
           if k != "CI" and not k.startswith(("PYTEST_", "HYPOTHESIS"))}
    env["DRAWS"] = str(folder / "draws.txt")
    if ci is not None:
        env["CI"] = ci
    # A --hypothesis-seed run never touches the database, so the database is seen unseeded.
    seeded = [] if seed is None else [f"--hypothesis-seed={seed}"]
    proc = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                           *seeded, "test_properties.py"],
                          cwd=folder, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 1, proc.stdout + proc.stderr  # test_fails, and only it
    assert "1 failed, 1 passed" in proc.stdout, proc.stdout
    return (folder / "draws.txt").read_text().split(), (folder / ".hypothesis" / "examples").exists()


@pytest.mark.parametrize(("value", "profile"), [
    (None, "dev"), ("", "dev"), ("0", "dev"), ("false", "dev"), ("False", "dev"), ("no", "dev"),
    ("true", "ci"), ("1", "ci"), ("yes", "ci"), ("TRUE", "ci")])
def test_ci_in_the_environment_picks_the_ci_profile(value: str | None, profile: str) -> None:
    assert hypothesis_profile({} if value is None else {"CI": value}) == profile


def test_in_ci_every_seed_draws_the_same_and_no_database_is_kept(tmp_path: Path) -> None:
    first, _ = run(tmp_path, "a", seed=1, ci="true")
    second, kept = run(tmp_path, "b", seed=None, ci="true")
    assert len(first) >= 25
    assert first == second
    assert not kept


def test_locally_each_run_draws_anew_and_keeps_its_failures() -> None:
    """Checked on the profile object, not in a process (each costs seconds of the suite):
    what matters is that nothing pins the draw and the database is the default one."""
    dev = settings.get_profile("dev")
    assert dev.derandomize is False
    assert dev.database is not None


def test_the_suite_runs_under_the_profile_its_environment_picks(request) -> None:
    """Unless one is named on the command line (--hypothesis-profile), which wins."""
    named = request.config.getoption("hypothesis_profile", default=None)
    assert settings.default == settings.get_profile(named or hypothesis_profile(os.environ))
