"""The engine interface the one pipeline runs on, and its implementations.

A backend builds an image value under a ref and probes what it built; the pipeline
decides everything else (what to build, in which order, what is cached, what a failure
blocks, the report). Two kinds: `Local` (podman/buildah or docker, through the Dockerfile
lowering; it keeps a store of built images and its build logs) and `DaggerBackend` (the
Dagger lowering, in a `dagger run` session or inside the Dagger module; the engine keeps
its own cache). What a backend cannot do it says in one line (`cannot`)."""

from __future__ import annotations

import contextlib
import os
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, AsyncIterator, Callable, Iterator, Mapping, Protocol

import anyio
import anyio.abc

from nbpipe.errors import NbpipeError
from nbpipe.probes.result import ProbeResult
from nbpipe.recipe.catalog import Catalog
from nbpipe.recipe.image import Image
from nbpipe.recipe.options import BuildOptions
from nbpipe.run.settings import Settings

if TYPE_CHECKING:
    import dagger

    from nbpipe.engines.dockerfile import Rendered
    from nbpipe.engines.oci import ImageInfo, LayerCache, OciEngine


class BuildFailed(NbpipeError):
    """A step failed; ``log`` is where its whole output is (None: in the message)."""

    def __init__(self, message: str, log: Path | None = None):
        super().__init__(message)
        self.log = log


@dataclass(frozen=True)
class Built:
    id: str  # the engine's image id ("" where the engine has none to give)
    size: int | None = None
    pulled: bool = False  # the finished image came whole from the cache registry


class Backend(Protocol):
    @property
    def kind(self) -> str:
        """podman | docker | dagger"""
        ...

    def store(self) -> Mapping[str, "ImageInfo"]:
        """Images already built, by ref (an engine with its own cache: none)."""
        ...

    def session(self) -> contextlib.AbstractAsyncContextManager[None]:
        """Held for the whole run (Dagger: the connection)."""
        ...

    async def build(self, image: Image, platform: str, ref: str, *, no_cache: bool) -> Built:
        """Build ``image`` as ``ref``; raises BuildFailed naming the step that failed."""
        ...

    async def probe(self, name: str, platform: str, ref: str) -> tuple[list[ProbeResult], str]:
        """The contract probes against the image ``name`` built as ``ref``: results and a
        log tail."""
        ...

    def cannot(self, what: str) -> str:
        """Why this backend cannot do ``what`` (verify, pod, refresh, sign, cache), "" if it
        can."""
        ...


@dataclass
class Local:
    """podman/buildah or docker, through the Dockerfile lowering."""

    engine: "OciEngine"
    options: BuildOptions
    settings: Settings
    known: Mapping[str, "ImageInfo"] | None = None  # the store as just read, if it was
    tags: set[str] | None = None  # runner tags; None: detect
    pod: str | None = None  # probe as Kubeflow's pod: kubeflow | openshift
    ready_timeout: float = 90.0
    _keys: dict[tuple[str, str], str] = field(default_factory=dict, init=False, repr=False)
    _shares: anyio.abc.TaskGroup | None = field(default=None, init=False, repr=False)

    @property
    def kind(self) -> str:
        return self.engine.kind

    def store(self) -> Mapping[str, "ImageInfo"]:
        known, self.known = self.known, None  # read once; a later round reads it again
        return self.engine.images() if known is None else known

    @contextlib.asynccontextmanager
    async def session(self) -> AsyncIterator[None]:
        """The run's pushes to the cache registry go on beside it (a child builds while its
        parent is pushed); the session ends when the last of them has."""
        async with anyio.create_task_group() as shares:
            self._shares = shares
            try:
                yield
            finally:
                self._shares = None

    def log(self, name: str, platform: str) -> Path:
        return self.settings.logs() / f"{name}-{platform.split('/')[1]}.log"

    async def build(self, image: Image, platform: str, ref: str, *, no_cache: bool) -> Built:
        from nbpipe.engines import dockerfile

        rendered = dockerfile.render(image, platform, self.options)
        log = self.log(image.name, platform)
        try:
            with self.layer_cache(image.name or "custom") as cache:
                info, pulled = await anyio.to_thread.run_sync(
                    lambda: self._build_or_pull(
                        rendered, image, platform, ref, log, no_cache, cache
                    )
                )
        except NbpipeError as exc:
            raise BuildFailed(str(exc), log) from None
        if cache is not None and not pulled:  # built here: shared for the next runner
            key = self.cache_key(image, platform)
            if self._shares is None:  # no session (a build called on its own)
                await self._share(image.name or "custom", key, ref, log)
            else:
                self._shares.start_soon(self._share, image.name or "custom", key, ref, log)
        return Built(info.id, info.size, pulled=pulled)

    async def _share(self, name: str, key: str, ref: str, log: Path) -> None:
        """Push ``ref`` under its cache key (engines/image_cache.share): a line in its build
        log, never a failed build."""
        from nbpipe.engines import image_cache

        def push() -> None:
            try:
                with self.layer_cache(name) as cache:
                    assert cache is not None
                    line = image_cache.share(self.engine, cache, key, ref)
            except (NbpipeError, OSError) as exc:  # the image here is good all the same
                line = f"image cache: not shared ({exc})"
            with contextlib.suppress(OSError), log.open("a") as out:
                out.write(f"\n{line}\n")

        await anyio.to_thread.run_sync(push)

    def _build_or_pull(
        self,
        rendered: "Rendered",
        image: Image,
        platform: str,
        ref: str,
        log: Path,
        no_cache: bool,
        cache: "LayerCache | None",
    ) -> "tuple[ImageInfo, bool]":
        """With a cache registry: the finished image pulled when it holds it (True), else
        built (layers from and to the cache; ``build`` then shares it) (False)."""
        if cache is None:
            info = self.engine.build(rendered, ref, platform, self.options, log, no_cache=no_cache)
            return info, False
        from nbpipe.engines import image_cache
        from nbpipe.engines.oci import DOCKER_NO_CACHE
        from nbpipe.inputs import safe_io

        if self.engine.kind != "podman":
            raise NbpipeError(DOCKER_NO_CACHE)

        key = self.cache_key(image, platform)
        missed = ""
        if not no_cache:
            got, line = image_cache.fetch(
                self.engine, cache, key, ref, image.digest(platform), platform
            )
            if got is not None:
                with safe_io.new_file(log) as out:
                    out.write(f"{line}\n\n{rendered.text}\n")
                return got, True
            missed = line
        info = self.engine.build(
            rendered, ref, platform, self.options, log, no_cache=no_cache, cache=cache
        )
        if missed:
            with log.open("a") as out:
                out.write(f"\n{missed}\n")
        return info, False  # shared by ``build``, beside what the run does next

    def cache_key(self, image: Image, platform: str) -> str:
        """The image cache's key for ``image`` (engines/image_cache.py): over its chain's
        Dockerfiles as this backend renders them, no engine asked."""
        from nbpipe.engines import dockerfile, image_cache
        from nbpipe.recipe.image import BaseRef

        memo = (image.digest(platform), platform)
        if memo not in self._keys:
            rendered = dockerfile.render(image, platform, self.options)
            parent = image.parent
            up = (
                rendered.from_ref
                if isinstance(parent, BaseRef)
                else self.cache_key(parent, platform)
            )
            self._keys[memo] = image_cache.key(rendered, platform, up)
        return self._keys[memo]

    def in_cache(self, image: Image, platform: str) -> bool:
        """Whether the cache registry holds ``image`` finished (one registry look-up); a
        registry that does not answer holds nothing."""
        if not self.settings.cache_registry or self.engine.kind != "podman":
            return False
        from nbpipe.engines import image_cache
        from nbpipe.engines.registry import Registry

        reg = Registry.parse(self.settings.cache_registry, "--cache-registry")
        ref = image_cache.remote(
            reg.repo(f"{image.name or 'custom'}-cache"), self.cache_key(image, platform)
        )
        with reg.authfile() as auth:
            try:
                return reg.manifest(ref, auth) is not None
            except NbpipeError:
                return False

    def pull_ahead(self, image: Image, platform: str) -> str:
        """Pull ``image`` finished from the cache registry before its parents' turn: one pull
        brings the layers of the whole chain at once (in parallel), so each parent's own
        fetch then finds its layers here and only reads its manifest. The image is left
        untagged: its own fetch checks it and names it. Returns a line for the events; a
        failed pull is only that line (each image's fetch decides for itself)."""
        from nbpipe.engines import image_cache

        start = time.monotonic()
        with self.layer_cache(image.name or "custom") as cache:
            assert cache is not None  # asked only for what the cache registry holds
            src = image_cache.remote(cache.repo, self.cache_key(image, platform))
            try:
                self.engine.pull(src, cache.flags)
            except NbpipeError as exc:
                return f"not pulled ahead ({exc})"
            self.engine.untag(src)
        seconds = time.monotonic() - start
        return f"pulled ahead from the cache registry in {seconds:.0f}s, with its parents' layers"

    @contextlib.contextmanager
    def layer_cache(self, name: str) -> "Iterator[LayerCache | None]":
        """The shared layer cache for image ``name`` (settings.cache_registry): its
        repository ``<registry>/<name>-cache``, with the Registry's --tls-verify rule
        (plain HTTP on loopback only) and credentials (a private auth file while the
        build runs). None without a cache registry."""
        if not self.settings.cache_registry:
            yield None
            return
        from nbpipe.engines.oci import LayerCache
        from nbpipe.engines.registry import Registry

        reg = Registry.parse(self.settings.cache_registry, "--cache-registry")
        with reg.authfile() as auth:
            yield LayerCache(reg.repo(f"{name}-cache"), tuple(reg.flags(auth)))

    async def probe(self, name: str, platform: str, ref: str) -> tuple[list[ProbeResult], str]:
        if self.pod:
            from nbpipe.probing.podprober import probe_pod

            return await anyio.to_thread.run_sync(
                lambda: probe_pod(
                    self.engine,
                    ref,
                    flavor=self.pod or "kubeflow",
                    ready_timeout=self.ready_timeout,
                    workdir=self.settings.workdir,
                )
            )
        from nbpipe.probing.prober import probe

        return await anyio.to_thread.run_sync(
            lambda: probe(
                self.engine,
                ref,
                tags=self.tags,
                ready_timeout=self.ready_timeout,
                workdir=self.settings.workdir,
            )
        )

    def cannot(self, what: str) -> str:
        if what == "pod" and self.engine.kind != "podman":
            return "--as kubeflow|openshift plays the pod with `podman kube play`: use podman"
        if what == "cache" and self.engine.kind != "podman":
            from nbpipe.engines.oci import DOCKER_NO_CACHE

            return DOCKER_NO_CACHE
        return ""


def dagger_reason(settings: Settings) -> str | None:
    """Why Dagger can be used here (or None): a session, or a CLI on PATH."""
    if settings.dagger_session:
        return "the Dagger session of `dagger run`"
    cli = shutil.which("dagger")
    return f"the dagger CLI at {cli}" if cli else None


@dataclass
class DaggerBackend:
    """The Dagger lowering: in a `dagger run` session (``connect``: this process opens the
    connection) or inside the Dagger module (the runtime's connection is there already)."""

    catalog: Catalog
    options: BuildOptions
    source: Callable[[], "dagger.Directory"]  # nbpipe's package folder, for the probes
    runner_tags: str = ""
    connect: bool = True
    reproducible: bool = False
    registry: str = ""  # ci: unchanged ancestors come from there by content tag
    published: frozenset[str] = frozenset()
    present: frozenset[str] = frozenset()  # refs that count as there (ci: the unchanged)
    kind: str = "dagger"
    _built: dict[str, "dagger.Container"] = field(default_factory=dict, init=False)

    def store(self) -> Mapping[str, "ImageInfo"]:
        """Dagger keeps its own cache (a build of what is built is a cache hit): only what
        the caller says is there counts as built."""
        from nbpipe.engines.oci import ImageInfo

        return {ref: ImageInfo(ref, "", 0, {}, "") for ref in self.present}

    @contextlib.asynccontextmanager
    async def session(self) -> AsyncIterator[None]:
        if not self.connect:
            yield
            return
        import dagger

        if shutil.which("dagger") and not os.environ.get("_EXPERIMENTAL_DAGGER_CLI_BIN"):
            os.environ["_EXPERIMENTAL_DAGGER_CLI_BIN"] = shutil.which("dagger") or ""
        async with dagger.connection(dagger.Config(log_output=None)):
            yield

    def container(self, image: Image, platform: str) -> "dagger.Container":
        from nbpipe.engines import dagger as lowering

        return lowering.lower(
            image,
            platform,
            self.options,
            reproducible=self.reproducible,
            registry=self.registry,
            published=self.published,
        )

    async def build(self, image: Image, platform: str, ref: str, *, no_cache: bool) -> Built:
        """settings.cache_registry is not used: the Dagger engine keeps its own cache."""
        import dagger

        ctr = self.container(image, platform)
        try:
            await ctr.sync()
        except dagger.ExecError as exc:
            raise BuildFailed(failed_step(image.name, exc)) from None
        except dagger.QueryError as exc:
            raise BuildFailed(f"{image.name}: {exc}") from None
        self._built[ref] = ctr
        return Built("")

    async def probe(self, name: str, platform: str, ref: str) -> tuple[list[ProbeResult], str]:
        from nbpipe.probing import dagger as probing
        from nbpipe.recipe.naming import stamp

        image = self.catalog.resolve(name)
        ctr = self._built.get(ref) or self.container(image, platform)
        labels = image.config(platform).label_dict() | {
            op.key: op.value for op in stamp(image, platform)
        }
        results, text = await probing.probe(
            ctr, platform, labels, self.runner_tags, self.source(), self.catalog.resolve("base")
        )
        return results, text

    def cannot(self, what: str) -> str:
        return {
            "verify": "verify-reproducible builds twice from scratch, and Dagger answers the "
            "second build from its cache (its API has no --no-cache): use --engine podman",
            "pod": "--as kubeflow|openshift plays the pod with `podman kube play`: "
            "use --engine podman",
            "sign": "signing and SBOMs read the built image with podman: use --engine podman, "
            "or publish unsigned through Dagger",
        }.get(what, "")


def failed_step(name: str, exc) -> str:
    """One line naming the image, the command and its exit code, then stderr's tail."""
    cmd = " ".join(exc.command)
    if len(cmd) > 300:
        cmd = cmd[:300] + "..."
    tail = "\n".join(exc.stderr.rstrip().splitlines()[-20:])[-2000:]
    return f"{name}: step failed (exit {exc.exit_code}): {cmd}\n{tail}"


def host_source() -> "dagger.Directory":
    """nbpipe's own package folder, uploaded from this machine (client mode)."""
    from dagger import dag

    import nbpipe

    return dag.host().directory(
        str(Path(nbpipe.__file__).parent), exclude=["**/__pycache__", "family", "pipelines"]
    )
