"""Artifacts attached to an image digest in a registry, by sigstore's tag convention:
``<repo>:sha256-<hex>.sig`` (signatures), ``.att`` (attestations: SBOM, provenance).

Why tags and not the OCI referrers API: Debian's docker-registry (distribution 2.8) has
no referrers API, and a tag is what cosign, sigstore's policy-controller and
containers/image (``use-sigstore-attachments``) look for. Transport is skopeo (auth,
TLS, any registry) between the registry and an OCI layout written here; each artifact is
an OCI image manifest whose layers are the signatures or envelopes, appended to (never
replaced), as cosign does.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

from nbpipe.engines.registry import Registry, _clean
from nbpipe.errors import NbpipeError
from nbpipe.inputs import safe_io

MAX_ARTIFACT = 64 * 1024 * 1024  # an SBOM of a large image is well under 1 MiB
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"


@dataclass(frozen=True)
class Layer:
    media_type: str
    data: bytes
    annotations: dict[str, str] = field(default_factory=dict, hash=False)

    @property
    def digest(self) -> str:
        return "sha256:" + hashlib.sha256(self.data).hexdigest()


def tag(digest: str, suffix: str) -> str:
    """The tag sigstore tools attach ``suffix`` (sig, att) to ``digest`` under."""
    algo, _, hexpart = digest.partition(":")
    if algo != "sha256" or len(hexpart) != 64:
        raise NbpipeError(f"{digest}: want sha256: and 64 hex digits")
    return f"sha256-{hexpart}.{suffix}"


def _skopeo() -> str:
    skopeo = shutil.which("skopeo")
    if skopeo is None:
        raise NbpipeError("skopeo is not installed: apt-get install skopeo")
    return skopeo


def copy(registry: Registry, src: str, dest: str, auth: Path | None, *, push: bool) -> None:
    tls = "true" if registry.tls_verify else "false"
    flags = [f"--{'dest' if push else 'src'}-tls-verify={tls}"]
    if auth:
        flags += [f"--{'dest' if push else 'src'}-authfile", str(auth)]
    # our own signature check decides; the machine's policy.json must not block moving
    # the (unsigned by nature) signature artifacts themselves
    args = [
        _skopeo(),
        "--insecure-policy",
        "copy",
        "--quiet",
        "--preserve-digests",
        *flags,
        src,
        dest,
    ]
    r = subprocess.run(args, capture_output=True, timeout=300)
    if r.returncode != 0:
        what = dest if push else src
        raise NbpipeError(
            f"registry {registry.host}: cannot {'push' if push else 'fetch'} "
            f"{what.removeprefix('docker://')}: "
            f"{_clean(r.stderr.decode(errors='replace'))}"
        )


def fetch(
    registry: Registry, repo: str, digest: str, suffix: str, auth: Path | None
) -> list[Layer]:
    """The layers attached to ``digest`` as ``suffix`` (none when nothing is attached)."""
    ref = f"{repo}:{tag(digest, suffix)}"
    raw = registry.manifest(ref, auth)
    if raw is None:
        return []
    try:
        manifest = json.loads(raw)
        listed = [
            (m["mediaType"], m["digest"], int(m["size"]), m.get("annotations") or {})
            for m in manifest["layers"]
        ]
    except (ValueError, KeyError, TypeError):
        raise NbpipeError(f"{ref}: not an artifact manifest (no layers)") from None
    if sum(size for _, _, size, _ in listed) > MAX_ARTIFACT:
        raise NbpipeError(f"{ref}: over {MAX_ARTIFACT >> 20} MiB: not reading it")
    with safe_io.private_dir("nbpipe-attach-") as tmp:
        copy(registry, f"docker://{ref}", f"dir:{tmp / 'a'}", auth, push=False)
        out = []
        for media, dg, _size, ann in listed:
            data = (tmp / "a" / dg.removeprefix("sha256:")).read_bytes()
            if "sha256:" + hashlib.sha256(data).hexdigest() != dg:
                raise NbpipeError(f"{ref}: layer {dg} does not match its digest")
            out.append(Layer(media, data, {str(k): str(v) for k, v in ann.items()}))
    return out


def push(
    registry: Registry, repo: str, digest: str, suffix: str, layers: list[Layer], auth: Path | None
) -> bool:
    """Attach ``layers`` to ``digest`` (after those already there; one that is there is
    not added twice). Returns whether anything was pushed."""
    there = fetch(registry, repo, digest, suffix, auth)
    known = {(x.media_type, x.data, tuple(sorted(x.annotations.items()))) for x in there}
    new = [
        x
        for x in layers
        if (x.media_type, x.data, tuple(sorted(x.annotations.items()))) not in known
    ]
    if not new:
        return False
    every = there + new
    with safe_io.private_dir("nbpipe-attach-") as tmp:
        blobs = tmp / "oci" / "blobs" / "sha256"
        blobs.mkdir(parents=True)

        def blob(data: bytes) -> dict:
            dg = hashlib.sha256(data).hexdigest()
            (blobs / dg).write_bytes(data)
            return {"digest": f"sha256:{dg}", "size": len(data)}

        # cosign's shape: an image config whose rootfs lists the layers (so every
        # registry and client treats the artifact as an ordinary image)
        config = json.dumps(
            {
                "architecture": "",
                "os": "",
                "config": {},
                "rootfs": {"type": "layers", "diff_ids": [x.digest for x in every]},
            },
            sort_keys=True,
        ).encode()
        manifest = {
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "config": {"mediaType": OCI_CONFIG, **blob(config)},
            "layers": [
                {
                    "mediaType": x.media_type,
                    **blob(x.data),
                    **({"annotations": x.annotations} if x.annotations else {}),
                }
                for x in every
            ],
        }
        raw = json.dumps(manifest, sort_keys=True).encode()
        index = {
            "schemaVersion": 2,
            "manifests": [
                {
                    "mediaType": OCI_MANIFEST,
                    **blob(raw),
                    "annotations": {"org.opencontainers.image.ref.name": "artifact"},
                }
            ],
        }
        (tmp / "oci" / "oci-layout").write_text('{"imageLayoutVersion":"1.0.0"}')
        (tmp / "oci" / "index.json").write_text(json.dumps(index))
        copy(
            registry,
            f"oci:{tmp / 'oci'}:artifact",
            f"docker://{repo}:{tag(digest, suffix)}",
            auth,
            push=True,
        )
    return True
