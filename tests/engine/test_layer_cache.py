"""Layers shared between runners (issue 23, item 3), for real: one loopback registry
(Debian's docker-registry), two podman stores. The first store builds a small image on
base with --cache-registry and pushes its layers and the finished image; a SECOND, empty
store (a fresh runner: only base, loaded) builds the same recipe and pulls the finished
image instead of running the steps; a changed recipe gets the unchanged step's layer
from buildah's step cache, never the old image nor the old changed layer; a forged
entry (another image under a recipe's key) is dropped and the recipe built.

"Did not run" is shown by a side effect: each RUN step writes a fresh random nonce (and
the first also sleeps), so a step that ran again would leave another nonce and take the
sleep's time; a pulled layer has the first store's nonce, byte for byte."""

from __future__ import annotations

import subprocess
import tempfile
import time
import uuid
from pathlib import Path

import pytest

from nbpipe.engines import image_cache
from nbpipe.engines.oci import OciEngine
from nbpipe.engines.registry import Registry
from nbpipe.recipe.catalog import Catalog
from nbpipe.recipe.image import BaseRef
from nbpipe.recipe.options import BuildOptions
from nbpipe.run.backends import Local as Backend
from nbpipe.run.settings import Settings
from tests.engine.conftest import run_pipeline
from tests.engine.test_publish import SCRIPT, _start

pytestmark = pytest.mark.engine

NAME = "cachedemo"
SLEEP = 8  # seconds the first RUN step takes when it really runs


@pytest.fixture()
def registry(tmp_path):
    address = _start(tmp_path / "reg")
    yield Registry.parse(f"{address}/team")
    subprocess.run(["bash", str(SCRIPT), "stop", str(tmp_path / "reg")], capture_output=True)


def demo(family: Catalog, token: str, last: str) -> Catalog:
    """base + two RUN steps; ``token`` makes the recipe this run's own (no layer of an
    earlier run in the local store), ``last`` is the second step's variant."""
    root = family.entry("base").parent
    assert isinstance(root, BaseRef)
    cat = family.rebased(root)
    nonce = "cat /proc/sys/kernel/random/uuid >"
    cat.add(
        NAME,
        "base",
        lambda img: (
            img.with_env("NBPIPE_CACHE_TEST", token)
            .with_run(f"{nonce} /tmp/nonce-a && sleep {SLEEP}")
            .with_run(f"{nonce} /tmp/nonce-b && echo {last} > /tmp/variant")
        ),
    )
    return cat


def nonces(engine: OciEngine, ref: str) -> tuple[str, str]:
    r = engine.run_once(ref, ["cat", "/tmp/nonce-a", "/tmp/nonce-b"])
    assert r.returncode == 0, r.stderr
    a, b = r.stdout.split()
    return a, b


def test_a_fresh_store_pulls_the_layers_another_store_pushed(
    local_family, engine, platform, state_dir, registry, tmp_path
) -> None:
    if engine.kind != "podman":
        pytest.skip("the registry layer cache is podman/buildah's (--cache-from/--cache-to)")
    token = uuid.uuid4().hex
    settings = Settings(cache_registry=registry.address)
    options = BuildOptions()
    cat = demo(local_family, token, "one")
    base_ref = run_pipeline(cat, engine, platform, options, state_dir, ["base"], probe=False)[
        "base"
    ].ref

    # 1. This machine's store: built, every step's layer pushed to <registry>/cachedemo-cache.
    start = time.monotonic()
    first = run_pipeline(
        cat, engine, platform, options, tmp_path / "s1", [NAME], probe=False, settings=settings
    )[NAME]
    cold = time.monotonic() - start
    assert first.ok, first.message
    log1 = (tmp_path / "s1/logs" / f"{NAME}-{platform.split('/')[1]}.log").read_text()
    assert f"--cache-to {registry.address}/{NAME}-cache" in log1
    assert log1.count("--> Pushing cache") >= 3, log1[-2000:]
    built_id = engine.inspect(first.ref).id
    first_nonces = nonces(engine, first.ref)

    # 2. A fresh store (a new runner): only base, loaded as an OCI archive (the same
    # manifest type as built: buildah's key has it; a docker-archive load only misses).
    graph = Path(tempfile.mkdtemp(prefix="nbpipe-cache-", dir="/var/tmp"))  # short run root
    fresh = OciEngine(engine.kind, engine.binary, engine.runtime, graph_root=str(graph))
    tar = tmp_path / "base.tar"
    engine._run(["save", "--format", "oci-archive", "-o", str(tar), base_ref])
    fresh._run(["load", "-i", str(tar)])
    try:
        assert not fresh.exists(first.ref)
        start = time.monotonic()
        events: list[tuple[str, str]] = []
        second = run_pipeline(
            cat,
            fresh,
            platform,
            options,
            tmp_path / "s2",
            [NAME],
            probe=False,
            settings=settings,
            on_event=lambda n, w: events.append((n, w)),
        )[NAME]
        warm = time.monotonic() - start
        assert second.ok, second.message
        assert second.status == "built"  # built here: not in this store before
        log2 = (tmp_path / "s2/logs" / f"{NAME}-{platform.split('/')[1]}.log").read_text()
        assert "image cache: pulled the finished image" in log2, log2[-2000:]
        # pulled ahead (the top of the chain, before any build), then fetched as its own
        ahead = [w for n, w in events if n == NAME and w.startswith("pulled ahead")]
        assert ahead, events
        assert events.index((NAME, ahead[0])) < events.index((NAME, "building with podman"))
        # the steps did not run: the first store's nonces, the same image, faster
        assert nonces(fresh, second.ref) == first_nonces
        assert fresh.inspect(second.ref).id == built_id
        assert warm < SLEEP < cold, (warm, cold)
        print(f"\nimage cache: cold {cold:.1f} s, from the cache registry {warm:.1f} s")

        # 3. A changed recipe (the second step): no finished image under its key, so it
        # builds; buildah's step cache serves the first step's layer, never the old
        # second one: that step runs, and its layer is this recipe's own.
        changed = demo(local_family, token, "two")
        third = run_pipeline(
            changed,
            fresh,
            platform,
            options,
            tmp_path / "s3",
            [NAME],
            probe=False,
            settings=settings,
        )[NAME]
        assert third.ok, third.message
        assert third.ref != second.ref  # another digest
        a, b = nonces(fresh, third.ref)
        assert a == first_nonces[0] and b != first_nonces[1]
        r = fresh.run_once(third.ref, ["cat", "/tmp/variant"])
        assert r.stdout.strip() == "two"
        log3 = (tmp_path / "s3/logs" / f"{NAME}-{platform.split('/')[1]}.log").read_text()
        assert "image cache: no finished image" in log3, log3[-2000:]
        assert "--> Cache pulled from remote" in log3, log3[-2000:]  # step a's layer
        assert "--> Pushing cache" in log3, log3[-2000:]  # the changed step ran, and is shared
        assert "image cache: pushed the finished image" in log3, log3[-2000:]

        # 4. A forged entry: recipe "three"'s key made to hold the image of recipe "one".
        # The pull says it is another recipe: dropped, and "three" is built here.
        forged = demo(local_family, token, "three")
        image = forged.resolve(NAME)
        backend = Backend(fresh, options, settings)
        with backend.layer_cache(NAME) as cache:
            assert cache is not None
            dest = image_cache.remote(cache.repo, backend.cache_key(image, platform))
            fresh.push(second.ref, f"docker://{dest}", cache.flags)
        fourth = run_pipeline(
            forged,
            fresh,
            platform,
            options,
            tmp_path / "s4",
            [NAME],
            probe=False,
            settings=settings,
        )[NAME]
        assert fourth.ok, fourth.message
        log4 = (tmp_path / "s4/logs" / f"{NAME}-{platform.split('/')[1]}.log").read_text()
        assert "image cache: dropped" in log4 and image.digest(platform) in log4, log4[-2000:]
        r = fresh.run_once(fourth.ref, ["cat", "/tmp/variant"])
        assert r.stdout.strip() == "three"
        assert fresh.inspect(fourth.ref).labels["io.nbpipe.digest"] == image.digest(platform)
    finally:
        fresh.drop_store()  # never `system reset`: /run/libpod is the machine's
        engine.remove(first.ref)
