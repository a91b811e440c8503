"""Binder-ready repositories (repo2docker's files) as an nbpipe image on one of ours.

Understood: requirements.txt, apt.txt, environment.yml (its pip section; conda-only
packages are reported, since there is no conda here), postBuild (run as jovyan at
build time), start (run at every container start, as a cont-init.d script).
"""

from __future__ import annotations

import re
from pathlib import Path

from . import requirements
from . import safe_io
from . import steps as s
from .errors import SpecError
from .image import Image
from .spec import NAME, Spec

FILES = ("requirements.txt", "apt.txt", "environment.yml", "postBuild", "start")
# conda names that pip does not need: the interpreter and pip themselves
CONDA_IMPLICIT = {"python", "pip", "setuptools", "wheel"}


def from_repo(repo: Path, parent: str = "jupyter", name: str | None = None) -> Spec:
    repo = top = Path(repo)
    if not repo.is_dir():
        raise SpecError(f"--from-repo {repo}: not a directory")
    found = [f for f in FILES if (repo / f).is_file()]
    binder = repo / "binder"
    if binder.is_dir():  # repo2docker: binder/ takes precedence over the top level
        _inside(top, top, "binder")
        found = [f for f in FILES if (binder / f).is_file()]
        repo = binder
    if not found:
        raise SpecError(f"--from-repo {repo}: none of {', '.join(FILES)} found")
    name = name or re.sub(r"[^a-z0-9._-]", "-", repo.resolve().name.lower()).strip("-.") or "repo"
    if repo.name == "binder":
        name = re.sub(r"[^a-z0-9._-]", "-", repo.resolve().parent.name.lower()) or "repo"
    if not NAME.fullmatch(name):
        raise SpecError(f"--from-repo {repo}: {name!r} is not an image name; pass --name")
    steps: list[s.Step] = []
    if "apt.txt" in found:
        pkgs = requirements.apt(_inside(top, repo, "apt.txt"))
        if pkgs:
            steps.append(s.Apt(packages=tuple(pkgs)))
    pip: list[str] = []
    if "environment.yml" in found:
        pip += _environment(_inside(top, repo, "environment.yml"))
    if "requirements.txt" in found:
        pip += requirements.pip(_inside(top, repo, "requirements.txt"))
    if pip:
        steps.append(s.Pip(packages=tuple(pip)))
    if "postBuild" in found:
        script = safe_io.read_text(_inside(top, repo, "postBuild"), str(repo / "postBuild"),
                                   error=SpecError)
        steps.append(s.Run(script=script, user="1000", network=True))
    if "start" in found:
        steps.append(s.InitScript(name="50-repo-start",
                                  script=_as_script(_inside(top, repo, "start"))))

    def recipe(img: Image) -> Image:
        return img.with_step(*steps)

    return Spec(repo, name, parent, recipe, f"from the repository {repo}")


def _inside(top: Path, repo: Path, name: str) -> Path:
    """A repo file, refused if it (or binder/) is a symlink that leads out of the repo."""
    rel = str((repo / name).relative_to(top))
    return safe_io.inside(top, rel, f"--from-repo {top}: {rel}", error=SpecError)


def _environment(path: Path) -> list[str]:
    """The pip section of an environment.yml, read bounded (an alias bomb is refused)."""
    env = safe_io.load_yaml(path, error=SpecError) or {}
    deps = env.get("dependencies") if isinstance(env, dict) else None
    if not isinstance(deps, list | None):
        raise SpecError(f"{path}: dependencies: must be a list")
    pip: list[str] = []
    conda_only: list[str] = []
    for dep in deps or []:
        if isinstance(dep, dict) and "pip" in dep:
            if not isinstance(dep["pip"], list) or not all(
                    isinstance(x, (str, int, float)) for x in dep["pip"]):
                raise SpecError(f"{path}: dependencies: pip: must be a list of requirements")
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
    text = safe_io.read_text(start, error=SpecError)
    # repo2docker's start ends with `exec "$@"`; as an init script it just returns.
    text = re.sub(r'^\s*exec\s+"\$@"\s*$', "", text, flags=re.M)
    return text if text.startswith("#!") else "#!/bin/sh\n" + text
