"""The Dagger module's main object. Each function does one thing; the recipes, the
lowering and the probes all live in the nbpipe SDK."""

from __future__ import annotations

import json
import tempfile
from pathlib import Path
from typing import Annotated

import dagger
from dagger import Doc, dag, function, object_type

from nbpipe.engines import dagger as lowering
from nbpipe.family import family
from nbpipe.inputs import safe_io
from nbpipe.inputs import spec as specs
from nbpipe.probes.result import Status
from nbpipe.probing import dagger as probing
from nbpipe.recipe import contract, naming
from nbpipe.recipe import graph as graphs
from nbpipe.recipe.catalog import Catalog
from nbpipe.recipe.image import Image
from nbpipe.recipe.naming import content_tag, stamp
from nbpipe.recipe.options import BuildOptions
from nbpipe.run import report
from nbpipe.run.backends import DaggerBackend
from nbpipe.run.pipeline import Pipeline
from nbpipe.run.report import ImageResult, Outcome
from nbpipe.run.settings import Settings

ImageName = Annotated[str, Doc("an image of the family, e.g. jupyter-scipy (see `images`)")]
PlatformArg = Annotated[
    dagger.Platform | None, Doc("linux/amd64 or linux/arm64 (default: the engine's)")
]
CaArg = Annotated[
    dagger.Secret | None,
    Doc("PEM bundle trusted during the build only (TLS-intercepting proxies); never in the image"),
]
WheelsArg = Annotated[dagger.Directory | None, Doc("folder of wheels pip may use (find-links)")]
TagsArg = Annotated[str, Doc("runner tags this runner carries, comma-separated: cuda, gaudi")]
ReproArg = Annotated[
    bool,
    Doc(
        "flatten to one layer with file times clamped to the epoch "
        "(Dagger has no layer-timestamp option)"
    ),
]
RegistryArg = Annotated[
    str,
    Doc(
        "registry prefix the family is published under, e.g. "
        "ghcr.io/acme: ancestors the change leaves alone come from "
        "there by content tag instead of being built"
    ),
]


def recipe_labels(img: Image, platform: str) -> dict[str, str]:
    """The labels a build of ``img`` carries: its recipe's and every engine's stamp."""
    return img.config(platform).label_dict() | {op.key: op.value for op in stamp(img, platform)}


def _import_catalog(root: Path, spec: str) -> Catalog:
    """``module:function`` imported from ``root`` first: a team's `images` package must
    not resolve to another one already imported (or on the path), nor stay imported."""
    import sys

    from nbpipe.inputs import loader

    top = spec.partition(":")[0].split(".")[0]

    def taken() -> dict:
        return {
            k: sys.modules.pop(k) for k in list(sys.modules) if k == top or k.startswith(top + ".")
        }

    saved = taken()
    sys.path.insert(0, str(root))
    try:
        return loader.load(spec)
    finally:
        sys.path.remove(str(root))
        taken()
        sys.modules.update(saved)


@object_type
class Nbpipe:
    """Build, test and publish the Kubeflow notebook-server image family."""

    root: Annotated[
        str,
        Doc(
            "the Debian bookworm root to build on, NAME@sha256:DIGEST (default: the pinned "
            "docker.io/library/debian:bookworm-slim); for a registry without Docker Hub"
        ),
    ] = ""

    def _catalog(self) -> Catalog:
        return lowering.rooted(family(), self.root)

    def _image(self, name: str) -> Image:
        return self._catalog().resolve(name)  # unknown names: an error listing valid ones

    async def _platform(self, platform: dagger.Platform | None) -> str:
        return str(platform) if platform else str(await dag.default_platform())

    @function
    def images(self) -> list[str]:
        """The family's image names, parents first."""
        return self._catalog().order()

    @function
    def graph(self, format: Annotated[str, Doc("text | mermaid | dot")] = "text") -> str:
        """The family as a tree, a Mermaid chart or Graphviz dot."""
        return graphs.render(self._catalog(), format) + "\n"

    @function
    async def build(
        self,
        image: ImageName,
        platform: PlatformArg = None,
        ca_bundle: CaArg = None,
        wheelhouse: WheelsArg = None,
        reproducible: ReproArg = False,
    ) -> dagger.Container:
        """The image as a Container: the pinned root plus every step of its chain."""
        return await self._lower(self._image(image), platform, ca_bundle, wheelhouse, reproducible)

    async def _lower(
        self,
        img: Image,
        platform: dagger.Platform | None,
        ca_bundle,
        wheelhouse,
        reproducible: bool = False,
        registry: str = "",
        published: frozenset[str] = frozenset(),
    ) -> dagger.Container:
        p = await self._platform(platform)
        if p not in img.platforms:
            raise ValueError(f"{img.name} is built for {', '.join(img.platforms)}, not {p}")
        options = BuildOptions(ca_secret=ca_bundle, wheelhouse_dir=wheelhouse)
        return lowering.lower(
            img, p, options, reproducible=reproducible, registry=registry, published=published
        )

    @function
    async def build_spec(
        self,
        source: Annotated[
            dagger.Directory, Doc("a folder holding the team's YAML spec and the files it names")
        ],
        path: Annotated[str, Doc("the spec, relative to source, e.g. team-astro.yaml")],
        platform: PlatformArg = None,
        ca_bundle: CaArg = None,
        wheelhouse: WheelsArg = None,
        reproducible: ReproArg = False,
    ) -> dagger.Container:
        """A team's YAML spec (on one of our images) as a Container. The spec and every file
        it names are read from ``source`` only."""
        with tempfile.TemporaryDirectory(prefix="nbpipe-spec-") as tmp:
            root = Path(tmp)
            await source.export(str(root))
            spec = specs.load(safe_io.inside(root, path, f"--path {path}", error=specs.SpecError))
            catalog = spec.register(self._catalog())
            img = catalog.resolve(spec.name)  # reads nothing more: files were read at load
        return await self._lower(img, platform, ca_bundle, wheelhouse, reproducible)

    @function
    async def build_catalog(
        self,
        source: Annotated[dagger.Directory, Doc("a team's repository holding its Python recipes")],
        catalog: Annotated[
            str, Doc("module:function in source giving the Catalog, e.g. images.team_x:catalog")
        ],
        image: Annotated[str, Doc("the image to build, e.g. team-x")],
        platform: PlatformArg = None,
        ca_bundle: CaArg = None,
        wheelhouse: WheelsArg = None,
        reproducible: ReproArg = False,
    ) -> dagger.Container:
        """A team's image written with the Python API (`nbpipe new --python`) as a
        Container. The module is imported from ``source`` (the team's own code, run in
        this function as `nbpipe build --catalog` runs it on a machine)."""
        with tempfile.TemporaryDirectory(prefix="nbpipe-catalog-") as tmp:
            await source.export(tmp)
            img = _import_catalog(Path(tmp), catalog).resolve(image)  # files read here
        return await self._lower(img, platform, ca_bundle, wheelhouse, reproducible)

    @function
    async def test(
        self,
        image: ImageName,
        platform: PlatformArg = None,
        runner_tags: TagsArg = "",
        ca_bundle: CaArg = None,
    ) -> str:
        """Build the image and run the contract probes on it (see test-container)."""
        img = self._image(image)
        p = await self._platform(platform)
        ctr = await self._lower(img, dagger.Platform(p), ca_bundle, None)
        return await self._probe(ctr, p, recipe_labels(img, p), runner_tags)

    @function
    async def test_container(
        self,
        container: Annotated[
            dagger.Container, Doc("an image built on ours (its labels say what to probe)")
        ],
        runner_tags: TagsArg = "",
    ) -> str:
        """Run the contract probes on any Container: over HTTP from a second container
        bound to it as a service (as Kubeflow reaches it), and inside it for processes and
        files. What to probe comes from the image's own labels."""
        labels = {}
        for label in await container.labels():
            labels[await label.name()] = await label.value()
        return await self._probe(container, str(await container.platform()), labels, runner_tags)

    async def _probe(
        self, container: dagger.Container, p: str, labels: dict[str, str], runner_tags: str
    ) -> str:
        name = labels.get(contract.LABEL_NAME, "container")
        found, text = await probing.probe(
            container, p, labels, runner_tags, _source(), self._image("base")
        )
        if any(r.status is Status.FAILED for r in found):
            raise ValueError(f"probes failed for {name}:\n{text}")
        return text

    @function
    async def publish(
        self,
        image: ImageName,
        address: Annotated[str, Doc("registry repository, e.g. ghcr.io/acme/jupyter-scipy")],
        platforms: Annotated[
            list[dagger.Platform] | None, Doc("default: every platform the image is built for")
        ] = None,
        tags: Annotated[list[str] | None, Doc("extra tags, e.g. latest")] = None,
        ca_bundle: CaArg = None,
        username: Annotated[str, Doc("registry user (with --password)")] = "",
        password: Annotated[
            dagger.Secret | None, Doc("registry password or token, e.g. env:REGISTRY_PASSWORD")
        ] = None,
    ) -> str:
        """Push one multi-arch manifest list per tag; the content tag comes from the digest."""
        img = self._image(image)
        if bool(username) != (password is not None):
            raise ValueError(
                "give --username and --password together (or neither, for a "
                "registry that needs no login)"
            )
        wanted = [str(p) for p in platforms] if platforms else list(img.platforms)
        for p in wanted:
            if p not in img.platforms:
                raise ValueError(
                    f"{image} is not built for {p} (it has {', '.join(img.platforms)})"
                )
        variants = [await self._lower(img, dagger.Platform(p), ca_bundle, None) for p in wanted]
        pusher = dag.container()
        if password is not None:
            pusher = pusher.with_registry_auth(address, username, password)
        refs = []
        for tag in [content_tag(img), *(tags or [])]:
            refs.append(await pusher.publish(f"{address}:{tag}", platform_variants=variants))
        return "\n".join(refs)

    @function
    async def ci(
        self,
        since: Annotated[
            dagger.File | None,
            Doc("the plan JSON of the last run (`nbpipe plan --json`); default: all"),
        ] = None,
        runner_tags: TagsArg = "",
        ca_bundle: CaArg = None,
        images: Annotated[
            list[str] | None, Doc("only these images (one CI job each, or a subtree); default: all")
        ] = None,
        registry: RegistryArg = "",
    ) -> str:
        """Build and test every image a change affects, parents first, siblings at once:
        the same pipeline as `nbpipe build`, on Dagger."""
        cat = self._catalog()
        platform = await self._platform(None)
        previous = json.loads(await since.contents())["digests"] if since else {}
        order = cat.affected(previous, platform)
        # unchanged images are in the registry under their content tag (published from main)
        published = frozenset(cat.names) - set(order) if registry else frozenset()
        if images:
            for n in images:
                cat.resolve(n)  # unknown names: an error listing valid ones
            order = [n for n in order if n in images]
        if not order:
            return "nothing changed"
        options = BuildOptions(ca_secret=ca_bundle)
        backend = DaggerBackend(
            cat,
            options,
            _source,
            runner_tags,
            connect=False,
            registry=registry,
            published=published,
            # what the change leaves alone comes with its children's chain (or the registry)
            present=frozenset(
                naming.local_ref(cat.resolve(n), platform)
                for n in cat.order(order)
                if n not in order
            ),
        )
        # the engine's network decides what it reaches: a download it cannot get fails there
        settings = Settings(assume_reachable=frozenset({"*"}))
        pipe = Pipeline(cat, backend, platform, options, settings, targets=frozenset(order))
        results = [r for r in await pipe.run(order) if r.name in order]
        verdict = report.verdict(results)
        skipped = dict(verdict.skipped)
        lines = [f"{r.name:32} {_ci_line(r, skipped.get(r.name))}" for r in results]
        if verdict.failed:
            raise ValueError("ci failed:\n" + "\n".join(lines))
        return "\n".join(lines)


def _source() -> dagger.Directory:
    """nbpipe's package folder as this module holds it: the probes run from it."""
    return dag.current_module().source().directory("nbpipe")


def _ci_line(r: ImageResult, skipped: str | None) -> str:
    if r.ok:
        return "ok"
    if skipped is not None:  # unbuildable anywhere (a download with no sha256): not a failure
        return f"skipped: {skipped}"
    if r.status is Outcome.BLOCKED:
        return f"blocked by {r.blocked_by}"
    return f"failed: {(r.message or str(r.status)).splitlines()[0]}"
