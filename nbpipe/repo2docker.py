"""Binder-ready repositories (repo2docker's files) as an nbpipe image on one of ours.

Understood: requirements.txt, apt.txt, environment.yml (its pip section; conda-only
packages are reported, since there is no conda here), postBuild (run as jovyan at
build time), start (run at every container start, as a cont-init.d script).
"""

from __future__ import annotations

import re
from pathlib import Path

import yaml

from . import requirements
from . import steps as s
from .errors import SpecError
from .image import Image
from .spec import NAME, Spec

FILES = ("requirements.txt", "apt.txt", "environment.yml", "postBuild", "start")
# conda names that pip does not need: the interpreter and pip themselves
CONDA_IMPLICIT = {"python", "pip", "setuptools", "wheel"}


def from_repo(repo: Path, parent: str = "jupyter", name: str | None = None) -> Spec:
    repo = Path(repo)
    if not repo.is_dir():
        raise SpecError(f"--from-repo {repo}: not a directory")
    found = [f for f in FILES if (repo / f).is_file()]
    binder = repo / "binder"
    if binder.is_dir():  # repo2docker: binder/ takes precedence over the top level
        found = [f for f in FILES if (binder / f).is_file()]
        repo = binder
    if not found:
        raise SpecError(f"--from-repo {repo}: none of {', '.join(FILES)} found")
    name = name or re.sub(r"[^a-z0-9._-]", "-", repo.resolve().name.lower()).strip("-.") or "repo"
    if repo.name == "binder":
        name = re.sub(r"[^a-z0-9._-]", "-", repo.resolve().parent.name.lower()) or "repo"
    if not NAME.match(name):
        raise SpecError(f"--from-repo {repo}: {name!r} is not an image name; pass --name")
    steps: list[s.Step] = []
    if "apt.txt" in found:
        pkgs = requirements.apt(repo / "apt.txt")
        if pkgs:
            steps.append(s.Apt(packages=tuple(pkgs)))
    pip: list[str] = []
    if "environment.yml" in found:
        pip += _environment(repo / "environment.yml")
    if "requirements.txt" in found:
        pip += requirements.pip(repo / "requirements.txt")
    if pip:
        steps.append(s.Pip(packages=tuple(pip)))
    if "postBuild" in found:
        steps.append(s.Run(script=(repo / "postBuild").read_text(), user="1000", network=True))
    if "start" in found:
        steps.append(s.InitScript(name="50-repo-start", script=_as_script(repo / "start")))

    def recipe(img: Image) -> Image:
        return img.with_step(*steps)

    return Spec(repo, name, parent, recipe, f"from the repository {repo}")


def _environment(path: Path) -> list[str]:
    try:
        env = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        raise SpecError(f"{path}:{mark.line + 1 if mark else 1}: not valid YAML") from None
    pip: list[str] = []
    conda_only: list[str] = []
    for dep in env.get("dependencies") or []:
        if isinstance(dep, dict) and "pip" in dep:
            pip += [str(x) for x in dep["pip"]]
        elif isinstance(dep, str):
            base = re.split(r"[=<>! ]", dep, maxsplit=1)[0]
            if base not in CONDA_IMPLICIT:
                conda_only.append(dep)
    if conda_only:
        raise SpecError(f"{path}: dependencies: conda-only packages {', '.join(conda_only)}: "
                        "nbpipe images have no conda; move them to the pip: section (or to "
                        "apt.txt for system libraries)")
    return pip


def _as_script(start: Path) -> str:
    text = start.read_text()
    # repo2docker's start ends with `exec "$@"`; as an init script it just returns.
    text = re.sub(r'^\s*exec\s+"\$@"\s*$', "", text, flags=re.M)
    return text if text.startswith("#!") else "#!/bin/sh\n" + text
