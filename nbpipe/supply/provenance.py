"""In-toto statements about a published image: SLSA provenance v1 (what it was built
from, by what, how) and its CycloneDX SBOM, as cosign's ``attest`` writes them.

Everything in the provenance comes from the recipe, never from the machine's state: the
recipe digest (which covers every pin), the root's digest, the lock lines of every apt
and pip step of the chain, the source repository and revision (the image's OCI labels),
and the build parameters that do not enter the digest (epoch, compression, CA bundle
and wheelhouse given or not: never their paths or contents).
"""

from __future__ import annotations

from dataclasses import dataclass

from nbpipe import __version__
from nbpipe.recipe.image import Image
from nbpipe.recipe.options import BuildOptions
from nbpipe.recipe.steps import Apt, Pip

STATEMENT_TYPE = "https://in-toto.io/Statement/v1"
SLSA_PROVENANCE = "https://slsa.dev/provenance/v1"
CYCLONEDX_BOM = "https://cyclonedx.org/bom"  # cosign attest --type cyclonedx
BUILD_TYPE = "https://github.com/nbpipe/nbpipe/buildtypes/image/v1"
BUILDER_ID = "https://github.com/nbpipe/nbpipe/publish"


def statement(repo: str, digest: str, predicate_type: str, predicate: dict) -> dict:
    return {
        "_type": STATEMENT_TYPE,
        "subject": [{"name": repo, "digest": {"sha256": digest.removeprefix("sha256:")}}],
        "predicateType": predicate_type,
        "predicate": predicate,
    }


def _locked(image: Image, platform: str) -> list[dict]:
    """Every pinned package of the chain for ``platform``, parents first, as SLSA
    resource descriptors (pip lines carry their sha256)."""
    chain: list[Image] = []
    node: object = image
    while isinstance(node, Image):
        chain.append(node)
        node = node.parent
    out = []
    for img in reversed(chain):
        for st in img.steps:
            if not isinstance(st, (Apt, Pip)) or not st.locked:
                continue
            if st.platforms and platform not in st.platforms:
                continue
            for line in st.locked.splitlines():
                out.append(_descriptor(line.strip(), isinstance(st, Pip), img.name))
    return [d for d in out if d]


def _descriptor(line: str, pip: bool, image: str) -> dict:
    if not line or line.startswith("#"):
        return {}
    if pip:
        spec, *opts = line.split()
        name, _, version = spec.partition("==")
        d: dict = {"uri": f"pkg:pypi/{name.lower()}@{version}", "annotations": {"image": image}}
        hashes = [o.split(":", 1)[1] for o in opts if o.startswith("--hash=sha256:")]
        if hashes:
            d["digest"] = {"sha256": hashes[0]}
        return d
    from nbpipe.locks.archive import Pin

    pin = Pin.parse(line)  # name=version[@sha256:<the .deb's>]
    d = {"uri": f"pkg:deb/debian/{pin.name}@{pin.version}", "annotations": {"image": image}}
    if len(pin.sha256) == 64:
        d["digest"] = {"sha256": pin.sha256}
    return d


def slsa(
    image: Image, platform: str, options: BuildOptions, *, compression: str, engine: str
) -> dict:
    """The SLSA v1 provenance predicate of ``image`` built for ``platform``."""
    labels = dict(options.labels)
    root = image.root
    source = labels.get("org.opencontainers.image.source", "")
    revision = labels.get("org.opencontainers.image.revision", "")
    return {
        "buildDefinition": {
            "buildType": BUILD_TYPE,
            "externalParameters": {
                "image": image.name,
                "platform": platform,
                "source": {"repository": source, "revision": revision},
            },
            "internalParameters": {
                "sourceDateEpoch": options.source_date_epoch,
                "compression": compression,
                "caBundle": options.has_ca,
                "wheelhouse": options.has_wheelhouse,
            },
            "resolvedDependencies": [
                {
                    "uri": f"nbpipe:recipe/{image.name}",
                    "digest": {"sha256": image.digest(platform).removeprefix("sha256:")},
                },
                {
                    "uri": f"oci:{root.ref}",
                    "digest": {"sha256": root.digest(platform).removeprefix("sha256:")},
                },
                *(
                    [{"uri": f"git+{source}@{revision}", "digest": {"gitCommit": revision}}]
                    if source and revision
                    else []
                ),
                *_locked(image, platform),
            ],
        },
        "runDetails": {
            "builder": {"id": BUILDER_ID, "version": {"nbpipe": __version__, "engine": engine}},
            "metadata": {"invocationId": f"{image.name}@{image.digest(platform)}"},
        },
    }


@dataclass(frozen=True)
class Summary:
    """What a provenance statement says, in the words `nbpipe verify` prints."""

    image: str
    platform: str
    recipe: str
    root: str
    source: str
    revision: str
    builder: str
    locked: int
    parameters: dict

    def lines(self) -> list[str]:
        return [
            f"provenance: {self.image} for {self.platform}, recipe {self.recipe}",
            f"  root {self.root}",
            f"  source {self.source or '?'} at {self.revision or '?'}",
            f"  builder {self.builder}, {self.locked} locked packages",
            "  parameters " + ", ".join(f"{k}={v}" for k, v in sorted(self.parameters.items())),
        ]


def summary(predicate: dict) -> Summary:
    """Read back what ``slsa`` wrote (missing fields read as empty, never a traceback)."""

    def obj(parent: object, key: str) -> dict:
        value = parent.get(key) if isinstance(parent, dict) else None
        return value if isinstance(value, dict) else {}

    bd = obj(predicate, "buildDefinition")
    ext = obj(bd, "externalParameters")
    deps = (
        [d for d in (bd.get("resolvedDependencies") or []) if isinstance(d, dict)]
        if isinstance(bd.get("resolvedDependencies"), list)
        else []
    )

    def dep(prefix: str) -> str:
        for d in deps:
            if str(d.get("uri", "")).startswith(prefix):
                return f"{d['uri']} sha256:{obj(d, 'digest').get('sha256', '?')}"
        return "?"

    builder = obj(obj(predicate, "runDetails"), "builder")
    return Summary(
        image=str(ext.get("image", "?")),
        platform=str(ext.get("platform", "?")),
        recipe=dep("nbpipe:recipe/").rsplit(" ", 1)[-1],
        root=dep("oci:"),
        source=str(obj(ext, "source").get("repository", "")),
        revision=str(obj(ext, "source").get("revision", "")),
        builder=f"{builder.get('id', '?')} "
        + " ".join(f"{k} {v}" for k, v in obj(builder, "version").items()),
        locked=sum(1 for d in deps if str(d.get("uri", "")).startswith("pkg:")),
        parameters=obj(bd, "internalParameters"),
    )
