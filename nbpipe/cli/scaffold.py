"""`nbpipe new`: a team's starting point, as a spec (and optionally a Python module), or a
whole team repository (`--repo`): the image, a README with its two commands, a test that
builds and probes it, a CI workflow, and a Dagger module that depends on ours."""

from __future__ import annotations

import json
import keyword
import os
from pathlib import Path

from nbpipe import __version__
from nbpipe.errors import NbpipeError
from nbpipe.inputs import safe_io
from nbpipe.inputs.spec import NAME

# Where our Dagger module lives (the same address as the images' source label), and the
# engine our own dagger.json pins; a team module names both.
MODULE_SOURCE = "github.com/nbpipe/nbpipe"
# PyPI's "nbpipe" is another project: a team installs ours from its repository, by tag.
REQUIREMENT = f"nbpipe @ git+https://{MODULE_SOURCE}@v{__version__}"
DAGGER_ENGINE = "v0.21.8"
CI_KINDS = ("cli", "dagger")

SPEC = """\
# {name}: our {parent} image plus this team's packages.
# Check: nbpipe spec validate {spec_path}   Build + probe: nbpipe build -f {spec_path}
name: {name}
parent: {parent}
apt: []                  # Debian packages, e.g. [libcfitsio10]
pip:                     # pinned requirements (or: pip: {{requirements: requirements.txt}})
  - {pip}
env:
  {env}: /home/jovyan/data
probes:
  imports: [{module}]  # must import in the built image, checked with the contract
"""

# A parent without our Python environment (/opt/venv: jupyter and what is built on it)
# takes Debian packages; a pip step would have nowhere to install.
SPEC_APT = """\
# {name}: our {parent} image plus this team's packages.
# Check: nbpipe spec validate {spec_path}   Build + probe: nbpipe build -f {spec_path}
# {parent} has no Python environment to install into: add Debian packages (python3-*
# too) with apt, or build on jupyter for pip.
name: {name}
parent: {parent}
apt: [{apt}]             # Debian packages, e.g. [libcfitsio10]
env:
  {env}: /home/jovyan/data
probes:
  commands: ["{command}"]  # must succeed in the built image, checked with the contract
"""

MODULE = '''\
"""{name}: our {parent} image plus this team's packages (the Python API).

    nbpipe build {name} --catalog {catalog}
"""

from nbpipe.family import family
from nbpipe import Catalog, Image


def {func}(parent: Image) -> Image:
    return (parent.{install}
                  .with_env("{env}", "/home/jovyan/data")
                  .with_probes({probes}))


def catalog() -> Catalog:
    cat = family()
    cat.add("{name}", "{parent}", {func})
    return cat
'''

# The example package: small and pure Python, so a first build is quick; on a parent
# without /opt/venv, a small Debian tool and a command that proves it is there.
PIP, PIP_MODULE = "tabulate==0.9.0", "tabulate"
APT, APT_COMMAND = "jq", "jq --version"

README = """\
# {name}

Our notebook-server image: nbpipe's `{parent}` plus this team's packages, held to the
notebook-server contract (HTTP under `NB_PREFIX`, jovyan/1000, an empty home volume, a
real kernel, ...) and to its own probes on every build.

```sh
{pip}  # the nbpipe SDK and CLI (needs podman or docker)
{check}  # check it, nothing built
{build}  # build (parents too, reusing what is built) + probe
```

The report lands in `reports/nbpipe-report.md`. `pytest tests` runs the same build and
fails on any failed probe; `.github/workflows/image.yml` runs it on every pull request{ci_how}.

- `{image}`: the image; edit its packages and probes.
{dagger}- nbpipe's stable API (what `nbpipe` exports, the spec format, these commands) and how its
  changes are announced: nbpipe's README ("Team API") and CHANGELOG.md.
"""

TEST = '''\
"""{name} is built and held to the notebook-server contract: the build CI runs."""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
BUILD = {argv!r}


def test_image_builds_and_passes_the_contract(tmp_path):
    if not (shutil.which("podman") or shutil.which("docker")):
        pytest.skip("no podman or docker on this machine: building needs a container engine")
    r = subprocess.run([sys.executable, "-m", "nbpipe", *BUILD, "--report-dir", str(tmp_path)],
                       cwd=REPO, capture_output=True, text=True)
    report = tmp_path / "nbpipe-report.json"
    assert report.exists(), r.stderr[-2000:]
    results = {{i["name"]: i for i in json.loads(report.read_text())}}
    mine = results["{name}"]
    failed = {{p["name"]: p["message"] for p in mine["probes"] if p["status"] == "failed"}}
    assert r.returncode == 0 and mine["ok"], (mine["status"], mine["message"], failed, r.stderr[-2000:])
    assert mine["status"] in ("built", "cached") and not failed
    assert any(p["name"] == "{probe}" and p["status"] == "passed" for p in mine["probes"])
'''  # noqa: E501 (the generated test's own lines)

# GitHub Actions: the same trigger and checkout, then the nbpipe CLI or Dagger.
WORKFLOW = """\
# Build {name} and probe it against the notebook-server contract {how}
name: image

on:
  pull_request:
  push:
    branches: [main]

permissions:
  contents: read

jobs:
  image:
    runs-on: ubuntu-latest
    steps:
      - uses: actions/checkout@v4
{steps}
  # On main: publish to GitHub's registry, signed. The signing key is a repository secret
  # (NBPIPE_SIGN_KEY: the PEM of `nbpipe keygen`, NBPIPE_SIGN_PASSPHRASE: its passphrase);
  # it reaches nbpipe through the environment, never a command line or a log. Verify with
  # `nbpipe verify ghcr.io/OWNER/{name}@DIGEST --key {name}.pub`.
  publish:
    if: github.event_name == 'push'
    needs: image
    runs-on: ubuntu-latest
    permissions:
      contents: read
      packages: write
    steps:
      - uses: actions/checkout@v4
      - uses: actions/setup-python@v5
        with:
          python-version: "3.11"
      - run: pip install -r requirements.txt
      - run: {publish} --registry ghcr.io/${{{{ github.repository_owner }}}} --sign-key env:NBPIPE_SIGN_KEY
        env:
          NBPIPE_REGISTRY_USER: ${{{{ github.actor }}}}
          NBPIPE_REGISTRY_PASSWORD: ${{{{ secrets.GITHUB_TOKEN }}}}
          NBPIPE_SIGN_KEY: ${{{{ secrets.NBPIPE_SIGN_KEY }}}}
          NBPIPE_SIGN_PASSPHRASE: ${{{{ secrets.NBPIPE_SIGN_PASSPHRASE }}}}
"""  # noqa: E501 (the generated workflow's own lines)

CLI_STEPS = """\
      - uses: actions/setup-python@v5
        with:
          python-version: "3.11"
      - run: pip install -r requirements.txt
      - run: {check}
      - run: {build}
      - uses: actions/upload-artifact@v4
        if: always()
        with:
          name: nbpipe-report
          path: reports/
"""

DAGGER_STEPS = """\
      - uses: dagger/dagger-for-github@v7
        with:
          version: "{engine}"
          verb: call
          args: test
"""

DAGGER_MAIN = '''\
"""{name} as a Dagger module: nbpipe's module builds our image and tests the result.

    dagger call build export --path {name}.tar
    dagger call test

`dag.nbpipe()` is nbpipe's module (the dependency in dagger.json): its client code is
generated by `dagger develop`. Use nbpipe through it, not as a Python dependency here.
"""

from typing import Annotated

import dagger
from dagger import DefaultPath, Doc, dag, function, object_type

{where}
Source = Annotated[dagger.Directory, DefaultPath("/"), Doc("this repository (default: its root)")]


@object_type
class {cls}:
    """Build and test {name} on nbpipe's notebook-server image family."""

    @function
    def build(self, source: Source) -> dagger.Container:
        """{name} as a Container: nbpipe's parent image plus {what}."""
        return {build_call}

    @function
    async def test(self, source: Source) -> str:
        """The notebook-server contract and the spec's own probes, run on the build."""
        return await dag.nbpipe().test_container(container=self.build(source))
'''

DAGGER_PYPROJECT = """\
# {name}'s Dagger module, installed by Dagger's Python runtime with the SDK it generates
# into ./sdk (dagger-io 0.0.0): so no version pin on dagger-io, and no nbpipe here.
[project]
name = "{name}"
version = "0.1.0"
requires-python = ">=3.11"
dependencies = ["dagger-io"]

[tool.uv.sources]
dagger-io = {{ path = "sdk", editable = true }}

[project.entry-points."dagger.mod"]
main_object = "{module}:{cls}"

[build-system]
requires = ["hatchling"]
build-backend = "hatchling.build"
"""


def _check(name: str) -> None:
    """A name that makes a valid spec (an image name, a NAME_DATA env key) and a module
    (a Python identifier that is not a keyword), or an error saying what to change."""
    if not NAME.fullmatch(name) or not name[0].isalpha():
        raise NbpipeError(
            f"{name!r} is not an image name nbpipe new can use: start it with a letter "
            "(a-z), then lowercase letters, digits, '-', '_', '.' (e.g. team-astro)"
        )
    module = name.replace("-", "_").replace(".", "_")
    if keyword.iskeyword(module) or not module.isidentifier():
        raise NbpipeError(
            f"{name!r} would make a Python module named {module!r}, which "
            "Python cannot import; choose another name"
        )


def identifiers(name: str) -> tuple[str, str]:
    """The Python module and class names an image name becomes (team-x: team_x, TeamX)."""
    _check(name)
    module = name.replace("-", "_").replace(".", "_")
    return module, "".join(part.capitalize() for part in module.split("_"))


def _image_files(
    name: str,
    parent: str,
    folder: Path,
    *,
    spec: bool,
    python: bool,
    package: str = "",
    venv: bool = True,
) -> dict[Path, str]:
    """The team image as a YAML spec and/or a Python module under ``folder``; ``venv``:
    the parent has our Python environment (else the example installs with apt)."""
    module, _ = identifiers(name)
    env = module.upper() + "_DATA"
    files: dict[Path, str] = {}
    if spec:
        path = folder / f"{name}.yaml"
        spec_path = f"{package}/{name}.yaml" if package else path.name
        files[path] = (
            SPEC.format(
                name=name, parent=parent, env=env, pip=PIP, module=PIP_MODULE, spec_path=spec_path
            )
            if venv
            else SPEC_APT.format(
                name=name, parent=parent, env=env, apt=APT, command=APT_COMMAND, spec_path=spec_path
            )
        )
    if python:
        install = f'with_pip("{PIP}")' if venv else f'with_apt("{APT}")'
        probes = f'imports=("{PIP_MODULE}",)' if venv else f'commands=("{APT_COMMAND}",)'
        files[folder / f"{module}.py"] = MODULE.format(
            name=name,
            parent=parent,
            env=env,
            func=module,
            install=install,
            probes=probes,
            catalog=f"{package + '.' if package else ''}{module}:catalog",
        )
    return files


def _write_all(files: dict[Path, str], root: Path) -> list[Path]:
    """Write every file or none: nothing is overwritten, nothing half-written stays, and
    nothing is written through a symbolic link under ``root`` (a link is not overwritten
    either: it counts as a file that exists)."""
    for path in files:
        if os.path.lexists(path):
            raise NbpipeError(f"{path} exists; not overwriting it")
        for folder in path.relative_to(root).parents:  # checked first: all or nothing
            if (root / folder).is_symlink():
                raise NbpipeError(
                    f"{root / folder}: is a symbolic link where nbpipe writes a "
                    "folder, and nbpipe did not make it: remove it or write "
                    "elsewhere"
                )
    written: list[Path] = []
    try:
        with safe_io.OutDir(root) as out:
            for path, text in files.items():
                out.write(path.relative_to(root).as_posix(), text)
                written.append(path)
    except (OSError, NbpipeError) as exc:
        for path in written:
            path.unlink(missing_ok=True)
        if isinstance(exc, NbpipeError):
            raise
        raise NbpipeError(f"cannot write {exc.filename or root}: {exc.strerror}") from None
    return written


def write(
    name: str, parent: str, out: Path, *, python: bool = False, venv: bool = True
) -> list[Path]:
    """A spec (and with ``python`` the same image as a module) to start from."""
    return _write_all(_image_files(name, parent, out, spec=True, python=python, venv=venv), out)


def write_repo(
    name: str, parent: str, repo: Path, *, python: bool = False, ci: str = "cli", venv: bool = True
) -> list[Path]:
    """A team repository: the image under images/ (YAML, or Python with ``python``), a README
    with its two commands, a test that builds and probes it, a CI workflow (the nbpipe CLI or
    Dagger) and a Dagger module whose dependency is ours."""
    if ci not in CI_KINDS:
        raise NbpipeError(f"--ci {ci!r}: use one of {', '.join(CI_KINDS)}")
    module, cls = identifiers(name)
    images = repo / "images"
    files = _image_files(
        name, parent, images, spec=not python, python=python, package="images", venv=venv
    )
    if python:
        image = f"images/{module}.py"
        files[images / "__init__.py"] = f'"""{name}\'s images, written with the nbpipe SDK."""\n'
        where = ["--catalog", f"images.{module}:catalog"]
        check = ["export", name, *where]
        build = ["build", name, *where]
    else:
        image = f"images/{name}.yaml"
        check = ["spec", "validate", image]
        build = ["build", "-f", image]
    check_line, build_line = (" ".join(["nbpipe", *argv]) for argv in (check, build))
    width = max(len(check_line), len(build_line), len("pip install -r requirements.txt"))
    dagger = (
        "- `dagger.json` + `.dagger/`: this repository as a Dagger module that depends on "
        "nbpipe's\n"
        f"  module and builds the {'Python recipe' if python else 'spec'} with it:\n"
        f"  `dagger call build export --path {name}.tar`, `dagger call test`.\n"
    )
    how = " with Dagger (`dagger call test`)" if ci == "dagger" else " with the nbpipe CLI"
    files |= {
        repo / "README.md": README.format(
            name=name,
            parent=parent,
            check=check_line.ljust(width),
            build=build_line.ljust(width),
            image=image,
            ci_how=how,
            pip="pip install -r requirements.txt".ljust(width),
            dagger=dagger,
        ),
        repo / "requirements.txt": f"{REQUIREMENT}\npytest>=8\n",
        repo / ".gitignore": "/reports/\n/.nbpipe/\n__pycache__/\n.venv/\n",
        repo / "tests" / "test_image.py": TEST.format(
            name=name, argv=build, probe="imports" if venv else "commands"
        ),
        repo / ".github" / "workflows" / "image.yml": WORKFLOW.format(
            name=name,
            how=(
                "with Dagger:\n# this repository's module (dagger.json) calls nbpipe's module."
                if ci == "dagger"
                else "with the nbpipe\n# CLI: the README's two commands "
                "(podman and buildah come with ubuntu-latest)."
            ),
            steps=(
                DAGGER_STEPS.format(engine=DAGGER_ENGINE.lstrip("v"))
                if ci == "dagger"
                else CLI_STEPS.format(check=check_line, build=build_line)
            ).rstrip("\n"),
            publish=" ".join(["nbpipe", "publish", *build[1:]]),
        ),
    }
    if python:  # nbpipe's module imports the recipe from this repository (build_catalog)
        catalog_ref = where[1]
        main = DAGGER_MAIN.format(
            name=name,
            cls=cls,
            what="the Python recipe's steps",
            where=f'CATALOG, IMAGE = "{catalog_ref}", "{name}"',
            build_call="dag.nbpipe().build_catalog(source=source, catalog=CATALOG, image=IMAGE)",
        )
    else:
        main = DAGGER_MAIN.format(
            name=name,
            cls=cls,
            what="the spec's steps",
            where=f'SPEC = "{image}"',
            build_call="dag.nbpipe().build_spec(source=source, path=SPEC)",
        )
    files |= {
        repo / "dagger.json": json.dumps(
            {
                "name": name,
                "engineVersion": DAGGER_ENGINE,
                "sdk": {"source": "python"},
                "source": ".dagger",
                "dependencies": [{"name": "nbpipe", "source": f"{MODULE_SOURCE}@v{__version__}"}],
            },
            indent=2,
        )
        + "\n",
        repo / ".dagger" / "pyproject.toml": DAGGER_PYPROJECT.format(
            name=name, module=module, cls=cls
        ),
        repo / ".dagger" / ".gitignore": "/sdk/\n/.venv/\n",
        repo / ".dagger" / "src" / module / "__init__.py": (
            f'"""{name} as a Dagger module."""\n\nfrom .main import {cls}\n\n__all__ = ["{cls}"]\n'
        ),
        repo / ".dagger" / "src" / module / "main.py": main,
    }
    return _write_all(files, repo)
