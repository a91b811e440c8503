"""Publishing and registries, offline: a fake podman and a fake skopeo on PATH
(tests/fakes/container_cli.py) stand for the engine and the registry, so what is pushed, under
which tags, in which order, and what is left alone can be read from the calls."""

from __future__ import annotations

import hashlib
import json
import os
import stat
import time

import pytest

from nbpipe.engines.oci import OciEngine
from nbpipe.engines.registry import PASSWORD_ENV, USER_ENV, Registry
from nbpipe.errors import NbpipeError
from nbpipe.recipe import platforms as plat
from nbpipe.recipe.catalog import Catalog
from nbpipe.recipe.naming import content_tag, local_ref
from nbpipe.recipe.options import BuildOptions
from nbpipe.probes.result import ProbeResult, Status
from nbpipe.run.publish import spawner_options, version_tags
from tests.fakes.container_cli import Fake
from tests.fakes.registry import (
    LIST,
    REG,
    ROOT,
    engine_with,
    registry_fake,
    registry_has,
    small,
)


def publish(catalog, names, engine, registry, *, state_dir, native, **kw):
    """The publish of a machine whose native platform is ``native``, on ``engine``."""
    from nbpipe.run.machine import Machine
    from nbpipe.run.publish import publish as publish_on
    from nbpipe.run.settings import Settings

    settings = Settings(state_dir=state_dir)
    machine = Machine(catalog, native, None, engine, None, settings=settings)
    return publish_on(machine, names, registry, settings=settings, **kw)


@pytest.fixture()
def fake(tmp_path, monkeypatch) -> Fake:
    return registry_fake(tmp_path, monkeypatch)

def run(cat, names, engine, tmp_path, **kw):
    kw = {"platforms": None, "options": BuildOptions(), "state_dir": tmp_path / "state",
          "native": plat.AMD64, **kw}
    return publish(cat, names, engine, REG, **kw)


def test_publish_pushes_every_platform_then_one_list_under_every_tag(fake, tmp_path, monkeypatch) -> None:
    cat = small()
    engine = engine_with(fake, cat, {"t": plat.ALL}, monkeypatch)
    registry_has(fake, {})
    [res] = run(cat, ["t"], engine, tmp_path, extra_tags=("team", "lab-4.5.11"), latest=True)
    ctag = content_tag(cat.resolve("t"))
    repo = "127.0.0.1:5000/team/t"
    assert (res.name, res.repo, res.platforms) == ("t", repo, plat.ALL)
    assert res.tags == [ctag, "python-3.11", "lab-4.5.11", time.strftime("%Y%m%d", time.gmtime()),
                        "team", "latest"]
    assert (res.digest, res.uploaded, res.message) == (LIST, True, "published")
    assert res.ref == f"{repo}@{LIST}"
    assert [p.name for p in res.sboms] == ["t-amd64.cdx.json", "t-arm64.cdx.json"]
    calls = fake.calls("podman")
    pushes = [c for c in calls if c[0] == "push"]
    assert [(c[1], c[-2], c[-1]) for c in pushes] == [
        ("--tls-verify=false", local_ref(cat.resolve("t"), plat.AMD64),
         f"docker://{repo}:{ctag}-amd64"),
        ("--tls-verify=false", local_ref(cat.resolve("t"), plat.ARM64),
         f"docker://{repo}:{ctag}-arm64")]
    lists = [c[-1] for c in calls if c[:2] == ["manifest", "push"]]
    assert lists == [f"docker://{repo}:{t}" for t in res.tags]
    assert not [c for c in calls if c[0] == "build"]


def all_published(fake: Fake, monkeypatch, more: dict[str, bytes] | None = None
                  ) -> tuple[Catalog, OciEngine, bytes]:
    """`t` built for both platforms, and the registry already holding every tag a publish
    of it makes (per-platform, content, version and date tags), plus ``more``."""
    cat = small()
    engine = engine_with(fake, cat, {"t": plat.ALL}, monkeypatch)
    ctag = content_tag(cat.resolve("t"))
    repo = "127.0.0.1:5000/team/t"
    there = b'{"manifests": []}'
    registry_has(fake, {**{f"{repo}:{t}": there for t in (
        f"{ctag}-amd64", f"{ctag}-arm64", ctag, "python-3.11", "lab-4.5.11",
        time.strftime("%Y%m%d", time.gmtime()))}, **(more or {})})
    return cat, engine, there


def test_publishing_again_uploads_nothing(fake, tmp_path, monkeypatch) -> None:
    cat, engine, there = all_published(fake, monkeypatch)
    [res] = run(cat, ["t"], engine, tmp_path)
    assert res.uploaded is False and res.message.startswith("already published: nothing uploaded")
    assert res.digest == "sha256:" + hashlib.sha256(there).hexdigest()
    assert not [c for c in fake.calls("podman") if c[0] in ("push", "manifest")]


def test_publishing_again_with_latest_moves_only_latest(fake, tmp_path, monkeypatch) -> None:
    cat, engine, _ = all_published(fake, monkeypatch,
                                   {"127.0.0.1:5000/team/t:latest": b'{"an": "older list"}'})
    [res] = run(cat, ["t"], engine, tmp_path, latest=True)
    calls = fake.calls("podman")
    assert not [c for c in calls if c[0] == "push"]
    assert [c[-1] for c in calls if c[:2] == ["manifest", "push"]] == [
        "docker://127.0.0.1:5000/team/t:latest"]
    assert res.message.startswith("already published: nothing uploaded")


def test_a_failed_platform_pushes_nothing_and_blocks_what_is_built_on_it(fake, tmp_path, monkeypatch) -> None:
    cat = small()
    engine = engine_with(fake, cat, {"t": (plat.AMD64,), "u": plat.ALL}, monkeypatch)
    registry_has(fake, {})
    with pytest.raises(NbpipeError) as exc:
        run(cat, ["u", "t"], engine, tmp_path)
    msg = str(exc.value)
    assert msg.startswith("t for linux/arm64: failed: ")
    assert "Error: no space left on device" in msg and " - nothing was pushed" in msg
    assert msg.endswith("; u: not published: t was not")
    assert not [c for c in fake.calls("podman") if c[0] in ("push", "manifest")]


def test_publish_refuses_platforms_an_image_does_not_have(fake, tmp_path, monkeypatch) -> None:
    cat = Catalog()
    cat.add("a", ROOT, lambda img: img.with_platforms(plat.AMD64).with_env("A", "1"))
    with pytest.raises(NbpipeError) as exc:
        run(cat, ["a"], engine_with(fake, cat, {}, monkeypatch), tmp_path, platforms=(plat.ARM64,))
    assert str(exc.value) == "a is built for linux/amd64; none of those was asked for"


def test_version_tags_come_from_the_image_and_none_without_python(fake, monkeypatch) -> None:
    engine = engine_with(fake, small(), {}, monkeypatch)
    assert version_tags(engine, "img:1") == ["python-3.11", "lab-4.5.11"]
    fake.rules.insert(0, {"argv": ["run"], "rc": 127, "stdout": "", "stderr": "no python3",
                          "stdout_b64": "", "has": [], "write": {}, "record": []})
    fake.save()
    assert version_tags(engine, "img:1") == []


def test_spawner_options_list_published_images_by_digest(fake) -> None:
    cat = small()
    j = b'{"j": 1}'
    registry_has(fake, {f"127.0.0.1:5000/team/t:{content_tag(cat.resolve('t'))}": j})
    text = spawner_options(cat, REG)
    lines = text.splitlines()
    assert lines[0] == ("# nbpipe images published in 127.0.0.1:5000/team, as "
                        "repo:tag@sha256:digest.")
    digest = "sha256:" + hashlib.sha256(j).hexdigest()
    ref = f"127.0.0.1:5000/team/t:{content_tag(cat.resolve('t'))}@{digest}"
    # blocks to paste under the user's own spawnerFormDefaults (never a second one of it)
    assert lines[3:] == ["# not published (left out): c, u", "  image:",
                         f"    value: {ref}", "    options:", f"      - {ref}"]
    assert "spawnerFormDefaults" not in "".join(x for x in lines if not x.startswith("#"))
    assert text.endswith("\n")


def test_spawner_options_with_nothing_published_is_an_error(fake) -> None:
    registry_has(fake, {})
    with pytest.raises(NbpipeError) as exc:
        spawner_options(small(), REG)
    assert str(exc.value) == ("no image of the family is published in 127.0.0.1:5000/team: "
                              "run nbpipe publish first")


# -- the registry ----------------------------------------------------------------------
def test_registry_addresses() -> None:
    assert REG == Registry("127.0.0.1:5000/team", tls_verify=False)
    assert (REG.host, REG.repo("x")) == ("127.0.0.1:5000", "127.0.0.1:5000/team/x")
    assert Registry.parse("localhost:5000").tls_verify is False
    assert Registry.parse("ghcr.io/acme") == Registry("ghcr.io/acme", tls_verify=True)
    assert Registry.parse("ghcr.io/acme").flags(None) == ["--tls-verify=true"]
    with pytest.raises(NbpipeError) as exc:
        Registry.parse("https://ghcr.io/acme")
    assert str(exc.value) == "--registry https://ghcr.io/acme: give host[:port][/namespace], no scheme"


def test_credentials_from_the_environment_go_to_a_private_temporary_file(monkeypatch) -> None:
    monkeypatch.setenv(USER_ENV, "team")
    monkeypatch.setenv(PASSWORD_ENV, "s3cret-pw")
    reg = Registry.parse("ghcr.io/acme")
    with reg.authfile() as auth:
        assert stat.S_IMODE(auth.stat().st_mode) == 0o600
        token = json.loads(auth.read_text())["auths"]["ghcr.io"]["auth"]
        assert token == "dGVhbTpzM2NyZXQtcHc="  # base64("team:s3cret-pw")
        assert reg.flags(auth) == ["--tls-verify=true", "--authfile", str(auth)]
        assert "s3cret-pw" not in " ".join(reg.flags(auth))
    assert not auth.exists() and not auth.parent.exists()


def test_credentials_fall_back_to_auth_files_then_none(tmp_path, monkeypatch) -> None:
    for var in (USER_ENV, PASSWORD_ENV, "REGISTRY_AUTH_FILE", "DOCKER_CONFIG"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv(USER_ENV, "only-a-user")
    monkeypatch.setenv("HOME", str(tmp_path))
    reg = Registry.parse("ghcr.io/acme")
    with reg.authfile() as auth:
        assert auth is None
    docker = tmp_path / ".docker" / "config.json"
    docker.parent.mkdir()
    docker.write_text("{}")
    with reg.authfile() as auth:
        assert auth == docker
    cfg = tmp_path / "cfg"
    cfg.mkdir()
    (cfg / "config.json").write_text("{}")
    monkeypatch.setenv("DOCKER_CONFIG", str(cfg))
    with reg.authfile() as auth:
        assert auth == cfg / "config.json"
    monkeypatch.setenv("REGISTRY_AUTH_FILE", str(tmp_path / "auth.json"))
    (tmp_path / "auth.json").write_text("{}")
    with reg.authfile() as auth:
        assert auth == tmp_path / "auth.json"


def test_manifest_lookups_through_skopeo(fake, monkeypatch) -> None:
    fake.on("inspect", has=("docker://127.0.0.1:5000/team/t:there",), stdout='{"x": 1}')
    fake.on("inspect", has=("docker://127.0.0.1:5000/team/t:gone",), rc=1,
            stderr="Error: reading manifest gone: manifest unknown\n")
    fake.on("inspect", has=("docker://127.0.0.1:5000/team/t:locked",), rc=1,
            stderr="time=x\nError: unauthorized: authentication required for team:s3cret-pw\n")
    fake.on("inspect", has=("docker://127.0.0.1:5000/team/t:down",), rc=1, stderr=(
        'time="2026-12-06T23:00:00Z" level=fatal msg="Error parsing image name \\"docker://'
        '127.0.0.1:5000/team/t:down\\": pinging container registry 127.0.0.1:5000: Get '
        '\\"https://127.0.0.1:5000/v2/\\": dial tcp 127.0.0.1:5000: connect: connection '
        'refused"\n'))
    fake.on("inspect", rc=1, stderr="Error: something else\n")
    monkeypatch.setenv(PASSWORD_ENV, "s3cret-pw")
    assert REG.manifest("127.0.0.1:5000/team/t:there", None) == b'{"x": 1}'
    assert REG.digest("127.0.0.1:5000/team/t:there", None) == \
        "sha256:" + hashlib.sha256(b'{"x": 1}').hexdigest()
    assert fake.calls("skopeo")[0] == ["inspect", "--raw", "--tls-verify=false",
                                       "docker://127.0.0.1:5000/team/t:there"]
    assert REG.manifest("127.0.0.1:5000/team/t:gone", None) is None
    assert REG.digest("127.0.0.1:5000/team/t:gone", None) is None
    with pytest.raises(NbpipeError) as exc:
        REG.manifest("127.0.0.1:5000/team/t:locked", None)
    assert str(exc.value) == (
        "registry 127.0.0.1:5000: cannot inspect 127.0.0.1:5000/team/t:locked: Error: "
        "unauthorized: authentication required for team:*** (check NBPIPE_REGISTRY_USER/"
        "NBPIPE_REGISTRY_PASSWORD, $REGISTRY_AUTH_FILE or ~/.docker/config.json)")
    with pytest.raises(NbpipeError) as exc:
        REG.manifest("127.0.0.1:5000/team/t:other", None)
    assert str(exc.value) == ("registry 127.0.0.1:5000: cannot inspect 127.0.0.1:5000/team/t:"
                              "other: Error: something else")
    with pytest.raises(NbpipeError) as exc:  # skopeo's raw fatal line, as one sentence
        REG.manifest("127.0.0.1:5000/team/t:down", None)
    assert str(exc.value) == ("registry 127.0.0.1:5000 is not reachable: nothing answers at "
                              "that address (is the registry running, and the port right?)")


def test_without_skopeo_the_error_says_how_to_get_it(monkeypatch, tmp_path) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(NbpipeError) as exc:
        REG.manifest("x", None)
    assert str(exc.value) == "skopeo is not installed: apt-get install skopeo"
    assert os.environ["PATH"] == str(tmp_path)


def test_layer_compression_is_read_from_the_manifest() -> None:
    from nbpipe.run.publish import layer_compression

    def manifest(*types: str) -> bytes:
        return json.dumps({"layers": [{"mediaType": t} for t in types]}).encode()

    gz = "application/vnd.oci.image.layer.v1.tar+gzip"
    zs = "application/vnd.oci.image.layer.v1.tar+zstd"
    plain = "application/vnd.oci.image.layer.v1.tar"
    assert layer_compression(manifest(gz, gz)) == "gzip"
    assert layer_compression(manifest(zs)) == "zstd"
    assert layer_compression(manifest(plain)) == "none"
    assert layer_compression(manifest(gz, zs)) == "mixed"
    assert layer_compression(b'{"manifests": []}') == ""
    assert layer_compression(manifest()) == ""


def test_versions_come_from_the_native_platform_else_the_first(fake, tmp_path,
                                                               monkeypatch) -> None:
    cat = small()
    engine = engine_with(fake, cat, {"t": plat.ALL}, monkeypatch)
    registry_has(fake, {})
    run(cat, ["t"], engine, tmp_path, native=plat.ARM64)
    run(cat, ["t"], engine, tmp_path, platforms=(plat.AMD64,), native=plat.ARM64)
    versions = [c for c in fake.calls("podman") if "--entrypoint" in c
                and c[c.index("--entrypoint") + 1] == "python3"]
    assert [c[c.index("--entrypoint") + 2] for c in versions] == [
        local_ref(cat.resolve("t"), plat.ARM64), local_ref(cat.resolve("t"), plat.AMD64)]


def test_images_there_without_their_list_get_the_list_and_count_as_published(
        fake, tmp_path, monkeypatch) -> None:
    cat = small()
    engine = engine_with(fake, cat, {"t": plat.ALL}, monkeypatch)
    ctag = content_tag(cat.resolve("t"))
    repo = "127.0.0.1:5000/team/t"
    registry_has(fake, {f"{repo}:{ctag}-amd64": b"{}", f"{repo}:{ctag}-arm64": b"{}"})
    [res] = run(cat, ["t"], engine, tmp_path)
    calls = fake.calls("podman")
    assert not [c for c in calls if c[0] == "push"]
    assert [c[-1] for c in calls if c[:2] == ["manifest", "push"]][0] == f"docker://{repo}:{ctag}"
    assert (res.uploaded, res.digest) == (True, LIST)
    assert res.message.startswith("published")
