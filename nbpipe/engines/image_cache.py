"""Whole built images shared through the cache registry (issue 23, item 3).

Buildah's own layer cache (``--cache-from``/``--cache-to``, see ``LayerCache``) serves a
step at a time: a runner still walks every step, asks the registry once per step, pulls
one layer after another and commits each. When nothing in an image changed, one pull of
the finished image does the same in a fraction of the time (its layers come in parallel).
So a build with a cache registry first asks for the finished image under a key, and a
build that ran pushes its image under that key for the next runner.

Why the key can never serve another image: it is a sha256 over the platform, the
parent's key (for the root: its reference pinned by digest) and the whole Dockerfile with
every file it copies: everything buildah's own keys cover, for every step of the chain
at once. It needs no engine, so a run knows before building what the cache holds (and
fetches nothing for it). A pulled image must also say it is the recipe asked for
(io.nbpipe.digest) and be of the platform asked for; anything else is dropped and the
image is built here.
"""

from __future__ import annotations

import hashlib
import time
from typing import TYPE_CHECKING

from nbpipe.errors import NbpipeError
from nbpipe.recipe import contract

if TYPE_CHECKING:
    from nbpipe.engines.dockerfile import Rendered
    from nbpipe.engines.oci import ImageInfo, LayerCache, OciEngine

TAG_PREFIX = "nbpipe-image-"  # buildah's own cache tags are bare hex: never this


def key(rendered: Rendered, platform: str, parent: str) -> str:
    """The finished image's cache key (hex). ``parent``: the parent's key, or the pinned
    root reference for an image built on the root."""
    h = hashlib.sha256()
    for part in (platform, parent, rendered.text):
        h.update(part.encode() + b"\0")
    for rel in sorted(rendered.files):
        h.update(rel.encode() + b"\0" + hashlib.sha256(rendered.files[rel]).digest())
    for rel in sorted(rendered.modes):
        h.update(f"{rel}:{rendered.modes[rel]:o}".encode() + b"\0")
    return h.hexdigest()


def remote(repo: str, cache_key: str) -> str:
    """Where the finished image of ``cache_key`` lives in the cache ``repo``."""
    return f"{repo}:{TAG_PREFIX}{cache_key[:64]}"


def fetch(
    engine: OciEngine,
    cache: LayerCache,
    cache_key: str,
    ref: str,
    digest: str,
    platform: str,
) -> tuple[ImageInfo | None, str]:
    """The finished image pulled from the cache and tagged ``ref``, or None where the
    cache has none (or one that is not what was asked for, which is then dropped); and
    a line for the build log saying which."""
    src = remote(cache.repo, cache_key)
    start = time.monotonic()
    try:
        engine.pull(src, cache.flags)
    except NbpipeError as exc:
        return None, f"image cache: no finished image at {src} ({exc}); building"
    info = engine.inspect(src)
    said = info.labels.get(contract.LABEL_DIGEST)
    why = (
        f"it says it is {said!r}, not {digest}"
        if said != digest
        else f"it is for {info.arch!r}, not {platform}"
        if info.arch != platform.split("/")[1]
        else ""
    )
    if why:
        engine.remove(src)
        return None, f"image cache: dropped {src}: {why}; building"
    engine.tag(src, ref)
    engine.untag(src)
    seconds = time.monotonic() - start
    return engine.inspect(ref), f"image cache: pulled the finished image {src} in {seconds:.1f}s"


def share(engine: OciEngine, cache: LayerCache, cache_key: str, ref: str) -> str:
    """Push a just-built ``ref`` for the next runner; returns the build log's line. A
    failed push is a line, never a failed build: the image here is good, only the
    sharing did not happen."""
    dest = remote(cache.repo, cache_key)
    start = time.monotonic()
    try:
        engine.push(ref, f"docker://{dest}", cache.flags)
    except NbpipeError as exc:
        return f"image cache: not shared ({exc})"
    return f"image cache: pushed the finished image to {dest} in {time.monotonic() - start:.1f}s"
