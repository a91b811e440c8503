"""YAML spec -> Image, for teams that don't write Python.

    name: team-astro
    parent: jupyter              # a family image, or a digest-pinned ref (name@sha256:...)
    apt: [libcfitsio10]
    pip: [astropy==7.1.0]        # or: pip: {requirements: requirements.txt}
                                 # or {packages: [...], installer: pip} (default: uv)
                                 # beside: true runs it at the same time as apt
    env: {ASTRO_DATA: /home/jovyan/data}
    files: [{path: /etc/astro.cfg, source: astro.cfg, mode: "0644"}]
    init_scripts: {10-astro: "#!/bin/sh\\necho hi\\n"}
    services: {watcher: {run: "#!/bin/sh\\nexec sleep infinity\\n"}}
    labels: {team: astro}
    platforms: [linux/amd64]
    probes: {imports: [astropy], commands: ["fitsinfo --help"]}
    # also: distributions (pip names whose modules must import), notebooks (.ipynb paths,
    # relative to $HOME or absolute, run top to bottom), notebook_timeout (seconds each)

Every error names the file, the line and the field, and says what is allowed.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any, Callable

import yaml

from nbpipe.errors import NbpipeError, SpecError
from nbpipe.inputs import requirements, safe_io, yamldata
from nbpipe.recipe import contract
from nbpipe.recipe import platforms as plat
from nbpipe.recipe import steps as s
from nbpipe.recipe.catalog import Catalog
from nbpipe.recipe.image import BaseRef, Image, check_probes

# Used with fullmatch (a regex `$` would accept a final newline).
NAME = re.compile(r"[a-z0-9][a-z0-9._-]*")
REF = re.compile(r"[\w.-]+(:\d+)?(/[\w.-]+)+(:[\w.-]+)?@sha256:[0-9a-f]{64}", re.ASCII)
MAX_FILE_BYTES = 64 << 20  # a file a spec copies into the image
MAX_SPEC_BYTES = 256 << 20  # all the files one spec copies, together
KEYS = (
    "name",
    "parent",
    "description",
    "apt",
    "pip",
    "npm",
    "env",
    "files",
    "init_scripts",
    "services",
    "labels",
    "platforms",
    "probes",
    "debian_snapshot",
)
PROBE_KEYS = (
    "imports",
    "commands",
    "r_libraries",
    "distributions",
    "notebooks",
    "notebook_timeout",
)


@dataclass(frozen=True)
class Spec:
    """A parsed spec: its name, its parent (a family name or a pinned root) and recipe."""

    path: Path
    name: str
    parent: str | BaseRef
    recipe: Callable[[Image], Image]
    description: str = ""
    # Not errors, but a user should hear them: "file:line: pip[0]: 'numpy' is not pinned ..."
    warnings: tuple[str, ...] = ()
    name_line: int = 1  # where `name:` is, for an error about the name itself

    def register(self, catalog: Catalog) -> Catalog:
        if isinstance(self.parent, str) and self.parent not in catalog.entries:
            raise SpecError(
                f"{self.path}: parent: unknown image {self.parent!r}; use one of "
                f"{', '.join(catalog.names)} or a ref pinned as name@sha256:<digest>"
            )
        if self.name in catalog.entries:
            raise SpecError(
                f"{self.path}:{self.name_line}: name: {self.name!r} is already an "
                "image of the catalog (or of another spec); give this image its "
                f"own name, e.g. team-{self.name}"
            )
        catalog.add(self.name, self.parent, self.recipe, self.description)
        return catalog


class _Node:
    """A YAML node with the file it came from, for errors that point at a line."""

    def __init__(self, node: yaml.Node, path: Path, field: str):
        self.node, self.path, self.field = node, path, field

    def fail(self, problem: str) -> SpecError:
        line = self.node.start_mark.line + 1
        return SpecError(f"{self.path}:{line}: {self.field}: {problem}")

    def scalar(self, what: str = "a string") -> str:
        if not isinstance(self.node, yaml.ScalarNode) or self.node.tag.endswith(":null"):
            raise self.fail(f"must be {what}")
        return str(self.node.value)

    def seq(self) -> list["_Node"]:
        if not isinstance(self.node, yaml.SequenceNode):
            raise self.fail("must be a list (- item per line, or [a, b])")
        return [_Node(n, self.path, f"{self.field}[{i}]") for i, n in enumerate(self.node.value)]

    def strings(self) -> list[str]:
        return [n.scalar() for n in self.seq()]

    def mapping(self, allowed: tuple[str, ...] | None = None) -> dict[str, "_Node"]:
        if not isinstance(self.node, yaml.MappingNode):
            raise self.fail("must be a mapping (key: value)")
        out: dict[str, _Node] = {}
        for k, v in yamldata.pairs(self.node, str(self.path), self.field, error=SpecError):
            key = _Node(k, self.path, self.field).scalar("a plain key")
            shown = key if key.isprintable() and key else repr(key)  # errors stay one line
            field = f"{self.field}.{shown}" if self.field else shown
            if allowed is not None and key not in allowed:
                raise _Node(k, self.path, field).fail(
                    f"unknown key; allowed here: {', '.join(allowed)}"
                )
            if key in out:
                raise _Node(k, self.path, field).fail("given twice")
            out[key] = _Node(v, self.path, field)
        return out


def load(path: Path) -> Spec:
    """Parse and check a spec file; raise SpecError naming file:line: field on any problem."""
    path = Path(path)
    root = safe_io.compose_yaml(
        safe_io.read_text(path, error=SpecError), str(path), error=SpecError
    )
    if root is None:
        raise SpecError(f"{path}: empty spec; it needs at least 'name' and 'parent'")
    top = _Node(root, path, "").mapping(KEYS)
    for key in ("name", "parent"):
        if key not in top:
            raise SpecError(f"{path}:1: {key}: required")
    name = top["name"].scalar()
    if not NAME.fullmatch(name):
        raise top["name"].fail(
            f"{name!r} is not an image name (lowercase letters, digits, '-', '_', '.')"
        )
    parent = _parent(top["parent"])
    warnings: list[str] = []
    build = _recipe(top, path, warnings, ours=parent if isinstance(parent, str) else None)
    desc = top["description"].scalar() if "description" in top else f"from {path.name}"
    return Spec(
        path, name, parent, build, desc, tuple(warnings), top["name"].node.start_mark.line + 1
    )


def _parent(node: _Node) -> str | BaseRef:
    value = node.scalar()
    if "/" in value or "@" in value:
        if not REF.fullmatch(value):
            raise node.fail(
                f"{value!r} is not a digest-pinned image reference "
                "(registry/name@sha256:<64 hex>); or give a family image name"
            )
        return BaseRef(value.split("@")[0], {p: value.split("@")[1] for p in plat.ALL})
    if not NAME.fullmatch(value):
        raise node.fail(f"{value!r} is not an image name")
    return value


# A step's own errors start with its kind ("apt: ..."); the field already says it.
STEP_KINDS = ("apt", "pip", "npm", "env", "label", "init script", "service", "port")
PINNED = re.compile(
    r"[A-Za-z0-9][A-Za-z0-9._-]*(\[[A-Za-z0-9._,-]*\])?\s*===?\s*[A-Za-z0-9.+!_-]+"
    r"(\s*;.*)?"
)


def _unpinned(path: Path, spec: Path, where: list[tuple[int, str, str]]) -> list[str]:
    """Warnings for requirements that do not name one exact version: each build may
    install another (a lock, `nbpipe lock -f SPEC`, pins them with hashes)."""
    return [
        f"{path}:{line}: {field}: {req!r} is not pinned to one version (name==version): "
        f"builds are not reproducible; pin it, or run `nbpipe lock -f {spec}`"
        for line, field, req in where
        if not PINNED.fullmatch(req.strip())
    ]


def _recipe(
    top: dict[str, _Node], path: Path, warnings: list[str], *, ours: str | None = None
) -> Callable[[Image], Image]:
    """Check every field now; return the function that layers them onto the parent
    (``ours``: a catalog image's name, whose Python environment is known; a pinned ref's
    is not)."""
    steps: list[s.Step] = []
    snapshot = _snapshot(top)
    if "apt" in top:
        pkgs = top["apt"].strings()
        if pkgs:
            _add(steps, top["apt"], lambda: s.Apt(packages=tuple(pkgs), snapshot=snapshot))
    pip_node = _pip(top, path, warnings, steps)
    if "npm" in top:
        npm = top["npm"].strings()
        if npm:
            _add(steps, top["npm"], lambda: s.Npm(packages=tuple(npm)))
    _env(top, steps)
    _files(top, path, steps)
    _init_scripts(top, steps)
    _services(top, steps)
    if "labels" in top:
        for key, node in top["labels"].mapping().items():
            _add(steps, node, partial(s.Label, key=key, value=node.scalar()))
    platforms = _platforms(top)
    probes = _probes(top)

    def recipe(parent: Image) -> Image:
        img = _on_parent(parent, platforms, path)
        if ours and pip_node is not None:
            _need_venv(parent, steps, pip_node, ours)
        return img.with_step(*steps).with_probes(**probes)

    return recipe


def _add(steps: list[s.Step], node: _Node, make: Callable[[], s.Step]) -> None:
    """Append the step ``make`` builds; its own error is told at ``node``'s line."""
    try:
        steps.append(make())
    except NbpipeError as exc:
        message = str(exc)
        kind, sep, rest = message.partition(": ")
        raise node.fail(rest if sep and kind in STEP_KINDS else message) from None


def _snapshot(top: dict[str, _Node]) -> str | None:
    """debian_snapshot: apt from Debian's snapshot of that time (README, "Locks")."""
    if "debian_snapshot" not in top:
        return None
    snapshot = top["debian_snapshot"].scalar("a time like 20261126T000000Z")
    try:
        s.snapshot_sources(snapshot)
    except NbpipeError as exc:
        raise top["debian_snapshot"].fail(str(exc)) from None
    return snapshot


def _pip(
    top: dict[str, _Node], path: Path, warnings: list[str], steps: list[s.Step]
) -> _Node | None:
    """pip: a list, or {requirements: FILE}; warns of each unpinned requirement. Returns
    the field's node when it added a step."""
    if "pip" not in top:
        return None
    node = top["pip"]
    installer, beside = "uv", False
    if isinstance(node.node, yaml.MappingNode):
        fields = node.mapping(("requirements", "packages", "installer", "beside"))
        if ("requirements" in fields) == ("packages" in fields):
            raise node.fail("give either requirements: FILE or packages: [...]")
        if "installer" in fields:
            installer = fields["installer"].scalar()
            if installer not in s.INSTALLERS:
                raise fields["installer"].fail(
                    f"{installer!r} is not an installer; give one of {', '.join(s.INSTALLERS)}"
                )
        if "beside" in fields:
            beside = _beside(fields["beside"], path, steps)
        listed = fields.get("packages")
        if listed is not None:
            reqs, more = _listed(path, listed)
            warnings += more
        else:
            req = fields["requirements"]
            file = _inside(path, req)
            if not file.is_file():
                raise req.fail(f"no such file {req.scalar()!r} next to the spec")
            numbered = requirements.pip_lines(file)
            reqs = [r for _, r in numbered]
            warnings += _unpinned(file, path, [(n, "requirements", r) for n, r in numbered])
    else:
        reqs, more = _listed(path, node)
        warnings += more
    if not reqs:
        return None
    _add(steps, node, lambda: s.Pip(packages=tuple(reqs), installer=installer, beside=beside))
    return node


def _beside(node: _Node, path: Path, steps: list[s.Step]) -> bool:
    """pip.beside: true or false; true only with this spec's apt step (Pip.beside)."""
    value = (
        yamldata.scalar(node.node, str(path), node.field, error=SpecError)
        if isinstance(node.node, yaml.ScalarNode)
        else None
    )
    if not isinstance(value, bool):
        raise node.fail("must be true or false")
    if value and not (steps and isinstance(steps[-1], s.Apt)):
        raise node.fail(
            "true runs pip at the same time as this spec's apt step, and it has none "
            "(give apt: [...] too, or leave beside out)"
        )
    return value


def _listed(path: Path, node: _Node) -> tuple[list[str], list[str]]:
    """Requirements given in the spec itself, and a warning for each one not pinned."""
    items = node.seq()
    reqs = [n.scalar() for n in items]
    lines = [(n.node.start_mark.line + 1, n.field, r) for n, r in zip(items, reqs, strict=True)]
    return reqs, _unpinned(path, path, lines)


def _env(top: dict[str, _Node], steps: list[s.Step]) -> None:
    if "env" not in top:
        return
    for key, node in top["env"].mapping().items():
        value = node.scalar()  # first: a list or mapping is refused in words
        if node.node.tag != "tag:yaml.org,2002:str":
            raise node.fail(f'{value!r} is not a string: quote it, e.g. "{value}"')
        _add(steps, node, partial(s.Env, name=key, value=value))


def _files(top: dict[str, _Node], path: Path, steps: list[s.Step]) -> None:
    """files: each from a file next to the spec (all of them within MAX_SPEC_BYTES) or
    given as content."""
    if "files" not in top:
        return
    budget = safe_io.Budget(MAX_SPEC_BYTES, "the spec", error=SpecError)
    for item in top["files"].seq():
        f = item.mapping(("path", "source", "content", "mode", "owner"))
        if "path" not in f:
            raise item.fail("needs 'path' (where the file goes in the image)")
        if ("source" in f) == ("content" in f):
            raise item.fail("give exactly one of 'source' (a file next to the spec) or 'content'")
        if "source" in f:
            data = _file_source(f["source"], path, budget)
        else:
            data = f["content"].scalar().encode()
        mode = _mode(f["mode"]) if "mode" in f else 0o644
        owner = f["owner"].scalar() if "owner" in f else "0:0"
        if not re.fullmatch(r"[0-9]+:[0-9]+", owner):
            raise f["owner"].fail(f"{owner!r}: give uid:gid, e.g. 1000:0")
        dest = f["path"].scalar()
        _add(steps, item, partial(s.File, path=dest, content=data, mode=mode, owner=owner))


def _file_source(source: _Node, path: Path, budget: safe_io.Budget) -> bytes:
    """The bytes of a file next to the spec, counted against the spec's budget."""
    src = _inside(path, source)
    if not src.is_file():
        raise source.fail(f"no such file {source.scalar()!r} next to the spec")
    where = f"{path}:{source.node.start_mark.line + 1}: {source.field}"
    budget.take(src.stat().st_size, where)  # before reading: sparse files too
    return safe_io.read_bytes(src, where, limit=MAX_FILE_BYTES, error=SpecError)


def _init_scripts(top: dict[str, _Node], steps: list[s.Step]) -> None:
    if "init_scripts" not in top:
        return
    for key, node in top["init_scripts"].mapping().items():
        script = node.scalar("the script's text")
        if not script.startswith("#!"):
            raise node.fail("an init script starts with a #! line, e.g. #!/bin/sh")
        _add(steps, node, partial(s.InitScript, name=key, script=script))


def _services(top: dict[str, _Node], steps: list[s.Step]) -> None:
    if "services" not in top:
        return
    for key, node in top["services"].mapping().items():
        svc = node.mapping(("run", "finish"))
        if "run" not in svc:
            raise node.fail("a service needs a 'run' script (it is exec'd and supervised)")
        run = svc["run"].scalar("the run script's text")
        finish = svc["finish"].scalar() if "finish" in svc else None
        _add(steps, node, partial(s.Service, name=key, run=run, finish=finish))


def _platforms(top: dict[str, _Node]) -> tuple[str, ...] | None:
    if "platforms" not in top:
        return None
    platforms = tuple(top["platforms"].strings())
    if not platforms:
        raise top["platforms"].fail(f"give at least one: {' or '.join(plat.ALL)}")
    for i, p in enumerate(platforms):
        if p not in plat.ALL:
            raise top["platforms"].seq()[i].fail(f"{p!r}: use {' or '.join(plat.ALL)}")
    return platforms


def _probes(top: dict[str, _Node]) -> dict[str, Any]:
    """The keyword arguments of with_probes (PROBE_KEYS only), each checked."""
    probes: dict[str, Any] = {}
    if "probes" not in top:
        return probes
    for key, node in top["probes"].mapping(PROBE_KEYS).items():
        if key == "notebook_timeout":
            text = node.scalar("a number of seconds")
            if not re.fullmatch(r"[0-9]{1,9}", text):  # ASCII only: '²'.isdigit() is True
                raise node.fail(f"{text[:60]!r} is not a number of seconds (1 to 86400)")
            probes[key] = int(text)
        else:
            probes[key] = tuple(node.strings())
        try:
            check_probes(**{key: probes[key]})
        except NbpipeError as exc:
            raise node.fail(str(exc).split(": ", 1)[1]) from None
    return probes


def _on_parent(parent: Image, platforms: tuple[str, ...] | None, path: Path) -> Image:
    """The parent, narrowed to the spec's platforms (each one the parent offers)."""
    if platforms is None:
        return parent
    missing = [p for p in platforms if p not in parent.platforms]
    if missing:
        raise SpecError(
            f"{path}: platforms: {', '.join(missing)} not offered by the "
            f"parent (it has {', '.join(parent.platforms)})"
        )
    return parent.with_platforms(*platforms)


def _need_venv(parent: Image, steps: list[s.Step], pip_node: _Node, ours: str) -> None:
    """A pip step into our Python environment needs a parent that has it."""
    into_venv = any(
        isinstance(st, s.Pip) and st.python.startswith(contract.VENV + "/") for st in steps
    )
    if into_venv and parent.config().env_dict().get("VIRTUAL_ENV") != contract.VENV:
        raise pip_node.fail(
            f"the parent {ours} has no Python "
            f"environment at {contract.VENV} to install into (jupyter "
            "and the images built on it have one); build on one of "
            "those, or install Debian's python3-* packages with apt"
        )


def _inside(spec: Path, node: _Node) -> Path:
    """A file the spec names: relative, and inside the spec's folder once symlinks are
    followed (a spec is someone else's; this machine's files are not its to copy)."""
    return safe_io.inside(
        spec.parent,
        node.scalar(),
        f"{spec}:{node.node.start_mark.line + 1}: {node.field}",
        error=SpecError,
    )


def _mode(node: _Node) -> int:
    text = node.scalar('an octal string such as "0644"')
    if not re.fullmatch(r"[0-7]{1,5}", text):  # ASCII octal digits, a mode's length
        raise node.fail(f'{text[:60]!r} is not an octal mode such as "0644"')
    mode = int(text, 8)
    if not 0 <= mode <= 0o7777:
        raise node.fail(f"{text!r} is not a file mode")
    return mode
