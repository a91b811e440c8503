"""The package store beside the images in a registry.

`nbpipe publish` pushes the pinned .debs that each published image's own apt steps install
as one OCI artifact, ``<repo>:<content tag>-<arch>.debs``, whose layers are the .debs
themselves: a layer's digest is the .deb's sha256, the one its lock line records, so the
registry keeps each package once however many images pin it. `nbpipe build --registry R`
pulls the artifacts of the images it builds into the local store first, so an exact
rebuild works on a machine that never built them, after Debian's archive has moved on.
Every file is checked against its digest before it is stored (apt checks it again).
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from collections.abc import Callable
from pathlib import Path

from nbpipe.engines.registry import Registry
from nbpipe.errors import NbpipeError
from nbpipe.inputs import safe_io
from nbpipe.locks.archive import Pin, pins
from nbpipe.recipe.image import Image
from nbpipe.recipe.naming import content_tag
from nbpipe.recipe.steps import Apt
from nbpipe.supply.attach import OCI_CONFIG, OCI_MANIFEST, copy

MEDIA = "application/vnd.debian.binary-package"
MAX_PACKAGES = 5000
MAX_BYTES = 4 << 30  # jupyter-scipy's own packages are about 200 MB


def tag(image: Image, platform: str) -> str:
    return f"{content_tag(image)}-{platform.split('/')[1]}.debs"


def pinned(image: Image, platform: str) -> list[Pin]:
    """The pins (with their sha256) of ``image``'s own locked apt steps on ``platform``."""
    return [
        p
        for st in image.steps_for(platform)
        if isinstance(st, Apt) and st.locked
        for p in pins(st.locked)
        if p.sha256
    ]


def push(registry: Registry, image: Image, platform: str, store: Path, auth: Path | None) -> int:
    """Push the store's .debs of ``image`` as its artifact; how many it holds (0: none in
    the store, nothing pushed). An artifact already there with the same packages stays."""
    debs = sorted(
        {p.sha256: p for p in pinned(image, platform) if p.deb(store)}.values(),
        key=lambda p: p.sha256,
    )
    if not debs:
        return 0
    ref = f"{registry.repo(image.name)}:{tag(image, platform)}"
    there = registry.manifest(ref, auth)
    if there is not None and _layers(there, ref) == [f"sha256:{p.sha256}" for p in debs]:
        return len(debs)
    with safe_io.private_dir("nbpipe-debs-") as tmp:
        blobs = tmp / "oci" / "blobs" / "sha256"
        blobs.mkdir(parents=True)

        def blob(data: bytes) -> dict:
            digest = hashlib.sha256(data).hexdigest()
            (blobs / digest).write_bytes(data)
            return {"digest": f"sha256:{digest}", "size": len(data)}

        layers = []
        for p in debs:
            src = p.deb(store)
            assert src is not None
            try:  # the store names files by sha256 already: a link, not a copy
                os.link(src, blobs / p.sha256)
            except OSError:
                (blobs / p.sha256).write_bytes(src.read_bytes())
            layers.append(
                {
                    "mediaType": MEDIA,
                    "digest": f"sha256:{p.sha256}",
                    "size": src.stat().st_size,
                    "annotations": {"org.opencontainers.image.title": f"{p.name}={p.version}"},
                }
            )
        config = json.dumps(
            {
                "architecture": platform.split("/")[1],
                "os": "linux",
                "config": {},
                "rootfs": {"type": "layers", "diff_ids": [x["digest"] for x in layers]},
            },
            sort_keys=True,
        ).encode()
        manifest = json.dumps(
            {
                "schemaVersion": 2,
                "mediaType": OCI_MANIFEST,
                "config": {"mediaType": OCI_CONFIG, **blob(config)},
                "layers": layers,
            },
            sort_keys=True,
        ).encode()
        index = {
            "schemaVersion": 2,
            "manifests": [
                {
                    "mediaType": OCI_MANIFEST,
                    **blob(manifest),
                    "annotations": {"org.opencontainers.image.ref.name": "debs"},
                }
            ],
        }
        (tmp / "oci" / "oci-layout").write_text('{"imageLayoutVersion":"1.0.0"}')
        (tmp / "oci" / "index.json").write_text(json.dumps(index))
        copy(registry, f"oci:{tmp / 'oci'}:debs", f"docker://{ref}", auth, push=True)
    return len(debs)


def pull(registry: Registry, image: Image, platform: str, store: Path, auth: Path | None) -> int:
    """Fill ``store`` with ``image``'s published .debs that it lacks, each checked against
    its sha256 (a wrong one is refused, never stored); how many were added."""
    wanted = {p.sha256 for p in pinned(image, platform) if not p.deb(store)}
    if not wanted:
        return 0
    ref = f"{registry.repo(image.name)}:{tag(image, platform)}"
    raw = registry.manifest(ref, auth)
    if raw is None:
        return 0  # not published with its packages: apt asks the archive
    listed = {d.removeprefix("sha256:") for d in _layers(raw, ref)}
    if not wanted & listed:
        return 0
    added = 0
    with safe_io.private_dir("nbpipe-debs-") as tmp:
        copy(registry, f"docker://{ref}", f"dir:{tmp / 'a'}", auth, push=False)
        store.mkdir(parents=True, exist_ok=True)
        for digest in sorted(wanted & listed):
            src = tmp / "a" / digest
            if not src.is_file() or _sha256(src) != digest:
                raise NbpipeError(f"{ref}: package {digest[:12]} does not match its sha256")
            fd, part = tempfile.mkstemp(dir=store, prefix=".incoming-")
            os.close(fd)
            os.replace(src, part)
            os.replace(part, store / f"{digest}.deb")
            added += 1
    return added


def fill(
    registry: Registry,
    images: list[Image],
    platform: str,
    store: Path,
    on_event: Callable[[str, str], None] = lambda n, w: None,
) -> int:
    """`build --registry`: each image's published packages into the store, before building."""
    total = 0
    with registry.authfile() as auth:
        for img in images:
            if n := pull(registry, img, platform, store, auth):
                on_event(img.name, f"{n} pinned .deb(s) from {registry.address} into {store}")
                total += n
    return total


def _layers(raw: bytes, ref: str) -> list[str]:
    try:
        layers = json.loads(raw)["layers"]
        digests = [str(x["digest"]) for x in layers if x.get("mediaType") == MEDIA]
        size = sum(int(x["size"]) for x in layers)
    except (ValueError, KeyError, TypeError):
        raise NbpipeError(f"{ref}: not a package artifact (no layers)") from None
    if len(digests) > MAX_PACKAGES or size > MAX_BYTES:
        raise NbpipeError(f"{ref}: over {MAX_PACKAGES} packages or {MAX_BYTES >> 30} GiB")
    return digests


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()
