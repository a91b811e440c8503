"""What each image is on this machine, before anything runs: built, to build,
unbuildable (and why), blocked (by which ancestor), or published (under which tag).

`plan`, `images`, `build`, `test` and `publish` all read their states from here, so what
plan promises is what build does. The engine's store comes from one query; the hosts an
unbuilt image downloads from are checked once each, at the same time.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Mapping

from nbpipe.engines import sources
from nbpipe.errors import NbpipeError
from nbpipe.recipe import naming
from nbpipe.recipe.catalog import Catalog
from nbpipe.recipe.image import Image, short
from nbpipe.recipe.steps import Pip

if TYPE_CHECKING:
    from nbpipe.engines.oci import ImageInfo
    from nbpipe.engines.registry import Registry
    from nbpipe.run.machine import Machine


class State(StrEnum):
    BUILT = "built"  # its content tag is in the engine's store: nothing to do
    TO_BUILD = "to build"
    UNBUILDABLE = "unbuildable"  # a source it needs is out of reach here, or unpinned
    BLOCKED = "blocked"  # an ancestor is unbuildable (and not built)
    PUBLISHED = "published"  # its content tag is already in the registry


@dataclass(frozen=True)
class ImageState:
    name: str
    platform: str
    digest: str  # per-platform content digest: what the local tag is made of
    ref: str  # the local tag a build gives it
    state: State
    reason: str = ""  # unbuildable: why; blocked: which ancestor
    blocked_by: str | None = None
    tag: str | None = None  # published: the registry reference of its content tag
    image_id: str | None = None  # built: the engine's image id
    size: int | None = None  # built: bytes, uncompressed

    def to_dict(self) -> dict:
        return {
            k: v
            for k, v in {
                "state": self.state.value,
                "digest": self.digest,
                "ref": self.ref,
                "reason": self.reason or None,
                "blocked_by": self.blocked_by,
                "published": self.tag,
            }.items()
            if v is not None
        }


def unreachable(
    image: Image, platform: str, wheelhouse: bool = False, assume: frozenset[str] = frozenset()
) -> str:
    """Why ``image``'s own steps cannot run here ("" when they can): hosts out of reach
    (an index pip may skip for a wheelhouse does not count) and unpinned downloads."""
    hosts: list[str] = []
    unpinned: list[str] = []
    for st in image.steps_for(platform):
        soft = isinstance(st, Pip) and wheelhouse and st.index_url
        hosts += [
            h
            for h in st.sources()
            if not soft and h not in hosts and not sources.reachable(h, assume)
        ]
        unpinned += st.unpinned()
    why = []
    if hosts:
        why.append(f"needs {', '.join(hosts)}, not reachable from here")
    if unpinned:
        why.append(f"no sha256 pinned yet for {', '.join(unpinned)}")
    return "; ".join(why)


def assess(
    catalog: Catalog,
    platform: str,
    store: "Mapping[str, ImageInfo]",
    names: list[str] | None = None,
    *,
    wheelhouse: bool = False,
    rebuild: bool = False,
    assume: frozenset[str] = frozenset(),
) -> list[ImageState]:
    """The state of ``names`` and their ancestors (default: all) on ``platform``, parents
    first; images not made for ``platform`` are left out. ``rebuild``: built ones too."""
    order = catalog.order(names)
    images = {n: catalog.resolve(n) for n in order}
    order = [n for n in order if platform in images[n].platforms]
    refs = {n: naming.local_ref(images[n], platform) for n in order}
    unbuilt = [n for n in order if rebuild or refs[n] not in store]
    # below an unbuilt image with an unpinned download everything is blocked: no need to ask
    doomed = {n for n in unbuilt if any(st.unpinned() for st in images[n].steps_for(platform))}
    asked = [n for n in unbuilt if not doomed & set(catalog.ancestors(n))]
    hosts = {h for n in asked for st in images[n].steps_for(platform) for h in st.sources()}
    with ThreadPoolExecutor(max_workers=max(1, min(16, len(hosts)))) as pool:
        list(
            pool.map(lambda h: sources.reachable(h, assume), hosts)
        )  # all at once; the answers are cached
    out: dict[str, ImageState] = {}
    for n in order:
        img, ref = images[n], refs[n]
        digest = img.digest(platform)
        if n not in unbuilt:
            info = store[ref]
            out[n] = ImageState(
                n, platform, digest, ref, State.BUILT, image_id=info.id, size=info.size
            )
            continue
        parent = catalog.parent_name(n)
        up = out.get(parent) if parent else None
        if up is not None and up.state in (State.UNBUILDABLE, State.BLOCKED):
            by = up.blocked_by or parent
            out[n] = ImageState(
                n,
                platform,
                digest,
                ref,
                State.BLOCKED,
                f"its ancestor {by} is unbuildable here",
                blocked_by=by,
            )
            continue
        why = unreachable(img, platform, wheelhouse, assume)
        out[n] = ImageState(
            n, platform, digest, ref, State.UNBUILDABLE if why else State.TO_BUILD, why
        )
    return [out[n] for n in order]


@dataclass(frozen=True)
class Plan:
    """What a build would do on this machine, parents first."""

    platform: str
    root: str  # "local" or "registry"
    images: tuple[ImageState, ...]
    registry: str | None = None

    def count(self, state: State) -> list[ImageState]:
        return [s for s in self.images if s.state is state]

    def summary(self) -> str:
        """One line: "linux/amd64 on the local root: 3 to build; 10 built; 1 unbuildable
        here: rstudio" (each image's line says why)."""
        parts = []
        for state, label in (
            (State.TO_BUILD, "to build"),
            (State.BUILT, "built"),
            (State.PUBLISHED, f"published in {self.registry}"),
        ):
            if n := len(self.count(state)):
                parts.append(f"{n} {label}")
        if bad := self.count(State.UNBUILDABLE):
            parts.append(f"{len(bad)} unbuildable here: " + ", ".join(s.name for s in bad))
        if blocked := self.count(State.BLOCKED):
            parts.append(f"{len(blocked)} blocked by those")
        where = f"{self.platform} on the {self.root} root"
        return f"{where}: {'; '.join(parts) if parts else 'nothing to build'}"

    def to_json(self) -> dict:
        return {
            "platform": self.platform,
            "root": self.root,
            "order": [s.name for s in self.images],
            "digests": {s.name: s.digest for s in self.images},
            "states": {s.name: s.to_dict() for s in self.images},
            "published": [s.name for s in self.count(State.PUBLISHED)],
        }

    def lines(self) -> list[str]:
        """The human plan: number, name, the digest build tags it with, its state."""
        out = []
        for i, s in enumerate(self.images, 1):
            note = s.reason or (s.tag or "")
            out.append(
                f"{i:2}. {s.name:32} {short(s.digest, 16)}  {s.state.value:11} {note}".rstrip()
            )
        return out


def previous_digests(
    path: Path, platform: str | None = None, root: str | None = None
) -> dict[str, str]:
    """The digests of a plan file (`nbpipe plan --json`), read bounded, its shape checked.
    Given the ``platform`` and ``root`` of this plan, a file made for others is refused:
    every digest would differ, and "everything changed" would be a wrong answer."""
    from nbpipe.inputs import safe_io

    what = f"--since {path}"
    data = safe_io.load_json(path, what)
    digests = data.get("digests") if isinstance(data, dict) else None
    if not isinstance(digests, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in digests.items()
    ):
        raise NbpipeError(
            f"{what}: not a plan file written by `nbpipe plan --json` "
            '(it needs "digests": {name: digest})'
        )
    was = {k: data.get(k) for k in ("platform", "root")}
    now = {"platform": platform, "root": root}
    differ = [k for k in was if isinstance(was[k], str) and now[k] and was[k] != now[k]]
    if differ:
        raise NbpipeError(
            f"{what} was made for {was['platform']} on the {was['root']} root, this plan is "
            f"for {platform} on the {root} root: every digest differs, so nothing can be "
            f"compared; run again with --platform {was['platform']} --root {was['root']}, "
            "or compare with a plan made here"
        )
    return digests


def plan(
    machine: "Machine",
    names: list[str] | None = None,
    *,
    since: Path | None = None,
    registry: "Registry | None" = None,
    wheelhouse: bool = False,
) -> Plan:
    """Every image ``names`` need, with its state on ``machine``. ``since``: only those
    whose digest changed from that plan file. ``registry``: those whose content tag is
    there are published, not to build."""
    cat, platform = machine.catalog, machine.platform
    states = assess(
        cat,
        platform,
        machine.store,
        names,
        wheelhouse=wheelhouse,
        assume=machine.settings.assume_reachable,
    )
    if since is not None:
        previous = previous_digests(since, platform, machine.root_name)
        changed = set(cat.affected(previous, platform))
        states = [s for s in states if s.name in changed]
    if registry is not None:
        with registry.authfile() as auth:
            out = []
            for s in states:
                ref = f"{registry.repo(s.name)}:{naming.content_tag(cat.resolve(s.name))}"
                if registry.digest(ref, auth) is not None:
                    s = ImageState(s.name, platform, s.digest, s.ref, State.PUBLISHED, tag=ref)
                out.append(s)
            states = out
    return Plan(
        platform,
        machine.root_name,
        tuple(states),
        registry.address if registry is not None else None,
    )
