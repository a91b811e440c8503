"""Image: an immutable recipe (parent + ordered steps) and its content digest.

As in Nix, an image is data. Its identity is a sha256 over its parent's identity and the
canonical form of its own steps (file contents by hash, every pin included), computed per
platform. Tags, caching, "only rebuild what changed" and the build plan all come from it.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Callable, Iterator, Mapping

from nbpipe.errors import NbpipeError
from nbpipe.recipe import contract
from nbpipe.recipe import platforms as plat
from nbpipe.recipe import steps as s
from nbpipe.recipe.lowering import lowered
from nbpipe.recipe.ops import (
    Expose,
    Op,
    SetCmd,
    SetEntrypoint,
    SetEnv,
    SetLabel,
    SetUser,
    SetWorkdir,
)

DIGEST_VERSION = "nbpipe/1"  # bump when the canonical encoding changes


def sha256_json(value: Any) -> str:
    """The one canonical encoding: sorted keys, no whitespace, UTF-8."""
    blob = json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return "sha256:" + hashlib.sha256(blob.encode()).hexdigest()


@dataclass(frozen=True)
class BaseRef:
    """A root image nbpipe does not build: a registry image pinned by per-platform digest.

    ``ref`` is what engines pull (or a local name); ``digests`` pins each platform.
    """

    ref: str
    digests: Mapping[str, str] = field(hash=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "digests", dict(self.digests))
        for p, d in self.digests.items():
            plat.check(p)
            if not (d.startswith("sha256:") and len(d) == 71):
                raise NbpipeError(f"base {self.ref}: digest for {p} must be 'sha256:' + 64 hex")

    @property
    def platforms(self) -> tuple[str, ...]:
        return tuple(p for p in plat.ALL if p in self.digests)

    def digest(self, platform: str) -> str:
        if platform not in self.digests:
            raise NbpipeError(f"base {self.ref} is not pinned for {platform}")
        return self.digests[platform]

    def pinned(self, platform: str) -> str:
        """The reference an engine pulls: name@digest (registry) or the local name."""
        if self.ref.startswith("localhost/"):
            return f"{self.ref}-{platform.split('/')[1]}"  # local roots: one tag per arch
        return f"{self.ref.split('@')[0]}@{self.digest(platform)}"

    def __hash__(self) -> int:
        return hash((self.ref, tuple(sorted(self.digests.items()))))


@dataclass(frozen=True)
class ImageConfig:
    """The OCI config an image ends with, computed from its steps (used by both engines)."""

    user: str = "root"
    workdir: str = "/"
    env: tuple[tuple[str, str], ...] = ()
    labels: tuple[tuple[str, str], ...] = ()
    ports: tuple[int, ...] = ()
    entrypoint: tuple[str, ...] = ()
    cmd: tuple[str, ...] = ()

    def env_dict(self) -> dict[str, str]:
        return dict(self.env)

    def label_dict(self) -> dict[str, str]:
        return dict(self.labels)


@dataclass(frozen=True)
class Image:
    """parent + steps. Every ``with_*`` returns a new Image; nothing mutates."""

    parent: "Image | BaseRef"
    steps: tuple[s.Step, ...] = ()
    platforms: tuple[str, ...] = plat.ALL
    name: str = field(default="", compare=False)  # display only: not part of the identity

    def __post_init__(self) -> None:
        for p in self.platforms:
            plat.check(p)
        allowed = self.parent.platforms
        extra = [p for p in self.platforms if p not in allowed]
        if extra:
            raise NbpipeError(
                f"image {self.name or '(unnamed)'}: platform(s) {', '.join(extra)} not offered "
                f"by its parent (which has {', '.join(allowed)})"
            )

    # -- building recipes -------------------------------------------------------------
    @classmethod
    def from_base(cls, base: BaseRef, name: str = "") -> "Image":
        return cls(parent=base, steps=(), platforms=base.platforms, name=name)

    def child(self, name: str = "") -> "Image":
        """A new image whose parent is this one (what catalog functions receive)."""
        return Image(parent=self, steps=(), platforms=self.platforms, name=name)

    def with_step(self, *steps: s.Step) -> "Image":
        return replace(self, steps=self.steps + steps)

    def with_(self, fn: Callable[["Image"], "Image"]) -> "Image":
        """Apply a reusable recipe fragment, Dagger-style: ``img.with_(add_r_kernel)``."""
        return fn(self)

    def named(self, name: str) -> "Image":
        return replace(self, name=name)

    def with_platforms(self, *platforms: str) -> "Image":
        return replace(self, platforms=tuple(p for p in plat.ALL if p in platforms))

    def with_apt(
        self,
        *packages: str,
        remove: tuple[str, ...] = (),
        after: str = "",
        platforms: tuple[str, ...] = (),
        snapshot: str | None = None,
        skip: tuple[str, ...] = (),
    ) -> "Image":
        """``snapshot``: install from Debian's snapshot of that time (20261126T000000Z).
        ``skip``: maintainer-script commands whose result ``remove`` deletes (Apt.skip)."""
        return self.with_step(
            s.Apt(
                packages=packages,
                remove=remove,
                after=after,
                platforms=platforms,
                snapshot=snapshot,
                skip=skip,
            )
        )

    def with_pip(
        self,
        *packages: str,
        index_url: str | None = None,
        extra_index_urls: tuple[str, ...] = (),
        platforms: tuple[str, ...] = (),
        remove: tuple[str, ...] = (),
        after: str = "",
        installer: str = "uv",
        beside: bool = False,
    ) -> "Image":
        """``beside``: at the same time as the apt step just before it, in its layer, for
        a step that needs nothing that step installs (Pip.beside)."""
        last = self.steps[-1] if self.steps else None
        if beside and not (isinstance(last, s.Apt) and last.platforms == platforms):
            raise NbpipeError(
                f"pip {' '.join(packages)}: beside=True needs an apt step just before it, "
                "for the same platforms"
            )
        return self.with_step(
            s.Pip(
                packages=packages,
                index_url=index_url,
                extra_index_urls=extra_index_urls,
                platforms=platforms,
                remove=remove,
                after=after,
                installer=installer,
                beside=beside,
            )
        )

    def with_npm(
        self,
        *packages: str,
        prefix: str = "/usr/local",
        npm: str = "npm",
        nodedir: str | None = None,
        build_deps: tuple[str, ...] = (),
    ) -> "Image":
        return self.with_step(
            s.Npm(packages=packages, prefix=prefix, npm=npm, nodedir=nodedir, build_deps=build_deps)
        )

    def with_env(self, name: str, value: str) -> "Image":
        return self.with_step(s.Env(name=name, value=value))

    def with_user(self, user: str) -> "Image":
        return self.with_step(s.User(user=user))

    def with_workdir(self, path: str) -> "Image":
        return self.with_step(s.Workdir(path=path))

    def with_file(
        self, path: str, content: bytes | str | Path, mode: int = 0o644, owner: str = "0:0"
    ) -> "Image":
        return self.with_step(s.File(path=path, content=_bytes(content), mode=mode, owner=owner))

    def with_home_file(self, path: str, content: bytes | str | Path, mode: int = 0o644) -> "Image":
        return self.with_step(s.HomeFile(path=path, content=_bytes(content), mode=mode))

    def with_home_tree(self, files: tuple[tuple[str, bytes, int], ...]) -> "Image":
        """Files for $HOME in one layer: (path relative to $HOME, content, mode) each."""
        return self.with_step(s.HomeTree(files=tuple(files)))

    def with_deb(self, url: str, sha256: str | None, *, platforms: tuple[str, ...] = ()) -> "Image":
        return self.with_step(s.Deb(url=url, sha256=sha256, platforms=platforms))

    def with_download(
        self,
        url: str,
        sha256: str | None,
        dest: str,
        *,
        mode: int = 0o644,
        extract: bool = False,
        strip_components: int = 0,
        platforms: tuple[str, ...] = (),
    ) -> "Image":
        return self.with_step(
            s.Download(
                url=url,
                sha256=sha256,
                dest=dest,
                mode=mode,
                extract=extract,
                strip_components=strip_components,
                platforms=platforms,
            )
        )

    def with_run(
        self,
        script: str,
        *,
        user: str | None = None,
        network: bool = False,
        platforms: tuple[str, ...] = (),
    ) -> "Image":
        return self.with_step(s.Run(script=script, user=user, network=network, platforms=platforms))

    def with_label(self, key: str, value: str) -> "Image":
        return self.with_step(s.Label(key=key, value=value))

    def with_port(self, port: int) -> "Image":
        return self.with_step(s.Port(port=port))

    def with_entrypoint(self, *argv: str, cmd: tuple[str, ...] = ()) -> "Image":
        return self.with_step(s.Entrypoint(argv=argv, cmd=cmd))

    def with_init_script(self, name: str, script: str) -> "Image":
        return self.with_step(s.InitScript(name=name, script=script))

    def with_service(self, name: str, run: str, finish: str | None = None) -> "Image":
        return self.with_step(s.Service(name=name, run=run, finish=finish))

    def with_probes(
        self,
        *,
        imports: tuple[str, ...] = (),
        r_libraries: tuple[str, ...] = (),
        commands: tuple[str, ...] = (),
        distributions: tuple[str, ...] = (),
        notebooks: tuple[str, ...] = (),
        notebook_timeout: int | None = None,
    ) -> "Image":
        """Declare extra probe checks as labels; they add to (never replace) the parent's,
        so a child image is always held to its ancestors' checks too.

        ``distributions``: pip distributions whose top-level modules must import (mapped
        to modules inside the image); ``notebooks``: .ipynb paths (relative to $HOME, or
        absolute) executed top to bottom, each within ``notebook_timeout`` seconds."""
        check_probes(
            imports=imports,
            r_libraries=r_libraries,
            commands=commands,
            distributions=distributions,
            notebooks=notebooks,
            notebook_timeout=notebook_timeout,
        )
        labels = self.config().label_dict() if self.platforms else {}
        img = self
        for key, new in (
            (contract.LABEL_IMPORTS, imports),
            (contract.LABEL_R_LIBRARIES, r_libraries),
            (contract.LABEL_DISTRIBUTIONS, distributions),
        ):
            if new:
                old = contract.listed(labels, key)
                had = set(old)  # a set: a list test made 100,000 names quadratic
                img = img.with_label(
                    key, ",".join(old + [x for x in dict.fromkeys(new) if x not in had])
                )
        for key, items in (
            (contract.LABEL_COMMANDS, commands),
            (contract.LABEL_NOTEBOOKS, notebooks),
        ):
            if items:
                old_items = json.loads(labels.get(key, "[]"))
                seen = set(old_items)
                img = img.with_label(
                    key, json.dumps(old_items + [x for x in dict.fromkeys(items) if x not in seen])
                )
        if notebook_timeout is not None:
            img = img.with_label(contract.LABEL_NOTEBOOK_TIMEOUT, str(notebook_timeout))
        return img

    def with_runner_tags(self, *tags: str) -> "Image":
        """The runner tags (cuda, gaudi) whose smoke tests this image needs."""
        return self.with_label(contract.LABEL_RUNNER_TAGS, ",".join(tags))

    # -- identity ---------------------------------------------------------------------
    def steps_for(self, platform: str) -> tuple[s.Step, ...]:
        return tuple(st for st in self.steps if st.applies_to(platform))

    def digest(self, platform: str | None = None) -> str:
        """Per-platform content digest; without a platform, one digest over all of them."""
        if platform is None:
            return sha256_json({p: self.digest(p) for p in self.platforms})
        if platform not in self.platforms:
            raise NbpipeError(f"image {self.name or '(unnamed)'} is not built for {platform}")
        chain: list[Image] = []  # this image and its ancestors whose digest is not known yet
        node: Image | BaseRef = self
        while isinstance(node, Image) and platform not in node._memo("digest"):
            chain.append(node)
            node = node.parent
        for img in reversed(chain):  # root-most first: no recursion, each digest made once
            img._memo("digest")[platform] = _digest(img, platform)
        return self._memo("digest")[platform]

    def _memo(self, kind: str) -> dict[str, Any]:
        """Per-platform values computed once (an Image never changes): digests and configs
        of a long chain cost one pass, not one pass per descendant."""
        memo = self.__dict__.get("_memo_")
        if memo is None:
            memo = {}
            object.__setattr__(self, "_memo_", memo)
        return memo.setdefault(kind, {})

    def lineage(self) -> Iterator["Image"]:
        """This image and its ancestors, root-most last."""
        node: Image | BaseRef = self
        while isinstance(node, Image):
            yield node
            node = node.parent

    @property
    def root(self) -> BaseRef:
        node: Image | BaseRef = self
        while isinstance(node, Image):
            node = node.parent
        return node

    def rebased(self, root: BaseRef) -> "Image":
        """The same recipe on another root (e.g. a local debootstrap'd Debian)."""
        parent = root if isinstance(self.parent, BaseRef) else self.parent.rebased(root)
        platforms = tuple(p for p in self.platforms if p in parent.platforms)
        return replace(self, parent=parent, platforms=platforms)

    def ops(self, platform: str) -> tuple[Op, ...]:
        return tuple(op for _, op in lowered(self.steps_for(platform)))

    def sources(self, platform: str | None = None) -> tuple[str, ...]:
        """Every outside host this image and its ancestors download from."""
        hosts: list[str] = []
        for img in reversed(list(self.lineage())):
            for st in img.steps:
                if platform is None or st.applies_to(platform):
                    hosts += [h for h in st.sources() if h not in hosts]
        return tuple(hosts)

    def config(self, platform: str | None = None) -> ImageConfig:
        """Final user/env/labels/... after all ancestors' steps (the root's own left out)."""
        platform = platform or self.platforms[0]
        chain: list[Image] = []
        node: Image | BaseRef = self
        while isinstance(node, Image) and platform not in node._memo("config"):
            chain.append(node)
            node = node.parent
        cfg = node._memo("config")[platform] if isinstance(node, Image) else ImageConfig()
        for img in reversed(chain):  # the parent's config, then this image's own ops
            cfg = img._memo("config")[platform] = _apply(cfg, img.ops(platform))
        return cfg


def _apply(start: ImageConfig, ops: tuple[Op, ...]) -> ImageConfig:
    cfg: dict[str, Any] = {
        "user": start.user,
        "workdir": start.workdir,
        "env": dict(start.env),
        "labels": dict(start.labels),
        "ports": list(start.ports),
        "entrypoint": start.entrypoint,
        "cmd": start.cmd,
    }
    for op in ops:
        match op:
            case SetUser(user=u):
                cfg["user"] = u
            case SetWorkdir(path=p):
                cfg["workdir"] = p
            case SetEnv(name=n, value=v):
                cfg["env"][n] = v
            case SetLabel(key=k, value=v):
                cfg["labels"][k] = v
            case Expose(port=p) if p not in cfg["ports"]:
                cfg["ports"].append(p)
            case SetEntrypoint(argv=a):
                cfg["entrypoint"] = a
            case SetCmd(argv=a):
                cfg["cmd"] = a
    return ImageConfig(
        user=cfg["user"],
        workdir=cfg["workdir"],
        env=tuple(cfg["env"].items()),
        labels=tuple(cfg["labels"].items()),
        ports=tuple(cfg["ports"]),
        entrypoint=cfg["entrypoint"],
        cmd=cfg["cmd"],
    )


_IMPORT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*")
_R_LIBRARY = re.compile(r"[A-Za-z][A-Za-z0-9.]*")
_DISTRIBUTION = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")


def _bytes(content: bytes | str | Path) -> bytes:
    """A file's content: a path is read, text is UTF-8 encoded."""
    if isinstance(content, Path):
        return content.read_bytes()
    return content.encode() if isinstance(content, str) else content


def check_probes(
    *,
    imports: tuple[str, ...] = (),
    r_libraries: tuple[str, ...] = (),
    commands: tuple[str, ...] = (),
    distributions: tuple[str, ...] = (),
    notebooks: tuple[str, ...] = (),
    notebook_timeout: int | None = None,
) -> None:
    """Probe lists become labels (names joined with ','): plain names only, and commands
    and notebook paths printable on one line."""
    _probe_names(imports, _IMPORT, "imports", "a Python module like 'numpy.linalg'")
    _probe_names(r_libraries, _R_LIBRARY, "r_libraries", "an R package like 'dplyr'")
    _probe_names(
        distributions, _DISTRIBUTION, "distributions", "a pip distribution name like 'scikit-learn'"
    )
    if isinstance(notebooks, str):
        raise NbpipeError("notebooks: give a list of .ipynb paths, not one string")
    for nb in notebooks:
        if not isinstance(nb, str) or not nb.endswith(".ipynb"):
            raise NbpipeError(f"notebooks: {nb!r} is not a path to a .ipynb file")
        s.printable(nb, "notebooks")
    if notebook_timeout is not None and (
        type(notebook_timeout) is not int or not 0 < notebook_timeout <= 86400
    ):
        raise NbpipeError(
            f"notebook_timeout: {notebook_timeout!r} is not a number of seconds (1 to 86400)"
        )
    if isinstance(commands, str):
        raise NbpipeError("commands: give a list of commands, not one string")
    for c in commands:
        if not isinstance(c, str) or not c.strip():
            raise NbpipeError(f"commands: {c!r} is not a command (a non-empty string)")
        s.printable(c, "commands")


def _probe_names(names: tuple[str, ...], pattern: re.Pattern[str], what: str, like: str) -> None:
    """Probe lists are joined with ',' into one label: each name must be a plain name."""
    if isinstance(names, str):
        raise NbpipeError(f"{what}: give a list of names, not one string")
    for n in names:
        if not isinstance(n, str) or not pattern.fullmatch(n):
            raise NbpipeError(f"{what}: {n!r} is not {like}")


def _digest(image: Image, platform: str) -> str:
    parent = image.parent.digest(platform)  # known already: Image.digest goes root-most first
    return sha256_json(
        {
            "v": DIGEST_VERSION,
            "platform": platform,
            "parent": parent,
            "steps": [st.canonical() for st in image.steps_for(platform)],
        }
    )


def short(digest: str, n: int = 12) -> str:
    return digest.split(":", 1)[-1][:n]
