"""Signed images, SBOM and provenance in a real registry (Debian's docker-registry on
127.0.0.1), and the audit of real images: small images on base, never jupyter-scipy.

Debian's podman and skopeo cannot check sigstore signatures ("Debian-local change:
sigstore disabled"); where Go and its module proxy are reachable, policycheck/ (upstream
containers/image 5.23.1, what podman 4.3 and CRI-O link) checks the same signatures with a
policy.json ``sigstoreSigned`` requirement, as a node would."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import anyio
import httpx
import pytest

from nbpipe.engines.registry import Registry
from nbpipe.family.jupyter import python_venv
from nbpipe.run.pipeline import Pipeline
from nbpipe.supply import audit, sbom, signing
from nbpipe.supply.sigstore import verify

from .test_publish import SCRIPT, _start, publish

pytestmark = pytest.mark.engine
POLICYCHECK = Path(__file__).parent / "policycheck"


@pytest.fixture(scope="module")
def registry(tmp_path_factory):
    d = tmp_path_factory.mktemp("reg")
    yield Registry.parse(_start(d / "reg"))
    subprocess.run(["bash", str(SCRIPT), "stop", str(d / "reg")], capture_output=True)


@pytest.fixture(scope="module")
def keys(tmp_path_factory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("keys")
    signing.generate(d / "ours", b"ci-secret")
    signing.generate(d / "theirs", b"")
    return {"ours": d / "ours", "theirs": d / "theirs"}


def _pub(keys, which: str) -> signing.PublicKey:
    return signing.load_public_key(Path(f"{keys[which]}.pub"))


@pytest.fixture(scope="module")
def signed(local_family, engine, platform, options, state_dir, registry, keys):
    """A small image on base, published and signed with our key."""
    cat = local_family
    cat.add("sc-signed", "base", lambda i: i.with_env("SUPPLY", "signed"))
    key = signing.load_signing_key(f"{keys['ours']}.key", b"ci-secret")
    res = publish(
        cat,
        ["sc-signed"],
        engine,
        registry,
        platforms=(platform,),
        options=options,
        state_dir=state_dir,
        native=platform,
        sign_key=key,
    )[0]
    return res


def _skopeo_copy(src: str, dest: str) -> None:
    subprocess.run(
        [
            "skopeo",
            "--insecure-policy",
            "copy",
            "--src-tls-verify=false",
            "--dest-tls-verify=false",
            "--preserve-digests",
            "--multi-arch",
            "all",
            f"docker://{src}",
            f"docker://{dest}",
        ],
        check=True,
        capture_output=True,
        timeout=300,
    )


def test_signed_image_verifies_with_sbom_and_provenance_from_the_registry(
    signed, local_family, platform, keys
) -> None:
    v = verify(signed.ref, _pub(keys, "ours"), registry=Registry.parse(signed.repo.split("/")[0]))
    assert v.ok, v.first_failure
    # the list and its platform image, each signed; that image's provenance and SBOM
    assert [f.what for f in v.findings] == ["signature", "signature", "provenance", "sbom"]
    (prov,) = v.provenance
    img = local_family.resolve("sc-signed")
    assert prov.recipe == img.digest(platform)
    assert prov.root.endswith(img.root.digest(platform))
    assert (prov.image, prov.platform) == ("sc-signed", platform)
    assert prov.locked > 0  # base's locked apt closure
    # the SBOM fetched back (signed, attached to the digest) is the one built locally
    (doc,) = v.sboms
    assert doc == json.loads(signed.sboms[0].read_text())
    assert {"bash", "s6"} <= {c["name"] for c in doc["components"]}


def test_publishing_again_keeps_the_signatures(
    signed, local_family, engine, platform, options, state_dir, registry, keys
) -> None:
    key = signing.load_signing_key(f"{keys['ours']}.key", b"ci-secret")
    again = publish(
        local_family,
        ["sc-signed"],
        engine,
        registry,
        platforms=(platform,),
        options=options,
        state_dir=state_dir,
        native=platform,
        sign_key=key,
    )[0]
    assert again.digest == signed.digest and again.signed.startswith("already signed")
    raw = subprocess.run(
        [
            "skopeo",
            "inspect",
            "--raw",
            "--tls-verify=false",
            f"docker://{signed.repo}:sha256-{signed.digest[7:]}.sig",
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert len(json.loads(raw)["layers"]) == 1


def test_another_key_fails(signed, keys) -> None:
    v = verify(signed.ref, _pub(keys, "theirs"))
    assert not v.ok and v.first_failure.startswith("signed by another key:")


def test_unsigned_image_fails(
    local_family, engine, platform, options, state_dir, registry, keys
) -> None:
    local_family.add("sc-unsigned", "base", lambda i: i.with_env("SUPPLY", "unsigned"))
    res = publish(
        local_family,
        ["sc-unsigned"],
        engine,
        registry,
        platforms=(platform,),
        options=options,
        state_dir=state_dir,
        native=platform,
    )[0]
    v = verify(res.ref, _pub(keys, "ours"))
    assert v.first_failure.startswith("unsigned:"), v.first_failure
    # publishing it again with the key uploads no image, and signs what is there
    key = signing.load_signing_key(f"{keys['ours']}.key", b"ci-secret")
    again = publish(
        local_family,
        ["sc-unsigned"],
        engine,
        registry,
        platforms=(platform,),
        options=options,
        state_dir=state_dir,
        native=platform,
        sign_key=key,
    )[0]
    assert not again.uploaded and again.digest == res.digest
    assert again.signed.startswith("signed with") and verify(res.ref, _pub(keys, "ours")).ok


def test_repushed_image_with_another_digest_fails(
    signed, local_family, engine, platform, options, state_dir, registry, keys
) -> None:
    """Someone pushes other content under the signed image's tag, and copies the genuine
    signature and attestations onto the new digest: both are refused."""
    local_family.add("sc-evil", "base", lambda i: i.with_env("SUPPLY", "evil"))
    evil = publish(
        local_family,
        ["sc-evil"],
        engine,
        registry,
        platforms=(platform,),
        options=options,
        state_dir=state_dir,
        native=platform,
    )[0]
    ctag = signed.tags[0]
    _skopeo_copy(evil.ref, f"{signed.repo}:{ctag}")  # the tag now names other content
    moved = registry.digest(f"{signed.repo}:{ctag}", None)
    assert moved != signed.digest
    v = verify(f"{signed.repo}@{moved}", _pub(keys, "ours"))
    assert v.first_failure.startswith("unsigned:"), v.first_failure
    arch = platform.split("/")[1]
    evil_arch = registry.digest(f"{evil.repo}:{evil.tags[0]}-{arch}", None)
    genuine_arch = signed.platform_digests[platform]
    _skopeo_copy(
        f"{signed.repo}:sha256-{signed.digest[7:]}.sig", f"{signed.repo}:sha256-{moved[7:]}.sig"
    )
    for suffix in ("sig", "att"):
        _skopeo_copy(
            f"{signed.repo}:sha256-{genuine_arch[7:]}.{suffix}",
            f"{signed.repo}:sha256-{evil_arch[7:]}.{suffix}",
        )
    v = verify(f"{signed.repo}@{moved}", _pub(keys, "ours"))
    assert v.first_failure == (
        f"signature for another digest: the key signed {signed.digest}, this image is {moved}"
    )
    lines = [f.line for f in v.findings if not f.ok]
    assert any("provenance for another digest" in line for line in lines), lines
    assert any("sbom for another digest" in line for line in lines), lines
    _skopeo_copy(f"{signed.repo}@{signed.digest}", f"{signed.repo}:{ctag}")  # put it back
    assert verify(signed.ref, _pub(keys, "ours")).ok


def _policycheck(tmp: Path) -> Path:
    go = shutil.which("go")
    if go is None:
        pytest.skip(
            "no Go toolchain: containers/image's own policy check cannot be built "
            "(Debian's podman/skopeo have sigstore disabled)"
        )
    out = tmp / "policycheck"
    env = {**os.environ, "GOFLAGS": "-mod=mod", "CGO_ENABLED": "0"}
    r = subprocess.run(
        [
            go,
            "build",
            "-tags",
            "containers_image_openpgp "
            "exclude_graphdriver_btrfs exclude_graphdriver_devicemapper "
            "containers_image_storage_stub",
            "-o",
            str(out),
            ".",
        ],
        cwd=POLICYCHECK,
        capture_output=True,
        text=True,
        env=env,
        timeout=1500,
    )
    if r.returncode != 0:
        pytest.skip(
            f"cannot build policycheck (Go module proxy unreachable?): "
            f"{r.stderr.strip().splitlines()[-1] if r.stderr.strip() else r.returncode}"
        )
    return out


def test_containers_image_policy_admits_what_nbpipe_signed(
    signed, registry, keys, tmp_path
) -> None:
    """The admission side as podman/CRI-O do it: a sigstoreSigned requirement on our public
    key, signatures read from the registry's sigstore attachments."""
    tool = _policycheck(tmp_path)
    regd = tmp_path / "registries.d"
    regd.mkdir()
    (regd / "default.yaml").write_text("default-docker:\n  use-sigstore-attachments: true\n")

    def policy(which: str) -> Path:
        p = tmp_path / f"policy-{which}.json"
        p.write_text(
            json.dumps(
                {
                    "default": [{"type": "reject"}],
                    "transports": {
                        "docker": {
                            registry.host: [
                                {
                                    "type": "sigstoreSigned",
                                    "keyPath": f"{keys[which]}.pub",
                                    "signedIdentity": {"type": "matchRepository"},
                                }
                            ]
                        }
                    },
                }
            )
        )
        return p

    def check(which: str, ref: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(tool), str(policy(which)), str(regd), f"docker://{ref}"],
            capture_output=True,
            text=True,
            timeout=120,
        )

    for ref in (
        signed.ref,
        f"{signed.repo}@{signed.platform_digests[next(iter(signed.platform_digests))]}",
    ):
        r = check("ours", ref)
        assert r.returncode == 0 and r.stdout.strip() == "allowed", r.stdout + r.stderr
    r = check("theirs", signed.ref)
    assert r.returncode == 1 and "verification failed" in r.stdout.lower(), r.stdout


# -- the audit of real images -----------------------------------------------------------


def _pypi_reachable() -> None:
    try:
        r = httpx.get(f"{audit.PYPI}/six/json", timeout=15)  # trusts $SSL_CERT_FILE
    except httpx.HTTPError as exc:
        pytest.skip(f"PyPI is not reachable: {exc}")
    if r.status_code != 200:
        pytest.skip(f"PyPI answered HTTP {r.status_code}")


@pytest.mark.parametrize("pin, vulnerable", [("ecdsa==0.19.2", True), ("six==1.17.0", False)])
def test_audit_finds_a_planted_vulnerable_pin_and_passes_a_clean_one(
    local_family, engine, platform, options, state_dir, pin, vulnerable
) -> None:
    """ecdsa 0.19.2 carries GHSA-wj6h-64fc-37mp (Minerva timing attack; no fix): PyPI
    publishes it; six 1.17.0 has no advisory."""
    _pypi_reachable()
    name = f"sc-audit-{pin.split('==')[0]}"
    local_family.add(name, "base", lambda i: i.with_(python_venv()).with_pip(pin))
    pipe = Pipeline.local(local_family, engine, platform, options, state_dir=state_dir, probe=False)
    r = {x.name: x for x in anyio.run(pipe.run, [name])}[name]
    assert r.ok, r.message
    doc = {"components": sbom.components(engine, r.ref)}
    report = audit.audit(name, doc)
    ids = {f.advisory.id for f in report.findings}
    pkg = pin.split("==")[0]
    if vulnerable:
        assert "GHSA-wj6h-64fc-37mp" in ids and report.fails("high")
    else:
        assert not report.fails("low"), report.findings
        assert not any(u.package.name == pkg for res in report.results for u in res.unchecked)
    assert any(res.ecosystem == "deb" and "not reachable" in res.note for res in report.results)
