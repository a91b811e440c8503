"""Sign, attest and verify published images, with sigstore's registry conventions (what
`cosign verify --key`, `cosign verify-attestation` and sigstore's policy-controller
check), so that a cluster admits only what our key signed.

`verify` answers in one line what failed: no signature (unsigned), no signature that
the key verifies (another key), a valid signature for another digest or another name.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from dataclasses import dataclass, field
from pathlib import Path

from nbpipe.engines.registry import Registry
from nbpipe.errors import NbpipeError
from nbpipe.supply import attach, provenance
from nbpipe.supply.signing import (
    DSSE_MEDIA_TYPE,
    SIG_ANNOTATION,
    SIG_MEDIA_TYPE,
    SIMPLE_SIGNING_TYPE,
    PublicKey,
    SigningKey,
    dsse_envelope,
    open_envelope,
    simple_signing_payload,
)

INDEX_TYPES = (
    "application/vnd.oci.image.index.v1+json",
    "application/vnd.docker.distribution.manifest.list.v2+json",
)


def sign(
    registry: Registry, repo: str, digest: str, key: SigningKey, auth: Path | None, *, tag: str
) -> bool:
    """Attach a signature of ``digest`` for ``repo:tag`` (sigstore checks the repository
    part of that name). Returns whether a new signature was pushed."""
    payload = simple_signing_payload(f"{repo}:{tag}", digest)
    layer = attach.Layer(
        SIG_MEDIA_TYPE, payload, {SIG_ANNOTATION: base64.b64encode(key.sign(payload)).decode()}
    )
    # ECDSA signatures differ each time: an image already signed by this key for this
    # digest and name keeps its signature instead of gaining one per publish
    for old in attach.fetch(registry, repo, digest, "sig", auth):
        if old.data == payload and _verifies(old, PublicKey(key.key.public_key(), "")):
            return False
    return attach.push(registry, repo, digest, "sig", [layer], auth)


def attest(
    registry: Registry,
    repo: str,
    digest: str,
    key: SigningKey,
    auth: Path | None,
    statements: list[dict],
) -> bool:
    """Attach signed in-toto statements (DSSE envelopes) to ``digest``; a statement of
    the same predicate type whose content is already there is not pushed again."""
    pub = PublicKey(key.key.public_key(), "")
    there = [open_envelope(x.data, pub) for x in attach.fetch(registry, repo, digest, "att", auth)]
    layers = [
        attach.Layer(
            DSSE_MEDIA_TYPE, dsse_envelope(key, st), {"predicateType": st["predicateType"]}
        )
        for st in statements
        if st not in there
    ]
    return bool(layers) and attach.push(registry, repo, digest, "att", layers, auth)


def _verifies(layer: attach.Layer, key: PublicKey) -> bool:
    try:
        sig = base64.b64decode(layer.annotations.get(SIG_ANNOTATION, ""), validate=True)
    except binascii.Error:
        return False
    return bool(sig) and key.verifies(layer.data, sig)


@dataclass(frozen=True)
class Finding:
    """One checked thing: ``ok`` or the one line that says what failed."""

    subject: str  # repo@digest (platform)
    what: str  # signature | provenance | sbom
    ok: bool
    line: str


@dataclass(frozen=True)
class Verdict:
    ref: str
    findings: tuple[Finding, ...]
    provenance: tuple[provenance.Summary, ...] = ()
    sboms: tuple[dict, ...] = field(default=(), hash=False)

    @property
    def ok(self) -> bool:
        return all(f.ok for f in self.findings)

    @property
    def first_failure(self) -> str:
        return next((f.line for f in self.findings if not f.ok), "")


def check_signature(
    registry: Registry, repo: str, digest: str, key: PublicKey, auth: Path | None
) -> tuple[bool, str]:
    """Whether ``repo@digest`` carries a signature by ``key`` for itself; else why not."""
    layers = [
        x
        for x in attach.fetch(registry, repo, digest, "sig", auth)
        if x.media_type == SIG_MEDIA_TYPE
    ]
    if not layers:
        return False, (
            f"unsigned: {repo}@{digest} has no signature (no {attach.tag(digest, 'sig')})"
        )
    by_key = [x for x in layers if _verifies(x, key)]
    if not by_key:
        return False, (
            f"signed by another key: none of the {len(layers)} signature(s) of "
            f"{repo}@{digest} verifies with {key.source}"
        )
    reasons = []
    for x in by_key:
        try:
            crit = json.loads(x.data)["critical"]
            signed_digest = str(crit["image"]["docker-manifest-digest"])
            identity = str(crit["identity"]["docker-reference"])
            kind = str(crit["type"])
        except (ValueError, KeyError, TypeError):
            reasons.append("a signature by the key whose payload is not a simple signing payload")
            continue
        if kind != SIMPLE_SIGNING_TYPE:
            reasons.append(f"a signature of type {kind!r}")
        elif signed_digest != digest:
            reasons.append(
                f"signature for another digest: the key signed {signed_digest}, "
                f"this image is {digest}"
            )
        elif _repository(identity) != repo:
            reasons.append(f"signed for another name: {identity}, not {repo}")
        else:
            return True, f"signed: {repo}@{digest} by {key.source}"
    return False, reasons[0]


def _repository(reference: str) -> str:
    """host[:port]/path of a reference, without its tag or digest."""
    name = reference.split("@", 1)[0]
    last = name.rsplit("/", 1)
    if ":" in last[-1]:
        name = name.rsplit(":", 1)[0]
    return name


def verify(
    ref: str, key: PublicKey, *, registry: Registry | None = None, auth: Path | None = None
) -> Verdict:
    """Check ``REPO@DIGEST``: its signature, and for a manifest list every platform
    image's signature, signed provenance and signed SBOM (attached to its digest)."""
    repo, sep, digest = ref.partition("@")
    if not sep or not digest.startswith("sha256:") or "/" not in repo:
        raise NbpipeError(
            f"{ref}: give REGISTRY/NAME@sha256:DIGEST (a digest, not a tag: "
            "a tag can move after it was checked)"
        )
    registry = registry or Registry.parse(repo.split("/", 1)[0])
    raw = registry.manifest(ref, auth)
    if raw is None:
        return Verdict(ref, (Finding(ref, "image", False, f"not found: no {ref} in the registry"),))
    findings: list[Finding] = []
    summaries: list[provenance.Summary] = []
    sboms: list[dict] = []
    ok, line = check_signature(registry, repo, digest, key, auth)
    findings.append(Finding(ref, "signature", ok, line))
    try:
        manifest = json.loads(raw)
    except ValueError:
        manifest = None
    if not isinstance(manifest, dict):
        raise NbpipeError(f"{ref}: the registry's manifest is not a JSON object")
    if manifest.get("mediaType") in INDEX_TYPES or "manifests" in manifest:
        listed = manifest.get("manifests")
        instances = [
            (str(m.get("digest", "")), _platform(m.get("platform")))
            for m in (listed if isinstance(listed, list) else [])
            if isinstance(m, dict)
        ]
    else:
        instances = []
        _attestations(registry, repo, digest, "", key, auth, findings, summaries, sboms)
    for inst, platform in instances:
        subject = f"{repo}@{inst} ({platform})"
        if not re.fullmatch(r"sha256:[0-9a-f]{64}", inst):
            findings.append(
                Finding(
                    subject,
                    "signature",
                    False,
                    f"{platform}: the list names {inst!r}, not a sha256 digest",
                )
            )
            continue
        ok, line = check_signature(registry, repo, inst, key, auth)
        findings.append(Finding(subject, "signature", ok, f"{platform}: {line}"))
        _attestations(registry, repo, inst, platform, key, auth, findings, summaries, sboms)
    return Verdict(ref, tuple(findings), tuple(summaries), tuple(sboms))


def _platform(p: object) -> str:
    p = p if isinstance(p, dict) else {}
    return f"{p.get('os', '?')}/{p.get('architecture', '?')}"


def _attestations(
    registry: Registry,
    repo: str,
    digest: str,
    platform: str,
    key: PublicKey,
    auth: Path | None,
    findings: list[Finding],
    summaries: list[provenance.Summary],
    sboms: list[dict],
) -> None:
    subject = f"{repo}@{digest}" + (f" ({platform})" if platform else "")
    where = f"{platform}: " if platform else ""
    envelopes = [
        x
        for x in attach.fetch(registry, repo, digest, "att", auth)
        if x.media_type == DSSE_MEDIA_TYPE
    ]
    wanted = {provenance.SLSA_PROVENANCE: "provenance", provenance.CYCLONEDX_BOM: "sbom"}
    found: dict[str, str] = {}
    for x in envelopes:
        st = open_envelope(x.data, key)
        kind = wanted.get(x.annotations.get("predicateType", ""))
        if kind is None:
            continue
        if st is None:
            found.setdefault(
                kind, f"{where}{kind} signed by another key: no envelope verifies with {key.source}"
            )
            continue
        if not isinstance(st, dict):
            continue
        listed = st.get("subject")
        subjects = [
            s["digest"].get("sha256")
            for s in (listed if isinstance(listed, list) else [])
            if isinstance(s, dict) and isinstance(s.get("digest"), dict)
        ]
        if st.get("predicateType") != x.annotations.get("predicateType"):
            found.setdefault(
                kind,
                f"{where}{kind}: the signed statement's predicate type differs from its annotation",
            )
            continue
        if digest.removeprefix("sha256:") not in subjects:
            found.setdefault(
                kind,
                f"{where}{kind} for another digest: its subject is "
                f"{', '.join(f'sha256:{s}' for s in subjects)}, "
                f"this image is {digest}",
            )
            continue
        found[kind] = ""
        if kind == "provenance":
            summaries.append(provenance.summary(st.get("predicate") or {}))
        else:
            pred = st.get("predicate")
            sboms.append(pred if isinstance(pred, dict) else {})
    for kind in ("provenance", "sbom"):
        line = found.get(
            kind,
            f"{where}no {kind} attached to {digest} "
            f"(no signed {kind} in {attach.tag(digest, 'att')})",
        )
        findings.append(
            Finding(subject, kind, line == "", line or f"{where}{kind}: signed, for {digest}")
        )
