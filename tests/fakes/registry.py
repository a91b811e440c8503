"""A registry and an engine that pushes to it, for offline tests of publishing: a fake
podman and a fake skopeo on PATH (tests/fakes/container_cli.py). ``registry_fake`` makes the fake
(no registry credentials from the environment, probes that pass); ``engine_with`` gives a
podman whose store holds some images of a catalog; ``registry_has`` makes the registry
answer some refs and nothing else."""

from __future__ import annotations

import hashlib
import json

from nbpipe.engines.oci import ImageInfo, OciEngine
from nbpipe.engines.registry import PASSWORD_ENV, USER_ENV, Registry
from nbpipe.probes.result import ProbeResult, Status
from nbpipe.probing import prober
from nbpipe.recipe import contract
from nbpipe.recipe import platforms as plat
from nbpipe.recipe.catalog import Catalog
from nbpipe.recipe.image import BaseRef
from nbpipe.recipe.naming import local_ref
from tests.fakes.container_cli import Fake

ROOT = BaseRef(
    "example.org/root", {plat.AMD64: "sha256:" + "1" * 64, plat.ARM64: "sha256:" + "2" * 64}
)
REG = Registry.parse("127.0.0.1:5000/team/")
LIST = "sha256:" + "7" * 64
VERSIONS = '{"python": "3.11", "lab": "4.5.11"}\n'


def small() -> Catalog:
    cat = Catalog()
    cat.add(
        "t", ROOT, lambda img: img.with_env("T", "1").with_label(contract.LABEL_SERVER, "jupyter")
    )
    cat.add("u", "t", lambda img: img.with_env("U", "1"))
    cat.add("c", ROOT, lambda img: img.with_label(contract.LABEL_SERVER, "codeserver"))
    cat.add("r", ROOT, lambda img: img.with_env("R", "1"))
    return cat


def registry_fake(tmp_path, monkeypatch) -> Fake:
    """What a test's ``fake`` fixture returns (test_publish.py, test_cli_platform.py)."""
    for var in (USER_ENV, PASSWORD_ENV, "REGISTRY_AUTH_FILE", "DOCKER_CONFIG", "NBPIPE_RUNTIME"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.setattr(
        prober,
        "probe",
        lambda engine, ref, **kw: ([ProbeResult("http-ready", Status.PASSED, "200")], ""),
    )
    return Fake(tmp_path / "cli", monkeypatch, "podman", "skopeo")


def engine_with(
    fake: Fake, cat: Catalog, built: dict[str, tuple[str, ...]], monkeypatch
) -> OciEngine:
    """A podman whose store holds ``built`` (name -> platforms) of ``cat``."""
    store = {
        local_ref(cat.resolve(n), p): ImageInfo(
            local_ref(cat.resolve(n), p),
            "sha256:" + hashlib.sha256(f"{n}{p}".encode()).hexdigest(),
            1,
            {},
            "",
        )
        for n, ps in built.items()
        for p in ps
    }
    monkeypatch.setattr(OciEngine, "images", lambda self: store)
    fake.on("image", "inspect", stdout=json.dumps([{"Id": "sha256:" + "ab" * 32, "Size": 1}]))
    fake.on("run", has=("--entrypoint", "python3"), stdout=VERSIONS)
    fake.on("run", stdout="deb\tbash\t5.2\tamd64\npypi\tnumpy\t2.0\t\n")
    fake.on("push", write={"--digestfile": "sha256:" + "9" * 64})
    fake.on("manifest", "push", write={"--digestfile": LIST})
    fake.on("manifest")
    fake.on("build", rc=1, stdout="STEP 1/2: FROM x\nError: no space left on device\n")
    return OciEngine("podman", fake.paths["podman"])


def registry_has(fake: Fake, refs: dict[str, bytes]) -> None:
    """The fake registry answers these refs with these manifest bytes; nothing else."""
    for ref, raw in refs.items():
        fake.on("inspect", has=(f"docker://{ref}",), stdout=raw.decode())
    fake.on("inspect", rc=1, stderr="Error: manifest unknown\n")
