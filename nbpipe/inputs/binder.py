"""Binder-ready repositories (repo2docker's files) as an nbpipe image on one of ours.

What a Binder user expects, on a Kubeflow image: the repository's files in the home
directory (through the home skeleton, so an empty volume receives them at first start),
its packages installed, postBuild run once at build, start wrapping the server, and its
notebooks executed as a probe. The configuration files are read from ``binder/`` or
``.binder/`` when there is one (then the top level's are not), else from the top level.
Every repo2docker file nbpipe does not build is named, and stops the build.
"""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import yaml

from nbpipe.errors import NbpipeError, SpecError
from nbpipe.inputs import repofiles, requirements, safe_io, yamldata
from nbpipe.inputs.spec import NAME, Spec
from nbpipe.recipe import contract
from nbpipe.recipe import steps as s
from nbpipe.recipe.image import Image

FILES = ("requirements.txt", "apt.txt", "environment.yml", "runtime.txt", "postBuild", "start")
# repo2docker's other files, and what they would have installed: never silently skipped
UNSUPPORTED = {
    "install.R": "R packages",
    "DESCRIPTION": "an R package",
    "Project.toml": "Julia packages",
    "JuliaProject.toml": "Julia packages",
    "REQUIRE": "Julia packages",
    "Pipfile": "pipenv packages",
    "Pipfile.lock": "pipenv packages",
    "setup.py": "the repository as a Python package",
    "default.nix": "a Nix environment",
    "Dockerfile": "a whole image of its own",
    "manifest.xml": "a Stencila environment",
}
# conda names that pip does not need: the interpreter (checked like runtime.txt) and pip
CONDA_IMPLICIT = {"python", "pip", "setuptools", "wheel"}
SETTINGS = "nbpipe.yaml"  # optional, next to the Binder files: probes the repository opts out of


Python = tuple[Path, str, str]  # a Python the repository asks for: file, its words, X.Y


def _check_python(wanted: list[Python], img: Image, parent: str) -> None:
    """Each Python asked for must be the parent's (its io.nbpipe.python label, which the
    python-version probe checks): nbpipe installs no other."""
    has = img.config().label_dict().get(contract.LABEL_PYTHON) if img.platforms else None
    for path, asked, version in wanted:
        if has is None:
            raise SpecError(
                f"{path}: asks for {asked}, but the parent {parent} declares "
                f"no Python ({contract.LABEL_PYTHON}); build on jupyter"
            )
        if has != version:
            raise SpecError(
                f"{path}: asks for {asked}, but the parent {parent} has Python "
                f"{has} and nbpipe installs no other: write python-{has} or "
                "choose a parent with that Python"
            )


def from_repo(repo: Path, parent: str = "jupyter", name: str | None = None) -> Spec:
    top = Path(repo)
    if not top.is_dir():
        raise SpecError(f"--from-repo {top}: not a directory")
    conf = _config_dir(top)
    _refuse_unsupported(top, conf)
    found = [f for f in FILES if (conf / f).is_file()]
    name = name or re.sub(r"[^a-z0-9._-]", "-", top.resolve().name.lower()).strip("-.") or "repo"
    if not NAME.fullmatch(name):
        raise SpecError(f"--from-repo {top}: {name!r} is not an image name; rename the folder")
    scripts = tuple(str((conf / f).relative_to(top)) for f in ("postBuild", "start") if f in found)
    files = repofiles.collect(top, executables=scripts)
    if not files:
        raise SpecError(f"--from-repo {top}: no files to ship (all ignored by .gitignore?)")

    steps: list[s.Step] = []
    pythons: list[Python] = []
    if "runtime.txt" in found:
        pythons.append(_runtime(_inside(top, conf, "runtime.txt")))
    if "apt.txt" in found:
        pkgs = requirements.apt(_inside(top, conf, "apt.txt"))
        if pkgs:
            steps.append(s.Apt(packages=tuple(pkgs)))
    # repo2docker: an environment.yml takes precedence; requirements.txt is then not read
    if "environment.yml" in found:
        pip, python = _environment(_inside(top, conf, "environment.yml"))
        pythons += python
    elif "requirements.txt" in found:
        pip = requirements.pip(_inside(top, conf, "requirements.txt"))
    else:
        pip = []
    if pip:
        steps.append(s.Pip(packages=tuple(pip)))
    steps.append(s.HomeTree(files=files))
    if "postBuild" in found:
        steps.append(s.Run(script=_post_build(scripts[0]), user=str(contract.NB_UID), network=True))
    probes = _probes(top, conf, pip, files)
    start = f"{contract.SKEL}/{scripts[-1]}" if "start" in found else None

    def recipe(img: Image) -> Image:
        _check_python(pythons, img, parent)
        out = img.with_step(*steps)
        if start:
            out = out.with_step(_wrap_server(img, start, parent))
        return out.with_probes(**probes)

    return Spec(top, name, parent, recipe, f"from the repository {top}")


def _config_dir(top: Path) -> Path:
    """repo2docker: binder/ (or .binder/) holds the files when present, not the top level."""
    dirs = [d for d in ("binder", ".binder") if (top / d).is_dir()]
    if len(dirs) == 2:
        raise SpecError(
            f"--from-repo {top}: has both binder/ and .binder/; repo2docker reads "
            "only one: remove the other"
        )
    if not dirs:
        return top
    _inside(top, top, dirs[0])  # a binder/ that is a link out of the repository: refused
    return top / dirs[0]


def _refuse_unsupported(top: Path, conf: Path) -> None:
    found = [f for f in UNSUPPORTED if (conf / f).is_file()]
    if found:
        where = "" if conf == top else f"{conf.name}/"
        what = ", ".join(f"{where}{f} ({UNSUPPORTED[f]})" for f in found)
        raise SpecError(
            f"--from-repo {top}: Binder files nbpipe does not build: {what}; "
            "remove them, or put what they install in requirements.txt or apt.txt"
        )


def _inside(top: Path, conf: Path, name: str) -> Path:
    """A repo file, refused if it (or binder/) is a symlink that leads out of the repo."""
    rel = str((conf / name).relative_to(top))
    return safe_io.inside(top, rel, f"--from-repo {top}: {rel}", error=SpecError)


def _runtime(path: Path) -> Python:
    """runtime.txt: only ``python-X.Y`` (or X.Y.Z, of which X.Y counts) is buildable here."""
    text = safe_io.read_text(path, error=SpecError).strip()
    m = re.fullmatch(r"python-(\d+)\.(\d+)(\.\d+)?", text, re.ASCII)
    if m:
        return path, text, f"{m.group(1)}.{m.group(2)}"
    if text.startswith("r-"):
        raise SpecError(
            f"{path}: asks for R ({text}); nbpipe builds Binder repositories on a "
            "Python image only: remove runtime.txt or build an rstudio spec"
        )
    raise SpecError(f"{path}: {text[:60]!r} is not a runtime nbpipe knows; write python-X.Y")


def _environment(path: Path) -> tuple[list[str], list[Python]]:
    """The pip section of an environment.yml, read bounded (an alias bomb is refused), and
    its python=X.Y pin (checked like runtime.txt). Read as nodes, so every refusal names
    environment.yml, the line and the entry."""
    where = str(path)
    root = safe_io.compose_yaml(safe_io.read_text(path, error=SpecError), where, error=SpecError)
    deps = None
    if isinstance(root, yaml.MappingNode):
        for k, v in yamldata.pairs(root, where, error=SpecError):
            if isinstance(k, yaml.ScalarNode) and k.value == "dependencies":
                deps = v
    if deps is None or (isinstance(deps, yaml.ScalarNode) and deps.tag == yamldata.TAG + "null"):
        return [], []
    if not isinstance(deps, yaml.SequenceNode):
        raise SpecError(f"{where}:{deps.start_mark.line + 1}: dependencies: must be a list")
    pip: list[str] = []
    conda_only: list[str] = []
    python: list[Python] = []
    for i, dep in enumerate(deps.value):
        field = f"dependencies[{i}]"
        if isinstance(dep, yaml.MappingNode):
            for k, v in yamldata.pairs(dep, where, field, error=SpecError):
                if isinstance(k, yaml.ScalarNode) and k.value == "pip":
                    pip += _pip_section(where, f"{field}.pip", v)
        elif isinstance(dep, yaml.ScalarNode) and dep.tag == yamldata.TAG + "str":
            text = dep.value
            base = re.split(r"[=<>! ]", text, maxsplit=1)[0]
            m = re.fullmatch(r"python\s*==?\s*(\d+)\.(\d+)(\.[\d*]+)?", text.strip(), re.ASCII)
            if m:
                python.append((path, text.strip(), f"{m.group(1)}.{m.group(2)}"))
            elif base not in CONDA_IMPLICIT:
                conda_only.append(text)
    if conda_only:
        shown = ", ".join(yamldata.shown(c) for c in conda_only[:20])
        more = f" and {len(conda_only) - 20:,} more" if len(conda_only) > 20 else ""
        raise SpecError(
            f"{path}: dependencies: conda-only packages {shown}{more}: "
            "nbpipe images have no conda; move them to the pip: section (or to "
            "apt.txt for system libraries)"
        )
    return pip, python


def _pip_section(where: str, field: str, node: yaml.Node) -> list[str]:
    """environment.yml's ``- pip: [...]``: each entry checked as a requirements.txt line."""
    if not isinstance(node, yaml.SequenceNode) or not all(
        isinstance(x, yaml.ScalarNode) for x in node.value
    ):
        raise SpecError(
            f"{where}:{node.start_mark.line + 1}: {field}: must be a list of requirements"
        )
    out = []
    for j, item in enumerate(node.value):
        text = item.value.strip()
        try:
            requirements.check_pip(text)
        except NbpipeError as exc:
            raise SpecError(f"{where}:{item.start_mark.line + 1}: {field}[{j}]: {exc}") from None
        out.append(text)
    return out


def _post_build(rel: str) -> str:
    """postBuild runs once, as jovyan, in the repository as shipped (the skeleton) with
    HOME there too: what it writes to ~ reaches the user's home at first start. Its
    download caches go to /tmp and are removed, never shipped."""
    cache = "/tmp/nbpipe-postbuild-cache"
    return "\n".join(
        [
            f"cd {contract.SKEL}",
            f"export HOME={contract.SKEL} XDG_CACHE_HOME={cache}",
            f"./{shlex.quote(rel)}",
            f"rm -rf {cache}",
        ]
    )


def _wrap_server(img: Image, start: str, parent: str) -> s.Service:
    """repo2docker's start wraps the server: the parent's supervised server run script,
    with its final ``exec CMD`` turned into ``exec START CMD`` (start ends `exec "$@"`)."""
    name = img.config().label_dict().get(contract.LABEL_SERVICE) if img.platforms else None
    service = next(
        (
            st
            for im in img.lineage()
            for st in reversed(im.steps)
            if isinstance(st, s.Service) and st.name == name
        ),
        None,
    )
    if service is None:
        raise SpecError(
            f"{start}: start wraps the server, but the parent {parent} declares no "
            f"supervised server ({contract.LABEL_SERVICE})"
        )
    lines = service.run.splitlines()
    execs = [i for i, line in enumerate(lines) if re.match(r"\s*exec\s+(?!\d*[<>])", line)]
    if not execs:
        raise SpecError(
            f"{start}: the server of {parent} ({name}) does not end with exec; start cannot wrap it"
        )
    i = execs[-1]
    lines[i] = re.sub(
        r"^(\s*)exec\s+", lambda m: f"{m.group(1)}exec {shlex.quote(start)} ", lines[i], count=1
    )
    return s.Service(name=service.name, run="\n".join(lines) + "\n", finish=service.finish)


def _probes(top: Path, conf: Path, pip: list[str], files: tuple[repofiles.File, ...]) -> dict:
    """What the repository is probed with: its requirements import, its notebooks run
    (all of them, unless its nbpipe.yaml says ``probes: {notebooks: false}`` or a list)."""
    dists: dict[str, None] = {}  # in order, each once: linear in the requirements
    for req in pip:
        m = re.match(r"[A-Za-z0-9][A-Za-z0-9._-]*", req)
        if m:
            dists.setdefault(m.group(0))
    notebooks: list[str] = [
        rel
        for rel, _, _ in files
        if rel.endswith(".ipynb") and ".ipynb_checkpoints" not in rel.split("/")
    ]
    timeout = None
    settings = conf / SETTINGS
    if settings.is_file():
        where = f"{top}/{settings.relative_to(top)}"
        data = safe_io.load_yaml(_inside(top, conf, SETTINGS), where, error=SpecError) or {}
        probes = data.get("probes", {}) if isinstance(data, dict) else None
        if (
            not isinstance(probes, dict)
            or set(data) - {"probes"}
            or set(probes) - {"notebooks", "notebook_timeout"}
        ):
            raise SpecError(
                f"{where}: only 'probes:' with 'notebooks:' (false, or a list of "
                "notebooks) and 'notebook_timeout:' (seconds) may be set"
            )
        chosen = probes.get("notebooks", True)
        if chosen is False:
            notebooks = []
        elif isinstance(chosen, list):
            missing = [nb for nb in chosen if nb not in notebooks]
            if missing:
                raise SpecError(
                    f"{where}: probes: notebooks: {missing[0]!r} is not a notebook "
                    "the repository ships (paths are relative to the repository)"
                )
            notebooks = chosen
        elif chosen is not True:
            raise SpecError(f"{where}: probes: notebooks: give false, or a list of notebooks")
        timeout = probes.get("notebook_timeout")
        if timeout is not None and (type(timeout) is not int or not 0 < timeout <= 86400):
            raise SpecError(f"{where}: probes: notebook_timeout: give seconds (1 to 86400)")
    out: dict = {"distributions": tuple(dists), "notebooks": tuple(notebooks)}
    if timeout is not None:
        out["notebook_timeout"] = timeout
    return out
