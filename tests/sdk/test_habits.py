"""The habits of a maintained project, kept by the test command: ruff's lint and format, mypy
and the layers contract (import-linter, [tool.importlinter] in pyproject.toml) are clean, and
each of them fails, naming the file, when one break is planted in a copy.

mypy and import-linter see only folders, and images/ and pipelines/ are installed as
nbpipe.family and nbpipe.pipelines ([tool.setuptools.package-dir]): both run in a copy laid
out as installed. The tools come from the test extra; a test skips, saying so, only where its
tool is not installed.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
PYPROJECT = tomllib.loads((REPO / "pyproject.toml").read_text())

# (the planted file, as the tools name it) -- the recipe layer is the bottom but one
RECIPE_IMAGE = "nbpipe/recipe/image.py"
FAMILY_PINS = "nbpipe/family/pins.py"  # images/pins.py, installed: mypy covers the family too
FUTURE = "from __future__ import annotations\n"


def tool(script: str, module: str) -> list[str]:
    """The tool installed beside this Python: its script, else `python -m`, else a skip."""
    exe = BIN / script
    if exe.is_file():
        return [str(exe)]
    if importlib.util.find_spec(module) is not None:
        return [sys.executable, "-m", module]
    pytest.skip(f"{script} is not installed here: pip install -e '.[test]' installs it")


def run(argv: list[str], cwd: Path, **env: str) -> subprocess.CompletedProcess[str]:
    r = subprocess.run(
        argv,
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "PYTHONPATH": "", **env},
    )
    print(f"$ {' '.join(argv)}  (in {cwd})\n{r.stdout}{r.stderr}")  # shown on a failure
    return r


def said(r: subprocess.CompletedProcess[str]) -> str:
    return f"exit {r.returncode}:\n{r.stdout}{r.stderr}"


def materialize(dest: Path) -> Path:
    """The installed layout as folders: nbpipe/, with each package-dir mapping (images/ as
    nbpipe/family, pipelines/ as nbpipe/pipelines) copied in where it is installed."""
    skip = shutil.ignore_patterns("__pycache__", "*.pyc")
    shutil.copytree(REPO / "nbpipe", dest / "nbpipe", ignore=skip)
    for package, folder in PYPROJECT["tool"]["setuptools"]["package-dir"].items():
        shutil.copytree(REPO / folder, dest.joinpath(*package.split(".")), ignore=skip)
    shutil.copy2(REPO / "pyproject.toml", dest / "pyproject.toml")
    return dest


def plant(path: Path, old: str | None, new: str) -> None:
    """``new`` in place of ``old`` (once), or at the end where ``old`` is None."""
    text = path.read_text()
    if old is None:
        path.write_text(text + new)
        return
    assert text.count(old) == 1, f"{path}: the planted break no longer fits: {old!r}"
    path.write_text(text.replace(old, new))


def test_the_installed_layout_has_every_package() -> None:
    """What the copies below hold is what the wheel installs ([tool.setuptools] packages)."""
    dirs = PYPROJECT["tool"]["setuptools"]["package-dir"]
    for package in PYPROJECT["tool"]["setuptools"]["packages"]:
        folder = REPO / dirs.get(package, package.replace(".", "/"))
        assert (folder / "__init__.py").is_file(), package


# ruff: the checkout itself ([tool.ruff] in pyproject.toml)


def test_ruff_check_is_clean() -> None:
    r = run([*tool("ruff", "ruff"), "check", "--no-cache", "."], REPO)
    assert r.returncode == 0, said(r)


def test_ruff_format_is_clean() -> None:
    r = run([*tool("ruff", "ruff"), "format", "--check", "--no-cache", "."], REPO)
    assert r.returncode == 0, said(r)


def _ruff_copy(tmp_path: Path) -> Path:
    (tmp_path / "nbpipe/recipe").mkdir(parents=True)
    shutil.copy2(REPO / "pyproject.toml", tmp_path)
    shutil.copy2(REPO / RECIPE_IMAGE, tmp_path / RECIPE_IMAGE)
    return tmp_path


def test_ruff_check_fails_on_a_planted_unused_import(tmp_path: Path) -> None:
    ruff = tool("ruff", "ruff")
    copy = _ruff_copy(tmp_path)
    assert run([*ruff, "check", "--no-cache", "."], copy).returncode == 0  # as it is
    plant(copy / RECIPE_IMAGE, FUTURE, FUTURE + "import os  # planted: never used\n")
    r = run([*ruff, "check", "--no-cache", "--output-format", "concise", "."], copy)
    assert r.returncode == 1, said(r)
    assert f"{RECIPE_IMAGE}:" in r.stdout and "F401" in r.stdout, said(r)


def test_ruff_format_fails_on_planted_formatting(tmp_path: Path) -> None:
    ruff = tool("ruff", "ruff")
    copy = _ruff_copy(tmp_path)
    assert run([*ruff, "format", "--check", "--no-cache", "."], copy).returncode == 0
    plant(copy / RECIPE_IMAGE, None, "\nPLANTED = {  'a':1 }\n")
    r = run([*ruff, "format", "--check", "--no-cache", "."], copy)
    assert r.returncode == 1, said(r)
    assert RECIPE_IMAGE in r.stdout + r.stderr, said(r)


# mypy: the installed layout ([tool.mypy] names the package); the clean run's cache makes
# the planted run incremental


@pytest.fixture(scope="module")
def typed(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, subprocess.CompletedProcess]:
    layout = materialize(tmp_path_factory.mktemp("typed"))
    return layout, run([*tool("mypy", "mypy"), "--cache-dir", ".mypy_cache"], layout)


def test_mypy_is_clean(typed: tuple[Path, subprocess.CompletedProcess]) -> None:
    _, r = typed
    assert r.returncode == 0, said(r)
    assert "Success: no issues found" in r.stdout, said(r)


def test_mypy_fails_on_a_planted_type_error(
    typed: tuple[Path, subprocess.CompletedProcess], tmp_path: Path
) -> None:
    layout, _ = typed
    copy = tmp_path / "layout"
    shutil.copytree(layout, copy)  # copy2: mtimes kept, so the cache holds
    plant(copy / FAMILY_PINS, None, '\nplanted: int = "a"  # planted: text is not an int\n')
    r = run([*tool("mypy", "mypy"), "--cache-dir", ".mypy_cache"], copy)
    assert r.returncode == 1, said(r)
    assert f"{FAMILY_PINS}:" in r.stdout and "[assignment]" in r.stdout, said(r)


# import-linter: the layers contract, on the installed layout


def _lint_imports(layout: Path) -> subprocess.CompletedProcess[str]:
    return run(
        [*tool("lint-imports", "importlinter"), "--no-cache"], layout, PYTHONPATH=str(layout)
    )


def test_layers_contract_is_kept(tmp_path: Path) -> None:
    r = _lint_imports(materialize(tmp_path))
    assert r.returncode == 0, said(r)
    assert "1 kept, 0 broken" in r.stdout, said(r)


def test_layers_contract_breaks_on_a_planted_upward_import(tmp_path: Path) -> None:
    layout = materialize(tmp_path)
    plant(layout / RECIPE_IMAGE, FUTURE, FUTURE + "from nbpipe.run import pipeline  # planted\n")
    r = _lint_imports(layout)
    assert r.returncode == 1, said(r)
    assert "BROKEN" in r.stdout and "nbpipe.recipe.image -> nbpipe.run.pipeline" in r.stdout, said(
        r
    )
