"""Build options, for real: the CA bundle is used during the build and absent from the
image (its files and its history); a wheelhouse really feeds pip."""

from __future__ import annotations

import re
import subprocess
import zipfile
from pathlib import Path

import pytest

from nbpipe.recipe import naming
from nbpipe.recipe.options import BuildOptions

from .conftest import HOST_CA, run_pipeline

pytestmark = pytest.mark.engine

PEM = re.compile(rb"-----BEGIN CERTIFICATE-----\n(.*?)-----END CERTIFICATE-----", re.S)


def certs(data: bytes) -> set[bytes]:
    return {m.group(1).replace(b"\n", b"") for m in PEM.finditer(data)}


def test_ca_bundle_is_not_in_the_image(chain, engine) -> None:
    if not HOST_CA.exists():
        pytest.skip(f"no {HOST_CA} on this machine to build with")
    ref = chain["jupyter"].ref
    # The certificates this machine added to its bundle (the intercepting proxy's CA):
    # in no public store, so finding one in the image can only mean the build leaked it.
    local = Path("/usr/local/share/ca-certificates")
    extra = (
        set().union(*(certs(f.read_bytes()) for f in local.glob("*.crt")))
        if local.is_dir()
        else set()
    )
    extra &= certs(HOST_CA.read_bytes())
    if not extra:
        pytest.skip("this machine added no CA of its own to its bundle: nothing to look for")
    # Every file of the image, as one tar stream, and its history: no extra CA anywhere.
    cid = subprocess.run(
        [engine.binary, "create", ref], capture_output=True, text=True, check=True
    ).stdout.strip()
    try:
        tar = subprocess.run([engine.binary, "export", cid], capture_output=True, check=True).stdout
    finally:
        subprocess.run([engine.binary, "rm", "-f", cid], capture_output=True)
    history = subprocess.run(
        [engine.binary, "history", "--no-trunc", ref], capture_output=True, check=True
    ).stdout
    for cert in extra:
        probe = cert[64:128]  # a distinctive slice of the certificate's base64
        assert probe not in tar.replace(b"\n", b""), "the build's CA bundle is in the image"
        assert probe not in history.replace(b"\n", b"")
    assert b"nbpipe-ca.crt" not in tar


def _wheel(folder: Path) -> Path:
    """A minimal pure-Python wheel that exists nowhere but here."""
    name, version = "nbpipe_wheelhouse_probe", "1.0"
    path = folder / f"{name}-{version}-py3-none-any.whl"
    dist = f"{name}-{version}.dist-info"
    with zipfile.ZipFile(path, "w") as z:
        z.writestr(f"{name}.py", "ANSWER = 42\n")
        z.writestr(f"{dist}/METADATA", f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n")
        z.writestr(
            f"{dist}/WHEEL",
            "Wheel-Version: 1.0\nGenerator: nbpipe-test\n"
            "Root-Is-Purelib: true\nTag: py3-none-any\n",
        )
        z.writestr(
            f"{dist}/RECORD", f"{name}.py,,\n{dist}/METADATA,,\n{dist}/WHEEL,,\n{dist}/RECORD,,\n"
        )
    return path


def test_wheelhouse_feeds_pip(
    local_family, engine, platform, options, state_dir, chain, tmp_path
) -> None:
    wheels = tmp_path / "wheels"
    wheels.mkdir()
    _wheel(wheels)
    cat = local_family
    cat.add(
        "wheel-probe",
        "jupyter",
        lambda i: i.with_pip("nbpipe-wheelhouse-probe==1.0").with_probes(
            imports=("nbpipe_wheelhouse_probe",)
        ),
    )
    ref = naming.local_ref(cat.resolve("wheel-probe"), platform)
    try:
        without = run_pipeline(
            cat, engine, platform, options, state_dir, ["wheel-probe"], probe=False
        )["wheel-probe"]
        assert (
            without.status == "failed"
            and "step failed: pip nbpipe-wheelhouse-probe" in without.message
        )
        assert not engine.exists(ref)
        opts = BuildOptions(ca_bundle=options.ca_bundle, wheelhouse=wheels)
        res = run_pipeline(cat, engine, platform, opts, state_dir, ["wheel-probe"])["wheel-probe"]
        assert res.status == "built", res.message
        imports = {p.name: p for p in res.probes}["imports"]
        assert imports.status.value == "passed" and "nbpipe_wheelhouse_probe" in imports.message
    finally:
        engine.remove(ref)
