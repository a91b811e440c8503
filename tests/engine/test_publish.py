"""Publishing to a real OCI registry (Debian's docker-registry on 127.0.0.1): manifest
lists, content tags as a binary cache, all-or-nothing, credentials."""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
from pathlib import Path

import pytest

from nbpipe import family as images
from nbpipe.engines import rootfs
from nbpipe.engines.registry import PASSWORD_ENV, USER_ENV, Registry
from nbpipe.errors import NbpipeError
from nbpipe.recipe import platforms as plat
from nbpipe.recipe.naming import content_tag
from nbpipe.run.publish import spawner_options

pytestmark = pytest.mark.engine

SCRIPT = Path(__file__).parents[2] / ".ci" / "setup-registry.sh"


def publish(catalog, names, engine, registry, *, state_dir, native, **kw):
    """The publish of a machine whose native platform is ``native``, on ``engine``."""
    from nbpipe.run.machine import Machine
    from nbpipe.run.publish import publish as publish_on
    from nbpipe.run.settings import Settings

    settings = Settings(state_dir=state_dir)
    machine = Machine(catalog, native, None, engine, None, settings=settings)
    return publish_on(machine, names, registry, settings=settings, **kw)


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _start(tmp: Path, *extra: str) -> str:
    if shutil.which("docker-registry") is None:
        pytest.skip("Debian's docker-registry is not installed (bash .ci/setup installs it)")
    if shutil.which("skopeo") is None:
        pytest.skip("skopeo is not installed (bash .ci/setup installs it)")
    port = _port()
    subprocess.run(
        ["bash", str(SCRIPT), "start", str(port), str(tmp), *extra],
        check=True,
        capture_output=True,
        timeout=120,
    )
    return f"127.0.0.1:{port}"


@pytest.fixture()
def registry(tmp_path):
    address = _start(tmp_path / "reg")
    yield Registry.parse(address)
    subprocess.run(["bash", str(SCRIPT), "stop", str(tmp_path / "reg")], capture_output=True)


@pytest.fixture()
def auth_registry(tmp_path, monkeypatch):
    address = _start(tmp_path / "reg", "--htpasswd", "team:s3cret-pw")
    yield Registry.parse(address)
    subprocess.run(["bash", str(SCRIPT), "stop", str(tmp_path / "reg")], capture_output=True)


def _inspect_raw(ref: str, *flags: str) -> dict:
    r = subprocess.run(
        ["skopeo", "inspect", "--raw", "--tls-verify=false", *flags, f"docker://{ref}"],
        capture_output=True,
        text=True,
        check=True,
    )
    return json.loads(r.stdout)


def test_publish_jupyter_then_again_uploads_nothing(
    local_family, engine, platform, options, state_dir, chain, registry
) -> None:
    first = publish(
        local_family,
        ["jupyter"],
        engine,
        registry,
        platforms=(platform,),
        options=options,
        state_dir=state_dir,
        native=platform,
        latest=True,
    )[0]
    assert first.uploaded and first.digest.startswith("sha256:")
    # written out, not computed by the function under test: sha- and the first 16 hex of
    # the digest over every platform the recipe has
    ctag = "sha-" + local_family.resolve("jupyter").digest().removeprefix("sha256:")[:16]
    assert first.tags[0] == ctag
    assert "python-3.11" in first.tags and any(t.startswith("lab-4.5.") for t in first.tags)
    assert "latest" in first.tags
    index = _inspect_raw(f"{registry.repo('jupyter')}:{ctag}")
    assert [m["platform"]["architecture"] for m in index["manifests"]] == [platform.split("/")[1]]
    for tag in first.tags:  # every tag points at the same list
        assert registry.digest(f"{registry.repo('jupyter')}:{tag}", None) == first.digest
    sbom = json.loads(first.sboms[0].read_text())
    names = {c["name"] for c in sbom["components"]}
    assert {"jupyterlab", "python3.11", "s6"} <= names
    again = publish(
        local_family,
        ["jupyter"],
        engine,
        registry,
        platforms=(platform,),
        options=options,
        state_dir=state_dir,
        native=platform,
        latest=True,
    )[0]
    assert not again.uploaded and again.digest == first.digest
    assert "nothing uploaded" in again.message
    fragment = spawner_options(local_family, registry)
    # a block to paste under spawnerFormDefaults, the ref as repo:tag@digest (issue 25)
    assert (
        f"  image:\n    value: {registry.repo('jupyter')}:"
        f"{content_tag(local_family.resolve('jupyter'))}@{first.digest}"
    ) in fragment
    assert "not published (left out):" in fragment and "jupyter-scipy" in fragment


def test_change_publishes_only_the_changed_image(
    local_family, engine, platform, options, state_dir, chain, registry
) -> None:
    cat = local_family
    cat.add("pub-leaf", "base", lambda i: i.with_env("LEAF", "1"))
    first = publish(
        cat,
        ["pub-leaf"],
        engine,
        registry,
        platforms=(platform,),
        options=options,
        state_dir=state_dir,
        native=platform,
    )[0]
    cat.entries.pop("pub-leaf")
    cat.add("pub-leaf", "base", lambda i: i.with_env("LEAF", "2"))
    events: list[tuple[str, str]] = []
    second = publish(
        cat,
        ["pub-leaf"],
        engine,
        registry,
        platforms=(platform,),
        options=options,
        state_dir=state_dir,
        native=platform,
        on_event=lambda n, w: events.append((n, w)),
    )[0]
    assert second.uploaded and second.digest != first.digest and second.tags[0] != first.tags[0]
    assert ("base", "cached: already built, nothing to do") in events
    assert not any(n == "base" and w.startswith("pushing") for n, w in events)
    assert registry.digest(f"{registry.repo('pub-leaf')}:{first.tags[0]}", None) == first.digest


def test_zstd_layers_when_asked_and_recorded(
    local_family, engine, platform, options, state_dir, chain, registry
) -> None:
    cat = local_family
    cat.add("pub-zstd", "base", lambda i: i.with_env("ZSTD", "1"))
    res = publish(
        cat,
        ["pub-zstd"],
        engine,
        registry,
        platforms=(platform,),
        options=options,
        state_dir=state_dir,
        native=platform,
        compression="zstd",
    )[0]
    arch = f"{registry.repo('pub-zstd')}:{res.tags[0]}-{platform.split('/')[1]}"
    layers = _inspect_raw(arch)["layers"]
    assert layers and all(m["mediaType"].endswith("+zstd") for m in layers), layers
    assert res.compression == "zstd"
    again = publish(
        cat,
        ["pub-zstd"],
        engine,
        registry,
        platforms=(platform,),
        options=options,
        state_dir=state_dir,
        native=platform,
    )[0]  # default gzip: nothing re-pushed
    assert not again.uploaded and again.compression == "zstd"
    assert "its layers are zstd" in again.message
    with pytest.raises(NbpipeError, match="--compression lz4"):
        publish(
            cat,
            ["pub-zstd"],
            engine,
            registry,
            platforms=(platform,),
            options=options,
            state_dir=state_dir,
            native=platform,
            compression="lz4",
        )


def test_two_platforms_in_one_list(
    local_family, engine, platform, options, state_dir, chain, registry
) -> None:
    other = plat.ARM64 if platform == plat.AMD64 else plat.AMD64
    if rootfs.local_root(engine, (other,)) is None:
        pytest.skip(
            f"no local root for {other} (needs qemu: bash .ci/setup-emulation.sh, then "
            f"nbpipe base bootstrap --platform {other})"
        )
    cat = images.family().rebased(rootfs.local_root(engine))  # the root for both platforms
    res = publish(
        cat,
        ["base"],
        engine,
        registry,
        platforms=None,
        options=options,
        state_dir=state_dir,
        native=platform,
    )[0]
    index = _inspect_raw(f"{registry.repo('base')}:{res.tags[0]}")
    assert sorted(m["platform"]["architecture"] for m in index["manifests"]) == ["amd64", "arm64"]
    for m in index["manifests"]:  # each entry's image really is for its platform
        config = json.loads(
            subprocess.run(
                [
                    "skopeo",
                    "inspect",
                    "--config",
                    "--tls-verify=false",
                    f"docker://{registry.repo('base')}@{m['digest']}",
                ],
                capture_output=True,
                text=True,
                check=True,
            ).stdout
        )
        assert config["architecture"] == m["platform"]["architecture"]
        assert config["config"]["Labels"]["io.nbpipe.image"] == "base"
    labels = json.loads(
        subprocess.run(
            [
                "skopeo",
                "inspect",
                "--tls-verify=false",
                f"docker://{registry.repo('base')}:{res.tags[0]}",
            ],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
    )["Labels"]
    assert labels["io.nbpipe.image"] == "base"


def test_wrong_password_is_a_clear_error_and_nothing_is_pushed(
    local_family, engine, platform, options, state_dir, chain, auth_registry, monkeypatch
) -> None:
    monkeypatch.setenv(USER_ENV, "team")
    monkeypatch.setenv(PASSWORD_ENV, "wrong-password")
    with pytest.raises(NbpipeError) as exc:
        publish(
            local_family,
            ["base"],
            engine,
            auth_registry,
            platforms=(platform,),
            options=options,
            state_dir=state_dir,
            native=platform,
        )
    assert "unauthorized" in str(exc.value).lower() or "authentication" in str(exc.value).lower()
    assert "wrong-password" not in str(exc.value)
    monkeypatch.setenv(PASSWORD_ENV, "s3cret-pw")
    with auth_registry.authfile() as auth:
        assert (
            auth_registry.digest(
                f"{auth_registry.repo('base')}:"
                f"sha-{local_family.resolve('base').digest().removeprefix('sha256:')[:16]}",
                auth,
            )
            is None
        )
    ok = publish(
        local_family,
        ["base"],
        engine,
        auth_registry,
        platforms=(platform,),
        options=options,
        state_dir=state_dir,
        native=platform,
    )[0]
    assert ok.uploaded


def test_the_package_store_travels_beside_the_image_and_comes_back_checked(
    registry, tmp_path
) -> None:
    """`publish` pushes an image's pinned .debs as `<content tag>-<arch>.debs` (layers are
    the .debs, digests their lock sha256); `build --registry` pulls them into an empty store,
    each checked; only what the store lacks is fetched (issue 19)."""
    import hashlib

    from nbpipe.recipe.image import BaseRef, Image
    from nbpipe.recipe.steps import Apt
    from nbpipe.supply import debs

    files = {name: f"not really a .deb: {name}\n".encode() * 50 for name in ("aa", "bb")}
    sha = {n: hashlib.sha256(b).hexdigest() for n, b in files.items()}
    locked = "".join(f"{n}=1.0-1@sha256:{sha[n]}\n" for n in files)
    root = BaseRef("example.org/root", {plat.AMD64: "sha256:" + "1" * 64})
    img = Image.from_base(root, "t").with_step(Apt(packages=("aa", "bb"), locked=locked))
    store = tmp_path / "store"
    store.mkdir()
    for n, data in files.items():
        (store / f"{sha[n]}.deb").write_bytes(data)
    with registry.authfile() as auth:
        assert debs.push(registry, img, plat.AMD64, store, auth) == 2
        assert debs.push(registry, img, plat.AMD64, store, auth) == 2  # there: not again
        raw = _inspect_raw(f"{registry.repo('t')}:{debs.tag(img, plat.AMD64)}")
        assert [x["digest"] for x in raw["layers"]] == sorted(f"sha256:{s}" for s in sha.values())
        assert {x["mediaType"] for x in raw["layers"]} == {debs.MEDIA}
        empty = tmp_path / "empty"
        assert debs.pull(registry, img, plat.AMD64, empty, auth) == 2
        assert {p.name: p.read_bytes() for p in empty.iterdir()} == {
            f"{sha[n]}.deb": files[n] for n in files
        }
        assert debs.pull(registry, img, plat.AMD64, empty, auth) == 0  # nothing lacking
        other = Image.from_base(root, "u").with_step(
            Apt(packages=("aa",), locked=locked.splitlines()[0])
        )
        assert debs.pull(registry, other, plat.AMD64, tmp_path / "none", auth) == 0  # unpublished
