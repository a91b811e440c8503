"""Publish images: every platform built first, then pushed, then one manifest list per
tag. All or nothing: if any platform fails, no tag of that image moves.

Tags: ``sha-<digest16>`` from the content digest (a registry then works like a binary
cache: an image whose content tag exists is never built or pushed again), version tags
read from the built image (python-3.11, lab-4.5.11, torch-2.12, cuda-12.6), a date tag,
and ``latest`` when asked.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Callable

import anyio

from nbpipe.engines.oci import OciEngine
from nbpipe.engines.registry import Registry
from nbpipe.errors import NbpipeError
from nbpipe.recipe.catalog import Catalog
from nbpipe.recipe.image import Image
from nbpipe.recipe.naming import content_tag
from nbpipe.recipe.options import BuildOptions
from nbpipe.run.backends import DaggerBackend, Local
from nbpipe.run.pipeline import Pipeline, backend_for
from nbpipe.run.report import ImageResult
from nbpipe.run.settings import Settings
from nbpipe.supply import sbom

if TYPE_CHECKING:
    from nbpipe.run.machine import Machine
    from nbpipe.supply.signing import SigningKey

COMPRESSIONS = ("gzip", "zstd")
VERSION_KEYS = (
    "python",
    "lab",
    "torch",
    "tf",
    "cuda",
)  # what VERSIONS prints  # gzip first: the default, what every runtime can pull

VERSIONS = r"""
import json, sys
out = {"python": "%d.%d" % sys.version_info[:2]}
for key, module in (("lab", "jupyterlab"), ("torch", "torch"), ("tf", "tensorflow")):
    try:
        m = __import__(module)
    except Exception:
        continue
    v = m.__version__.split("+")[0]
    out[key] = v if key == "lab" else ".".join(v.split(".")[:2])
    if module == "torch" and getattr(m.version, "cuda", None):
        out["cuda"] = m.version.cuda
print(json.dumps(out))
"""


@dataclass
class Published:
    name: str
    repo: str
    platforms: tuple[str, ...]
    tags: list[str] = field(default_factory=list)
    digest: str = ""
    uploaded: bool = False
    message: str = ""
    sboms: list[Path] = field(default_factory=list)
    compression: str = ""  # of the layers in the registry: gzip | zstd (as pushed, or found)
    signed: str = ""  # "" (no --sign-key) | what signing did
    platform_digests: dict[str, str] = field(default_factory=dict)
    debs: int = 0  # pinned .debs pushed beside it (supply/debs.py), all platforms

    @property
    def ref(self) -> str:
        return f"{self.repo}@{self.digest}"


def version_tags(engine: OciEngine, ref: str) -> list[str]:
    r = engine.run_once(ref, ["python3", "-c", VERSIONS], timeout=300)
    if r.returncode != 0:
        return []  # no Python in this image: no version tags, not an error
    return parse_versions(r.stdout)


def parse_versions(stdout: str) -> list[str]:
    """The tags from VERSIONS' last line (`python-3.11`, `lab-4.5.11`, ...), on any engine."""
    lines = stdout.strip().splitlines()
    data = json.loads(lines[-1]) if lines else {}
    return [f"{k}-{v}" for k, v in data.items() if k in VERSION_KEYS and isinstance(v, str)]


def publish(
    machine: "Machine",
    names: list[str],
    registry: Registry,
    *,
    platforms: tuple[str, ...] | None,
    options: BuildOptions,
    settings: Settings,
    extra_tags: tuple[str, ...] = (),
    latest: bool = False,
    compression: str = "gzip",
    locked: bool = False,
    sign_key: "SigningKey | None" = None,
    on_event: Callable[[str, str], None] = lambda n, w: None,
) -> list[Published]:
    """Publish ``names``: every platform built first through the one pipeline (and probed
    where it runs natively), then pushed parents first, one at a time (pushes share the
    uplink); a failed image blocks the named images built on it, the others still go.
    Raises at the end, naming every image that did not go, if any did not.
    ``compression``: the layers' (gzip, which every runtime pulls; zstd, smaller and faster
    to unpack, needs containerd >= 1.5 / CRI-O / podman >= 3 on the nodes). ``sign_key``:
    sign every platform image and the list, and attach each platform's SBOM and provenance,
    signed (sigstore's tags in the registry; see sigstore.py). In a Dagger session the
    images are built and pushed through Dagger (unsigned: see DaggerBackend.cannot)."""
    if compression not in COMPRESSIONS:
        raise NbpipeError(f"--compression {compression}: use one of {', '.join(COMPRESSIONS)}")
    backend = backend_for(machine, options, settings)
    if sign_key is not None and (why := backend.cannot("sign")):
        raise NbpipeError(why)
    catalog = backend.catalog if isinstance(backend, DaggerBackend) else machine.catalog
    wanted: dict[str, tuple[Image, tuple[str, ...]]] = {}
    for name in names:
        img = catalog.resolve(name)
        plats = tuple(p for p in img.platforms if platforms is None or p in platforms)
        if not plats:
            raise NbpipeError(
                f"{name} is built for {', '.join(img.platforms)}; none of those was asked for"
            )
        wanted[name] = (img, plats)
    order = [n for n in catalog.order(names) if n in wanted]
    native = machine.platform
    # 1. every platform built (and probed where it runs natively) before anything moves
    built: dict[str, dict[str, ImageResult]] = {n: {} for n in order}
    for p in dict.fromkeys(p for n in order for p in wanted[n][1]):
        on_event("nbpipe", f"building for {p}")
        if isinstance(backend, Local):
            backend.known = None  # what the last platform built is in the store now
        pipe = Pipeline(
            catalog,
            backend,
            p,
            options,
            settings,
            probe=(p == native),
            on_event=on_event,
            locked=locked,
        )
        for r in anyio.run(pipe.run, [n for n in order if p in wanted[n][1]]):
            if r.name in built:
                built[r.name][p] = r
        moved = [line for r in built_all(built) for line in r.refreshed]
        if moved:  # the tags were computed from the old lock: publish on the new one
            raise NbpipeError(
                f"Debian's archive had moved, the lock was refreshed ({'; '.join(moved)}); "
                "nothing was pushed: publish again to push under the new digest "
                "(releases: --locked)"
            )
    # 2. pushed parents first; an image whose build failed, or that sits on one, stays
    done: dict[str, Published] = {}
    problems: dict[str, str] = {}
    for name in order:
        img, plats = wanted[name]
        bad = [(p, built[name][p]) for p in plats if not built[name][p].ok]
        above = next((a for a in catalog.ancestors(name) if a in problems), None)
        if above is not None:
            problems[name] = f"{name}: not published: {above} was not"
            continue
        if bad:
            p, r = bad[0]
            problems[name] = f"{name} for {p}: {r.status}: {r.message} - nothing was pushed"
            on_event(name, "failed")
            continue
        refs = {p: built[name][p].ref for p in plats}
        try:
            if isinstance(backend, DaggerBackend):
                done[name] = anyio.run(
                    _push_dagger,
                    backend,
                    img,
                    plats,
                    registry,
                    extra_tags,
                    latest,
                    native,
                    on_event,
                )
            else:
                assert isinstance(backend, Local)  # the other backend
                done[name] = _push_one(
                    img,
                    plats,
                    refs,
                    backend.engine,
                    registry,
                    options,
                    settings.state_dir,
                    extra_tags,
                    latest,
                    native,
                    on_event,
                    compression,
                    sign_key,
                )
        except NbpipeError as exc:
            problems[name] = str(exc)
            on_event(name, "failed")
    if problems:
        went = f" (published: {', '.join(done)})" if done else ""
        raise NbpipeError("; ".join(problems[n] for n in order if n in problems) + went)
    return [done[n] for n in order]


def built_all(built: dict[str, dict[str, ImageResult]]) -> list[ImageResult]:
    return [r for per in built.values() for r in per.values()]


def tags_for(
    ctag: str, versions: list[str], extra_tags: tuple[str, ...], latest: bool
) -> list[str]:
    """Every tag an image gets: content, versions, the date, extra ones, latest."""
    tags = [ctag, *versions, time.strftime("%Y%m%d", time.gmtime()), *extra_tags]
    return list(dict.fromkeys(tags + (["latest"] if latest else [])))


async def _push_dagger(
    backend: DaggerBackend,
    img: Image,
    plats: tuple[str, ...],
    registry: Registry,
    extra_tags: tuple[str, ...],
    latest: bool,
    native: str,
    on_event: Callable[[str, str], None],
) -> Published:
    """Push through Dagger: one manifest list of every platform's container per tag."""
    import dagger
    from dagger import dag

    repo = registry.repo(img.name)
    res = Published(img.name, repo, plats)
    async with backend.session():
        variants = {p: backend.container(img, p) for p in plats}
        first = variants.get(native) or variants[plats[0]]
        probe = first.with_exec(["python3", "-c", VERSIONS], expect=dagger.ReturnType.ANY)
        versions = parse_versions(await probe.stdout()) if await probe.exit_code() == 0 else []
        res.tags = tags_for(content_tag(img), versions, extra_tags, latest)
        pusher = dag.container()
        user, password = registry.credentials()
        if user and password:
            secret = dag.set_secret("nbpipe-registry-password", password)
            pusher = pusher.with_registry_auth(registry.host, user, secret)
        on_event(img.name, f"pushing {', '.join(plats)} through Dagger as {', '.join(res.tags)}")
        for tag in res.tags:
            ref = await pusher.publish(f"{repo}:{tag}", platform_variants=list(variants.values()))
            res.digest = ref.rpartition("@")[2] or res.digest
    res.uploaded = True
    res.message = "published through Dagger (no SBOM or signature: those need podman)"
    return res


def layer_compression(manifest: bytes) -> str:
    """gzip | zstd | none | mixed, from an image manifest's layer media types ("" when it
    lists no layers: a manifest list, or nothing to say)."""
    layers = json.loads(manifest).get("layers") or []
    if not layers:
        return ""
    kinds = {
        "zstd"
        if "zstd" in m.get("mediaType", "")
        else "gzip"
        if "gzip" in m.get("mediaType", "")
        else "none"
        for m in layers
    }
    return kinds.pop() if len(kinds) == 1 else "mixed"


def _push_one(
    img: Image,
    plats: tuple[str, ...],
    refs: dict[str, str],
    engine: OciEngine,
    registry: Registry,
    options: BuildOptions,
    state_dir: Path,
    extra_tags: tuple[str, ...],
    latest: bool,
    native: str,
    on_event: Callable[[str, str], None],
    compression: str = "gzip",
    sign_key: "SigningKey | None" = None,
) -> Published:
    name = img.name
    repo = registry.repo(name)
    res = Published(name, repo, plats)
    ctag = content_tag(img)
    first = refs[native] if native in refs else refs[plats[0]]
    res.tags = tags_for(ctag, version_tags(engine, first), extra_tags, latest)
    for p, ref in refs.items():
        res.sboms.append(sbom.write(engine, ref, name, p, state_dir / "sbom"))
    with registry.authfile() as auth:
        flags = registry.flags(auth)
        # 2. per-platform images under their own content tags (no user-facing tag yet)
        remote = {}
        for p, ref in refs.items():
            arch_ref = f"{repo}:{ctag}-{p.split('/')[1]}"
            there = registry.manifest(arch_ref, auth)
            if there is None:
                on_event(name, f"pushing {p} ({compression})")
                engine.push(
                    ref, f"docker://{arch_ref}", [*flags, "--compression-format", compression]
                )
                res.uploaded = True
                there = registry.manifest(arch_ref, auth)
            # what the registry holds: an image already there keeps the compression it was
            # pushed with, and podman 4.3 (no --force-compression) reuses a layer the
            # registry holds in the other compression
            res.compression = layer_compression(there or b"{}")
            remote[p] = arch_ref
        # 3. the manifest list, under every tag; skipped where it is already there
        existing = registry.digest(f"{repo}:{ctag}", auth)
        moving = res.tags
        if existing and not res.uploaded:  # the list is there: move only tags elsewhere
            res.digest = existing
            moving = [t for t in res.tags if registry.digest(f"{repo}:{t}", auth) != existing]
        if moving:
            on_event(name, f"pushing the manifest list as {', '.join(moving)}")
            res.digest = engine.publish_list(remote, [f"{repo}:{t}" for t in moving], flags)
            res.uploaded = res.uploaded or not existing
        res.platform_digests = {p: registry.digest(ref, auth) or "" for p, ref in remote.items()}
        if options.deb_store is not None:  # the package store beside it: exact rebuilds
            from nbpipe.supply import debs

            res.debs = sum(debs.push(registry, img, p, options.deb_store, auth) for p in plats)
            if res.debs:
                on_event(name, f"{res.debs} pinned .deb(s) beside it as *.debs artifacts")
        if sign_key is not None:
            res.signed = _sign(
                registry, auth, res, img, ctag, options, compression, engine, sign_key, on_event
            )
        res.message = "published" if res.uploaded else "already published: nothing uploaded"
        if res.debs:
            res.message += f"; {res.debs} pinned .deb(s) beside it"
        if res.signed:
            res.message += f"; {res.signed}"
        if res.compression and res.compression != compression:
            res.message += (
                f" (its layers are {res.compression}: layers already in the "
                f"registry keep their compression, --compression {compression} "
                "applies to new ones)"
            )
    return res


def _sign(
    registry: Registry,
    auth,
    res: Published,
    img: Image,
    ctag: str,
    options: BuildOptions,
    compression: str,
    engine: OciEngine,
    key: "SigningKey",
    on_event,
) -> str:
    """Sign each platform image and the list; attach each platform's SBOM and SLSA
    provenance as signed in-toto statements. Idempotent: what is there stays."""
    from nbpipe.supply import provenance, sigstore

    new = 0
    for p, digest in res.platform_digests.items():
        on_event(res.name, f"signing {p} and attaching its SBOM and provenance")
        arch_tag = f"{ctag}-{p.split('/')[1]}"
        new += sigstore.sign(registry, res.repo, digest, key, auth, tag=arch_tag)
        doc = json.loads(
            next(
                s for s in res.sboms if s.name.endswith(f"-{p.split('/')[1]}.cdx.json")
            ).read_text()
        )
        pred = provenance.slsa(img, p, options, compression=compression, engine=engine.kind)
        new += sigstore.attest(
            registry,
            res.repo,
            digest,
            key,
            auth,
            [
                provenance.statement(res.repo, digest, provenance.SLSA_PROVENANCE, pred),
                provenance.statement(res.repo, digest, provenance.CYCLONEDX_BOM, doc),
            ],
        )
    new += sigstore.sign(registry, res.repo, res.digest, key, auth, tag=ctag)
    return f"signed with {key.source}" if new else f"already signed with {key.source}"


def spawner_options(catalog: Catalog, registry: Registry, defaults: tuple[str, ...] = ()) -> str:
    """The spawner_ui_config.yaml dropdown blocks for Kubeflow's notebook spawner
    (nbpipe/run/spawner.py: refs as repo:tag@sha256:digest, blocks to merge)."""
    from nbpipe.run import spawner

    return spawner.blocks(spawner.published(catalog, registry, defaults))
