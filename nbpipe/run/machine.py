"""Which images this machine builds: the one place that picks the engine, the platform
and the root, so `images`, `plan`, `build`, `test` and `publish` name the same digests.

The recipe is written on a registry root; with a local debootstrap root (``--root auto``
when one is there, or ``--root local``) every image is rebased onto it, which gives
other digests: the content really differs. The engine's store is read once, here.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Mapping

from nbpipe.errors import NbpipeError
from nbpipe.recipe import platforms as plat
from nbpipe.recipe.catalog import Catalog
from nbpipe.recipe.image import BaseRef, short
from nbpipe.run.backends import dagger_reason
from nbpipe.run.settings import Settings

if TYPE_CHECKING:
    from nbpipe.engines.oci import ImageInfo, OciEngine

ROOTS = ("auto", "local", "registry")
NO_DAGGER = "not available here"  # --engine dagger where no Dagger engine is
ENGINES = ("auto", "dagger", "podman", "docker")


@dataclass(frozen=True)
class Machine:
    catalog: Catalog  # the family as built here (rebased onto the chosen root)
    platform: str
    local_root: BaseRef | None  # the debootstrap root in use; None: the registry pins
    engine: "OciEngine | None" = None  # None: no usable engine (plan and images still work)
    store: "Mapping[str, ImageInfo]" = field(default_factory=dict)  # ref -> image, one query
    dagger: str | None = None  # builds go through Dagger: why it is usable here
    settings: Settings = field(default_factory=Settings)

    @property
    def root_name(self) -> str:
        return "local" if self.local_root is not None else "registry"

    def describe(self) -> str:
        if self.dagger:
            eng = f"dagger ({self.dagger})"
        else:
            eng = f"{self.engine.kind} ({self.engine.binary})" if self.engine else "none found"
        if self.local_root is not None:
            root = (
                f"{self.local_root.pinned(self.platform)} "
                f"(debootstrap, {short(self.local_root.digest(self.platform))})"
            )
        else:
            root = "registry pin"
        return f"engine: {eng}; platform: {self.platform}; root: {root}"

    def check_platforms(self, platforms: tuple[str, ...]) -> None:
        """With a local root, every platform asked for needs one (none may be mixed in)."""
        for p in platforms:
            plat.check(p)
            if self.local_root is not None and p not in self.local_root.platforms:
                raise NbpipeError(
                    f"no local root for {p}: run `nbpipe base bootstrap "
                    f"--platform {p}` (needs qemu for a foreign platform)"
                )

    def need_engine(self) -> "OciEngine":
        if self.engine is None:
            raise NbpipeError(
                "no usable container engine: run `bash .ci/setup-engine.sh` "
                "or install podman and buildah"
            )
        return self.engine


def detect(
    catalog: Catalog,
    settings: Settings | None = None,
    *,
    engine: str = "auto",
    root: str = "auto",
    platform: str | None = None,
    need_engine: bool = True,
) -> Machine:
    """This machine's view of ``catalog``. ``need_engine=False`` (plan, images): without
    an engine, ``--root auto`` means the registry pins instead of an error."""
    from nbpipe.engines.oci import OciEngine

    settings = settings or Settings()
    if root not in ROOTS:
        raise NbpipeError(f"--root {root!r}: use {', '.join(ROOTS)}")
    if engine not in ENGINES:
        raise NbpipeError(f"--engine {engine!r}: use {' | '.join(ENGINES)}")
    platform = plat.check(platform or plat.host())
    dagger = dagger_reason(settings) if engine in ("auto", "dagger") else None
    if engine == "dagger" or dagger:  # Dagger pulls the registry root, never a local one
        if root == "local":
            raise NbpipeError(
                "--engine dagger builds on the registry root: use --root auto or registry"
            )
        return Machine(catalog, platform, None, dagger=dagger or NO_DAGGER, settings=settings)
    try:
        eng, store = OciEngine.connect(engine, runtime=settings.runtime)
    except NbpipeError:
        if need_engine or root == "local":
            raise
        return Machine(catalog, platform, None, settings=settings)
    return choose(catalog, platform, root, eng, store, settings)


def choose(
    catalog: Catalog,
    platform: str,
    root: str,
    engine: "OciEngine | None",
    store: "Mapping[str, ImageInfo]",
    settings: Settings | None = None,
) -> Machine:
    """The root choice itself, from the store as read: the local root when asked for or
    (auto) when it is there for ``platform``, else the recipe's registry pins."""
    from nbpipe.engines import rootfs

    local = rootfs.local_root(engine, store=store) if root != "registry" else None
    if root == "local" and (local is None or platform not in local.platforms):
        raise NbpipeError(
            f"no local root for {platform}: run `nbpipe base bootstrap --platform {platform}` first"
        )
    if local is None or platform not in local.platforms:
        return Machine(catalog, platform, None, engine, store, settings=settings or Settings())
    return Machine(
        catalog.rebased(local), platform, local, engine, store, settings=settings or Settings()
    )
