"""Layers shared between runners (issue 23, item 3), offline: what --cache-registry /
$NBPIPE_CACHE_REGISTRY makes podman/buildah do (the fake CLI records the exact flags),
the registry's --tls-verify rule and credentials, and where it is refused or ignored.
The real thing (two stores, one loopback registry) is tests/engine/test_layer_cache.py."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import anyio
import pytest

from nbpipe.cli import commands as cli
from nbpipe.engines import dockerfile, image_cache, oci
from nbpipe.engines.oci import LayerCache, OciEngine
from nbpipe.errors import NbpipeError
from nbpipe.recipe import platforms as plat
from nbpipe.recipe.image import BaseRef, Image
from nbpipe.recipe.options import BuildOptions
from nbpipe.run.backends import BuildFailed, Local
from nbpipe.run.settings import Settings
from tests.fakes.container_cli import Fake

ROOT = BaseRef("example.org/root", {plat.AMD64: "sha256:" + "1" * 64})
IMG = Image.from_base(ROOT, "t").with_env("A", "1").with_run("id")
IID = "sha256:" + "ab" * 32
INSPECT = [{"Id": IID, "Size": 1, "Created": "", "Config": {"Labels": {}}}]
LABEL = "io.nbpipe.digest"


@pytest.fixture()
def fake(tmp_path, monkeypatch) -> Fake:
    monkeypatch.delenv("NBPIPE_RUNTIME", raising=False)
    for var in (
        "NBPIPE_REGISTRY_USER",
        "NBPIPE_REGISTRY_PASSWORD",
        "REGISTRY_AUTH_FILE",
        "DOCKER_CONFIG",
    ):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))  # no ~/.docker/config.json
    monkeypatch.setattr(oci, "_storage_index", lambda: None)
    f = Fake(tmp_path / "cli", monkeypatch, "podman", "docker")
    f.on("build", write={"--iidfile": IID}, record=("--authfile",))
    f.on("tag").on("image", "inspect", stdout=json.dumps(INSPECT))
    return f


def build_with(
    fake: Fake, tmp_path: Path, registry: str, *, kind: str = "podman", no_cache: bool = False
) -> list[str]:
    """The build command line Local runs for IMG with this cache registry."""
    local = Local(
        OciEngine(kind, fake.paths[kind]),
        BuildOptions(),
        Settings(state_dir=tmp_path / "state", cache_registry=registry),
    )
    anyio.run(lambda: local.build(IMG, plat.AMD64, "localhost/nbpipe/t:1", no_cache=no_cache))
    return next(c for c in fake.calls(kind) if "build" in c)


def after(argv: list[str], flag: str) -> str:
    return argv[argv.index(flag) + 1]


def test_the_engine_pulls_from_and_pushes_to_the_cache_repository(fake, tmp_path) -> None:
    cache = LayerCache("reg.example/acme/t-cache", ("--tls-verify=true",))
    rendered = dockerfile.render(IMG, plat.AMD64)
    OciEngine("podman", fake.paths["podman"]).build(
        rendered,
        "localhost/nbpipe/t:1",
        plat.AMD64,
        BuildOptions(),
        tmp_path / "t.log",
        cache=cache,
    )
    argv = fake.calls("podman")[0]
    i = argv.index("--cache-from")
    assert argv[i : i + 5] == [
        "--cache-from",
        "reg.example/acme/t-cache",
        "--cache-to",
        "reg.example/acme/t-cache",
        "--tls-verify=true",
    ]
    assert "--layers" in argv  # buildah caches (and shares) only intermediate layers


def test_without_a_cache_registry_no_cache_flag_is_passed(fake, tmp_path) -> None:
    argv = build_with(fake, tmp_path, "")
    assert not {"--cache-from", "--cache-to", "--tls-verify=false", "--authfile"} & set(argv)


def test_a_loopback_cache_speaks_plain_http_and_names_one_repo_per_image(fake, tmp_path) -> None:
    argv = build_with(fake, tmp_path, "127.0.0.1:5000/acme")
    assert after(argv, "--cache-from") == after(argv, "--cache-to") == "127.0.0.1:5000/acme/t-cache"
    assert "--tls-verify=false" in argv and "--authfile" not in argv


def test_a_remote_cache_verifies_tls_and_logs_in_with_a_private_auth_file(
    fake, tmp_path, monkeypatch
) -> None:
    monkeypatch.setenv("NBPIPE_REGISTRY_USER", "ci")
    monkeypatch.setenv("NBPIPE_REGISTRY_PASSWORD", "s3cret")
    argv = build_with(fake, tmp_path, "ghcr.io/acme")
    assert after(argv, "--cache-to") == "ghcr.io/acme/t-cache" and "--tls-verify=true" in argv
    auth = after(argv, "--authfile")
    token = base64.b64encode(b"ci:s3cret").decode()
    assert json.loads(fake.recorded()[0]["--authfile"]) == {"auths": {"ghcr.io": {"auth": token}}}
    assert not Path(auth).exists(), "the auth file lives only while the build runs"
    assert "s3cret" not in " ".join(argv)
    log = (tmp_path / "state" / "logs" / "t-amd64.log").read_text()
    assert "s3cret" not in log and token not in log


def test_no_cache_pushes_but_never_pulls(fake, tmp_path) -> None:
    argv = build_with(fake, tmp_path, "127.0.0.1:5000/acme", no_cache=True)
    assert "--no-cache" in argv and "--cache-from" not in argv
    assert after(argv, "--cache-to") == "127.0.0.1:5000/acme/t-cache"


def image_cache_calls(fake: Fake, what: str) -> list[list[str]]:
    return [c for c in fake.calls("podman") if c[0] == what]


def test_a_finished_image_in_the_cache_is_pulled_instead_of_built(fake, tmp_path) -> None:
    """The whole image under its key, saying it is this recipe for this platform: one
    pull, tagged as the ref, and nothing built or pushed."""
    digest = IMG.digest(plat.AMD64)
    good = [{**INSPECT[0], "Architecture": "amd64", "Config": {"Labels": {LABEL: digest}}}]
    fake.rules.clear()
    fake.on("image", "exists", rc=1).on("pull").on("untag").on("tag")
    fake.on("image", "inspect", stdout=json.dumps(good))
    local = Local(
        OciEngine("podman", fake.paths["podman"]),
        BuildOptions(),
        Settings(state_dir=tmp_path / "state", cache_registry="127.0.0.1:5000/acme"),
    )
    built = anyio.run(lambda: local.build(IMG, plat.AMD64, "localhost/nbpipe/t:1", no_cache=False))
    assert built.pulled and built.id == IID
    [pull] = image_cache_calls(fake, "pull")
    r = dockerfile.render(IMG, plat.AMD64)
    key = image_cache.key(r, plat.AMD64, r.from_ref)
    assert pull[-1] == f"127.0.0.1:5000/acme/t-cache:nbpipe-image-{key}"
    assert "--tls-verify=false" in pull
    assert ["tag", pull[-1], "localhost/nbpipe/t:1"] in fake.calls("podman")
    assert not image_cache_calls(fake, "build") and not image_cache_calls(fake, "push")
    log = (tmp_path / "state" / "logs" / "t-amd64.log").read_text()
    assert "image cache: pulled the finished image" in log


@pytest.mark.parametrize(
    "labels, arch, why",
    [
        ({LABEL: "sha256:" + "0" * 64}, "amd64", "it says it is"),
        (None, "arm64", "it is for 'arm64'"),
    ],
)
def test_a_cached_image_of_another_recipe_or_platform_is_dropped_and_built(
    fake, tmp_path, labels, arch, why
) -> None:
    """A key that (by accident or by a forged push) holds another image never serves it."""
    other = [
        {
            **INSPECT[0],
            "Architecture": arch,
            "Config": {"Labels": labels or {LABEL: IMG.digest(plat.AMD64)}},
        }
    ]
    fake.rules.clear()
    fake.on("image", "exists", rc=1).on("pull").on("rmi").on(
        "push", write={"--digestfile": "sha256:1"}
    )
    fake.on("build", write={"--iidfile": IID}).on("tag")
    fake.on("image", "inspect", stdout=json.dumps(other))
    argv = build_with(fake, tmp_path, "127.0.0.1:5000/acme")
    assert after(argv, "--cache-from") == "127.0.0.1:5000/acme/t-cache"  # built, step cache on
    [rmi] = image_cache_calls(fake, "rmi")
    assert rmi[-1].startswith("127.0.0.1:5000/acme/t-cache:nbpipe-image-")
    log = (tmp_path / "state" / "logs" / "t-amd64.log").read_text()
    assert f"image cache: dropped {rmi[-1]}: {why}" in log


def test_a_built_image_is_shared_under_its_key_and_no_cache_never_pulls(fake, tmp_path) -> None:
    fake.on("push", write={"--digestfile": "sha256:1"})
    build_with(fake, tmp_path, "127.0.0.1:5000/acme", no_cache=True)
    assert not image_cache_calls(fake, "pull")
    [push] = image_cache_calls(fake, "push")
    assert push[-2:][0] == "localhost/nbpipe/t:1"
    assert push[-1].startswith("docker://127.0.0.1:5000/acme/t-cache:nbpipe-image-")
    log = (tmp_path / "state" / "logs" / "t-amd64.log").read_text()
    assert "image cache: pushed the finished image" in log


def test_in_a_run_the_push_goes_on_beside_it_and_the_run_waits_for_it(fake, tmp_path) -> None:
    """A child builds while its parent is pushed: ``build`` returns with the push still to
    come, and the run's session ends only once it is done."""
    fake.on("push", write={"--digestfile": "sha256:1"})
    local = Local(
        OciEngine("podman", fake.paths["podman"]),
        BuildOptions(),
        Settings(state_dir=tmp_path / "state", cache_registry="127.0.0.1:5000/acme"),
    )

    async def run() -> list[list[str]]:
        async with local.session():
            built = await local.build(IMG, plat.AMD64, "localhost/nbpipe/t:1", no_cache=True)
            assert not built.pulled
            return image_cache_calls(fake, "push")

    assert anyio.run(run) == []  # not yet when the build returned
    [push] = image_cache_calls(fake, "push")  # done when the session ended
    assert push[-1].startswith("docker://127.0.0.1:5000/acme/t-cache:nbpipe-image-")


def test_the_key_covers_the_parent_the_text_and_the_copied_files() -> None:
    """Any change a build could see changes the key: the parent's key (or the pinned
    root), the platform, the Dockerfile, a copied file's bytes; no engine is asked."""
    r = dockerfile.render(IMG, plat.AMD64)
    base = image_cache.key(r, plat.AMD64, r.from_ref)
    assert base == image_cache.key(r, plat.AMD64, r.from_ref)
    assert base != image_cache.key(r, plat.ARM64, r.from_ref)
    assert base != image_cache.key(r, plat.AMD64, "another parent's key")
    changed = dockerfile.render(IMG.with_env("B", "2"), plat.AMD64)
    assert base != image_cache.key(changed, plat.AMD64, r.from_ref)
    one = dockerfile.Rendered(r.text, r.from_ref, {"f": b"1"})
    two = dockerfile.Rendered(r.text, r.from_ref, {"f": b"2"})
    assert image_cache.key(one, plat.AMD64, "p") != image_cache.key(two, plat.AMD64, "p")
    # a child's key moves with its parent's recipe, through the parent's key
    local = Local(OciEngine("podman", "/bin/false"), BuildOptions(), Settings())
    child = IMG.child("c").with_env("C", "1")
    other = IMG.with_env("B", "2").child("c").with_env("C", "1")
    assert local.cache_key(child, plat.AMD64) != local.cache_key(other, plat.AMD64)
    assert local.cache_key(IMG, plat.AMD64) == base


def test_docker_says_in_one_line_it_is_not_supported(fake, tmp_path) -> None:
    with pytest.raises(BuildFailed, match="--cache-registry: not supported with docker"):
        build_with(fake, tmp_path, "127.0.0.1:5000/acme", kind="docker")
    assert fake.calls("docker") == []
    docker = Local(OciEngine("docker", fake.paths["docker"]), BuildOptions(), Settings())
    assert docker.cannot("cache") == oci.DOCKER_NO_CACHE
    podman = Local(OciEngine("podman", fake.paths["podman"]), BuildOptions(), Settings())
    assert podman.cannot("cache") == ""


def test_a_bad_cache_registry_is_refused_by_name(fake, tmp_path) -> None:
    with pytest.raises(BuildFailed, match="--cache-registry 'Bad Host'"):
        build_with(fake, tmp_path, "Bad Host")
    with pytest.raises(NbpipeError, match="--cache-registry https://x: .*no scheme"):
        from nbpipe.engines.registry import Registry

        Registry.parse("https://x", "--cache-registry")


def test_the_setting_comes_from_the_environment_and_the_flag_wins(monkeypatch) -> None:
    assert Settings.from_env({"NBPIPE_CACHE_REGISTRY": "reg.example/acme/"}).cache_registry == (
        "reg.example/acme"
    )
    assert Settings.from_env({}).cache_registry == ""
    monkeypatch.setattr(cli, "_SETTINGS", [Settings(cache_registry="env.example/a")])
    cli._cache_registry(None)
    assert cli._settings().cache_registry == "env.example/a"
    cli._cache_registry("127.0.0.1:5000/team/")
    assert cli._settings().cache_registry == "127.0.0.1:5000/team"


@pytest.mark.parametrize("command", ["build", "test", "publish"])
def test_every_building_command_takes_the_flag_and_checks_it(command, capsys, monkeypatch) -> None:
    import sys

    args = [command, "jupyter", "--cache-registry", "http://reg.example/acme"]
    if command == "publish":
        args += ["--registry", "reg.example/acme"]
    monkeypatch.setattr(sys, "argv", ["nbpipe", *args])
    with pytest.raises(SystemExit) as exc:
        cli.main()
    assert exc.value.code == 2
    assert "--cache-registry" in capsys.readouterr().err


def test_a_store_of_its_own_is_dropped_without_resetting_the_machines_podman(
    fake: Fake, tmp_path
) -> None:
    """Fresh runners (tests, benches) empty their own store; `system reset` would also
    remove /run/libpod, which every store on the machine shares."""
    graph = tmp_path / "store"
    (graph / "overlay").mkdir(parents=True)
    Path(f"{graph}-run").mkdir()
    fake.on("pod").on("rm").on("rmi")
    OciEngine("podman", fake.paths["podman"], graph_root=str(graph)).drop_store()
    calls = [c[4:] for c in fake.calls("podman")]  # after --root G --runroot G-run
    assert calls == [["pod", "rm", "-af"], ["rm", "-af"], ["rmi", "-af"]]
    assert all(
        c[:4] == ["--root", str(graph), "--runroot", f"{graph}-run"] for c in fake.calls("podman")
    )
    assert not graph.exists() and not Path(f"{graph}-run").exists()
    with pytest.raises(NbpipeError, match="only a store of its own"):
        OciEngine("podman", fake.paths["podman"]).drop_store()
