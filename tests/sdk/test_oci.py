"""The container-CLI engine, offline: the exact command lines it runs (against a fake
podman/docker on PATH, tests/fakes/container_cli.py), what it makes of their answers, and how a
failed build names the step it failed in."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from nbpipe.recipe import platforms as plat
from nbpipe.engines import dockerfile, oci
from nbpipe.engines.oci import ImageInfo, OciEngine
from nbpipe.errors import BuildError, NbpipeError
from nbpipe.recipe.image import BaseRef, Image
from nbpipe.recipe.options import BuildOptions

from tests.fakes.container_cli import Fake

ROOT = BaseRef("example.org/root", {plat.AMD64: "sha256:" + "1" * 64,
                                    plat.ARM64: "sha256:" + "2" * 64})
IMG = Image.from_base(ROOT, "t").with_env("A", "1").with_file("/etc/x", b"x\n").with_run("id")
INSPECT = [{"Id": "sha256:" + "ab" * 32, "Size": 1234, "Created": "1970-01-01T00:00:00Z",
            "Config": {"Labels": {"io.nbpipe.image": "t"}}}]


@pytest.fixture()
def fake(tmp_path, monkeypatch) -> Fake:
    monkeypatch.delenv("NBPIPE_RUNTIME", raising=False)
    monkeypatch.setattr(oci, "_storage_index", lambda: None)  # never this machine's store
    return Fake(tmp_path / "cli", monkeypatch, "podman", "docker", "buildah")


def engine(fake: Fake, kind: str = "podman", runtime: str | None = None) -> OciEngine:
    return OciEngine(kind, fake.paths[kind], runtime)


def test_podman_build_runs_the_rendered_dockerfile_then_tags_by_id(fake, tmp_path) -> None:
    fake.on("build", write={"--iidfile": "sha256:" + "ab" * 32 + "\n"}, record=("-f",),
            stdout="STEP 1/4: FROM example.org/root\n")
    fake.on("tag").on("image", "inspect", stdout=json.dumps(INSPECT))
    ca = tmp_path / "ca.pem"
    ca.write_text("-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n")
    wheels = tmp_path / "wheels"
    wheels.mkdir()
    (wheels / "a-1-py3-none-any.whl").write_bytes(b"whl")
    options = BuildOptions(ca_bundle=ca, wheelhouse=wheels, source_date_epoch=7)
    rendered = dockerfile.render(IMG, plat.ARM64, options)
    log = tmp_path / "logs" / "t.log"
    info = engine(fake, runtime="runc").build(rendered, "localhost/nbpipe/t:1", plat.ARM64,
                                              options, log, no_cache=True)
    assert info == ImageInfo("localhost/nbpipe/t:1", "sha256:" + "ab" * 32, 1234,
                             {"io.nbpipe.image": "t"}, "1970-01-01T00:00:00Z")
    build, tag, inspect = fake.calls()
    ctx = build[-1]
    assert build == ["build", "--platform", "linux/arm64", "--iidfile", f"{ctx}/.iid",
                     "-f", f"{ctx}/Dockerfile", "--network", "host", "--layers",
                     "--pull=missing", "--timestamp", "7", "--runtime", "runc", "--no-cache",
                     "--secret", f"id=nbpipe-ca,src={ca}", ctx]
    assert fake.recorded() == [{"-f": rendered.text}]
    assert tag == ["tag", "sha256:" + "ab" * 32, "localhost/nbpipe/t:1"]
    assert inspect == ["image", "inspect", "localhost/nbpipe/t:1"]
    assert not Path(ctx).exists(), "the build context is temporary"
    text = log.read_text()
    assert text.startswith(f"$ {fake.paths['podman']} build --platform linux/arm64 ")
    assert rendered.text in text and "STEP 1/4: FROM example.org/root" in text


def test_docker_build_args_and_a_local_parent_is_never_pulled(fake, tmp_path) -> None:
    fake.on("build", write={"--iidfile": "sha256:" + "cd" * 32})
    fake.on("tag").on("image", "inspect", stdout=json.dumps(INSPECT))
    child = IMG.child("c").with_env("B", "2")
    rendered = dockerfile.render(child, plat.AMD64)
    engine(fake).build(rendered, "localhost/nbpipe/c:1", plat.AMD64, BuildOptions(),
                       tmp_path / "c.log")
    assert "--pull=never" in fake.calls()[0] and "--no-cache" not in fake.calls()[0]
    engine(fake, "docker").build(rendered, "localhost/nbpipe/c:1", plat.AMD64, BuildOptions(),
                                 tmp_path / "c.log")
    docker = fake.calls("docker")[0]
    assert docker[:9] == ["build", "--platform", "linux/amd64", "--iidfile", docker[4],
                          "-f", docker[6], "--network", "host"]
    assert docker[9:11] == ["--progress", "plain"] and len(docker) == 12


@pytest.mark.parametrize("output,where", [
    ("STEP 1/5: FROM x\nSTEP 2/5: ENV A=\"1\"\nSTEP 4/5: RUN id\nError: exit status 1\n",
     "run id"),
    ("#5 [2/5] ENV A=1\n#7 [ 3/5] COPY files/x /etc/x\nERROR: failed\n", "file /etc/x (2 bytes, 644)"),
    ("Error: no such image\n", "before the first step"),
])
def test_a_failed_build_names_the_step_and_tags_nothing(fake, tmp_path, output, where) -> None:
    fake.on("build", rc=1, stdout=output)
    rendered = dockerfile.render(IMG, plat.AMD64)
    log = tmp_path / "t.log"
    with pytest.raises(BuildError) as exc:
        engine(fake).build(rendered, "localhost/nbpipe/t:1", plat.AMD64, BuildOptions(), log)
    msg = str(exc.value)
    assert msg.startswith(f"localhost/nbpipe/t:1: step failed: {where}\n  log: {log}\n")
    assert msg.endswith("\n".join("    " + x for x in log.read_text().splitlines()[-15:]))
    assert [c[0] for c in fake.calls()] == ["build"]


def test_a_build_without_an_image_id_is_a_failure(fake, tmp_path) -> None:
    fake.on("build", rc=0)
    with pytest.raises(BuildError):
        engine(fake).build(dockerfile.render(IMG, plat.AMD64), "r", plat.AMD64, BuildOptions(),
                           tmp_path / "t.log")
    assert [c[0] for c in fake.calls()] == ["build"]


def test_push_uses_a_digest_file_and_says_what_failed(fake) -> None:
    fake.on("push", has=("docker://reg/t:ok",), write={"--digestfile": "sha256:" + "9" * 64})
    fake.on("push", rc=1, stderr="Copying blob\nError: unauthorized: authentication required\n")
    e = engine(fake)
    assert e.push("localhost/t:1", "docker://reg/t:ok", ["--tls-verify=false"]) == \
        "sha256:" + "9" * 64
    call = fake.calls()[0]
    assert call[:2] == ["push", "--tls-verify=false"] and call[2] == "--digestfile"
    assert call[4:] == ["localhost/t:1", "docker://reg/t:ok"]
    with pytest.raises(NbpipeError) as exc:
        e.push("localhost/t:1", "docker://reg/t:bad", [])
    assert str(exc.value) == ("push of localhost/t:1 to reg/t:bad failed: Error: unauthorized: "
                              "authentication required")


def test_manifest_list_is_made_of_the_pushed_images_and_pushed_under_every_tag(fake) -> None:
    fake.on("manifest", "push", write={"--digestfile": "sha256:" + "7" * 64})
    fake.on("manifest")
    digest = engine(fake).publish_list({plat.AMD64: "reg/t:sha-1-amd64",
                                        plat.ARM64: "reg/t:sha-1-arm64"},
                                       ["reg/t:sha-1", "reg/t:latest"], ["--tls-verify=true"])
    assert digest == "sha256:" + "7" * 64
    name = f"localhost/nbpipe-publish/list:{os.getpid()}"
    calls = fake.calls()
    assert calls[:2] == [["manifest", "rm", name], ["manifest", "create", name]]
    assert calls[2:4] == [
        ["manifest", "add", "--tls-verify=true", "--os", "linux", "--arch", "amd64", name,
         "docker://reg/t:sha-1-amd64"],
        ["manifest", "add", "--tls-verify=true", "--os", "linux", "--arch", "arm64", name,
         "docker://reg/t:sha-1-arm64"]]
    pushes = [c for c in calls if c[:2] == ["manifest", "push"]]
    assert [c[-2:] for c in pushes] == [[name, "docker://reg/t:sha-1"],
                                        [name, "docker://reg/t:latest"]]
    assert calls[-1] == ["manifest", "rm", name]


def test_a_failed_manifest_add_removes_the_list(fake) -> None:
    fake.on("manifest", "add", rc=1, stderr="Error: manifest unknown\n").on("manifest")
    with pytest.raises(NbpipeError) as exc:
        engine(fake).publish_list({plat.AMD64: "reg/t:a"}, ["reg/t:x"], [])
    assert str(exc.value) == "manifest add reg/t:a failed: Error: manifest unknown"
    assert fake.calls()[-1][:2] == ["manifest", "rm"]
    assert not [c for c in fake.calls() if c[:2] == ["manifest", "push"]]


def test_docker_cannot_publish(fake) -> None:
    for call in (lambda e: e.push("a", "docker://b", []),
                 lambda e: e.publish_list({}, [], [])):
        with pytest.raises(NbpipeError) as exc:
            call(engine(fake, "docker"))
        assert "nbpipe uses podman/buildah's manifest tools; run with --engine podman" in \
            str(exc.value)
    assert fake.calls() == []


def test_container_command_lines(fake) -> None:
    fake.on("run", stdout="cid123\n").on("exec", stdout="ok").on("logs", stdout="log\n",
                                                                  stderr="err\n")
    fake.on("inspect", stdout="true\n").on("rm")
    e = engine(fake, runtime="runc")
    cid = e.run_detached("img:1", env={"NB_PREFIX": "/p"}, mounts=["/h:/home/jovyan"],
                         port=4000, container_port=8888, name="probe-1", extra=["--cpus", "1"])
    assert cid == "cid123"
    r = e.run_once("img:1", ["python3", "-c", "print(1)"], extra=["--network", "none"])
    assert r.returncode == 0
    e.exec("cid123", ["id", "-u"], user="0")
    assert e.logs("cid123") == "log\nerr\n"
    assert e.running("cid123") is True
    e.remove_container("cid123")
    assert fake.calls() == [
        ["run", "--runtime", "runc", "-d", "--name", "probe-1", "-p", "127.0.0.1:4000:8888",
         "-e", "NB_PREFIX=/p", "-v", "/h:/home/jovyan", "--cpus", "1", "img:1"],
        ["run", "--rm", "--runtime", "runc", "--network", "none", "--entrypoint", "python3",
         "img:1", "-c", "print(1)"],
        ["exec", "--user", "0", "cid123", "id", "-u"],
        ["logs", "cid123"],
        ["inspect", "--format", "{{.State.Running}}", "cid123"],
        ["rm", "-f", "-t", "2", "cid123"]]


def test_a_container_that_does_not_start_says_why(fake) -> None:
    fake.on("run", rc=125, stderr="Error: port 4000 already in use\n")
    with pytest.raises(NbpipeError) as exc:
        engine(fake).run_detached("img:1", env={}, mounts=[], port=4000, container_port=8888,
                                  name="n")
    assert str(exc.value) == "could not start img:1: Error: port 4000 already in use"
    fake.on("inspect", stdout="false\n")
    assert engine(fake).running("c") is False


def test_images_lists_the_store_in_one_call(fake) -> None:
    fake.on("images", "--json", stdout=json.dumps([
        {"id": "ab" * 32, "names": ["localhost/nbpipe/a:1", "localhost/a:x"], "size": "77.9 kB"},
        {"id": "cd" * 32, "names": None, "size": "?"}]))
    store = engine(fake).images()
    assert store == {
        "localhost/nbpipe/a:1": ImageInfo("localhost/nbpipe/a:1", "sha256:" + "ab" * 32, 77900,
                                          {}, ""),
        "localhost/a:x": ImageInfo("localhost/a:x", "sha256:" + "ab" * 32, 77900, {}, "")}
    assert fake.calls("buildah") == [["images", "--json", "--no-trunc"]]
    rows = [{"Id": "sha256:" + "ef" * 32, "Size": 20, "RepoTags": ["localhost/b:1"],
             "Config": {"Labels": {"k": "v"}}, "Created": 5}]
    fake.on("images", "-q", stdout="sha256:" + "ef" * 32 + "\n").on("image", "inspect",
                                                                     stdout=json.dumps(rows))
    assert engine(fake, "docker").images() == {
        "localhost/b:1": ImageInfo("localhost/b:1", "sha256:" + "ef" * 32, 20, {"k": "v"}, "5")}
    assert fake.calls("docker") == [["images", "-q", "--no-trunc"],
                                    ["image", "inspect", "sha256:" + "ef" * 32]]


def test_inspect_of_a_missing_image_says_build_it_first(fake) -> None:
    fake.on("image", "inspect", rc=1, stderr="Error: no such image\n")
    with pytest.raises(NbpipeError) as exc:
        engine(fake).inspect("localhost/nbpipe/x:1")
    assert str(exc.value) == ("image localhost/nbpipe/x:1 is not in podman's store: build it "
                              "first (nbpipe build NAME)")
    fake.on("image", "exists", rc=1)
    assert engine(fake).exists("x") is False


def test_connect_finds_a_working_engine_or_says_why(fake, monkeypatch) -> None:
    fake.on("images", rc=125, stderr="Error: cannot connect\n")
    with pytest.raises(NbpipeError) as exc:
        OciEngine.connect("podman")
    assert str(exc.value).startswith("no usable container engine (podman: `buildah images` "
                                     "failed: Error: cannot connect)")
    with pytest.raises(NbpipeError) as exc:
        OciEngine.connect("nerdctl")
    assert str(exc.value) == "--engine 'nerdctl': use auto, podman or docker"
    fake.rules.clear()
    fake.on("images", stdout="[]")
    e, store = OciEngine.connect("auto")
    assert (e.kind, e.binary, store) == ("podman", fake.paths["podman"], {})


def test_a_command_that_hangs_times_out_with_one_line(fake, monkeypatch) -> None:
    import subprocess

    def hang(*args, **kw):
        raise subprocess.TimeoutExpired(args[0], kw.get("timeout"))

    monkeypatch.setattr(subprocess, "run", hang)
    with pytest.raises(NbpipeError) as exc:
        engine(fake).run_once("img:1", ["sleep", "9"], timeout=3)
    assert str(exc.value) == "`podman run --rm --entrypoint` timed out after 3s"


def test_detect_gives_the_engine_and_a_readable_store_needs_no_command(fake, monkeypatch) -> None:
    fake.on("images", stdout="[]")
    e = OciEngine.detect("podman")
    assert (e.kind, e.binary) == ("podman", fake.paths["podman"])
    store = {"localhost/x:1": ImageInfo("localhost/x:1", "sha256:" + "1" * 64, 1, {}, "")}
    monkeypatch.setattr(oci, "_storage_index", lambda: store)
    before = len(fake.calls())
    assert engine(fake).images() == store
    assert len(fake.calls()) == before  # containers/storage's index read, no podman started


def test_exists_asks_each_engine_its_own_way(fake) -> None:
    fake.on("image", "exists", has=("there",)).on("image", "exists", rc=1)
    fake.on("image", "inspect", has=("there",), stdout="[]").on("image", "inspect", rc=1)
    assert engine(fake).exists("there") is True and engine(fake).exists("gone") is False
    assert engine(fake, "docker").exists("there") is True
    assert engine(fake, "docker").exists("gone") is False
    assert fake.calls("podman") == [["image", "exists", "there"], ["image", "exists", "gone"]]
    assert fake.calls("docker") == [["image", "inspect", "there"], ["image", "inspect", "gone"]]


def test_a_gone_container_is_not_an_error_when_removed_or_asked_about(fake) -> None:
    fake.on("rm", rc=1, stderr="Error: no such container\n")
    fake.on("inspect", has=("{{.State.ExitCode}}", "done"), stdout="137\n")
    fake.on("inspect", has=("{{.State.ExitCode}}", "odd"), stdout="\n")
    fake.on("inspect", rc=1, stdout="12\n", stderr="Error: no such container\n")
    e = engine(fake)
    e.remove_container("gone")
    assert e.running("gone") is False
    assert (e.exit_code("done"), e.exit_code("odd"), e.exit_code("gone")) == (137, None, None)


def test_dagger_is_available_through_a_session_or_a_cli(tmp_path, monkeypatch) -> None:
    from nbpipe.run.backends import dagger_reason
    from nbpipe.run.settings import Settings

    monkeypatch.setenv("PATH", str(tmp_path))
    assert dagger_reason(Settings.from_env({})) is None
    fake = Fake(tmp_path / "cli", monkeypatch, "dagger")
    assert dagger_reason(Settings.from_env({})) == f"the dagger CLI at {fake.paths['dagger']}"
    in_session = Settings.from_env({"DAGGER_SESSION_PORT": "41234"})
    assert dagger_reason(in_session) == "the Dagger session of `dagger run`"


def test_the_storage_index_is_read_from_containers_storage_files(tmp_path, monkeypatch) -> None:
    """Podman's own index files, laid out as containers/storage writes them, read without
    starting podman: names, ids, the size of the layer chain; None where it cannot be
    sure (two drivers' stores, a damaged file, a configured storage.conf elsewhere)."""
    import os

    if os.geteuid() != 0:
        pytest.skip("the storage index is read for root's store only")
    monkeypatch.delenv("CONTAINERS_STORAGE_CONF", raising=False)
    monkeypatch.setattr(oci, "STORAGE_CONF", tmp_path / "storage.conf")
    monkeypatch.setattr(oci, "GRAPH_ROOT", tmp_path / "store")
    images = tmp_path / "store" / "overlay-images"
    layers = tmp_path / "store" / "overlay-layers"
    images.mkdir(parents=True)
    layers.mkdir(parents=True)
    (images / "images.json").write_text(json.dumps([
        {"id": "ab" * 32, "names": ["localhost/nbpipe/a:1"], "layer": "l2", "created": "t"},
        {"id": "cd" * 32, "layer": "l1"}]))
    (layers / "layers.json").write_text(json.dumps([
        {"id": "l1", "diff-size": 100}, {"id": "l2", "parent": "l1", "diff-size": 20}]))
    assert oci._storage_index() == {"localhost/nbpipe/a:1": ImageInfo(
        "localhost/nbpipe/a:1", "sha256:" + "ab" * 32, 120, {}, "t")}
    (tmp_path / "storage.conf").write_text('[storage]\ndriver = "vfs"\n')
    assert oci._storage_index() is None  # configured for vfs: no vfs store here
    (tmp_path / "storage.conf").unlink()
    (tmp_path / "store" / "vfs-images").mkdir()
    (tmp_path / "store" / "vfs-images" / "images.json").write_text("[]")
    assert oci._storage_index() is None  # two stores: ask the engine
    (tmp_path / "store" / "vfs-images" / "images.json").unlink()
    (layers / "layers.json").write_text("{damaged")
    assert oci._storage_index() is None
    monkeypatch.setenv("CONTAINERS_STORAGE_CONF", str(tmp_path / "other.conf"))
    assert oci._storage_index() is None


def test_docker_is_found_where_debian_puts_it_else_on_path(fake) -> None:
    from pathlib import Path

    found = oci._find("docker")
    assert found == ("/usr/bin/docker" if Path("/usr/bin/docker").exists()
                     else fake.paths["docker"])
    assert oci._find("podman") == fake.paths["podman"]


def _tar(files: dict[str, bytes]) -> str:
    import base64
    import io
    import tarfile

    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return base64.b64encode(buf.getvalue()).decode()


@pytest.mark.parametrize("same", [True, False])
def test_verify_reproducible_builds_twice_and_names_the_differing_files(fake, tmp_path,
                                                                        same) -> None:
    from nbpipe.run import reproducible
    from nbpipe.recipe.catalog import Catalog

    cat = Catalog()
    cat.add("t", ROOT, lambda img: img.with_env("A", "1"))
    a, b = "sha256:" + "a" * 64, "sha256:" + ("a" if same else "b") * 64
    fake.on("build", write={"--iidfile": a}).on("tag").on("rmi")
    for ref, image_id in (("localhost/nbpipe-verify/t:a", a), ("localhost/nbpipe-verify/t:b", b)):
        fake.on("image", "inspect", has=(ref,), stdout=json.dumps([{"Id": image_id, "Size": 1}]))
    fake.on("create", has=("localhost/nbpipe-verify/t:a",), stdout="cid-a\n")
    fake.on("create", has=("localhost/nbpipe-verify/t:b",), stdout="cid-b\n")
    fake.on("export", has=("cid-a",), stdout_b64=_tar({"x": b"1", "same": b"s"}))
    fake.on("export", has=("cid-b",), stdout_b64=_tar({"x": b"2", "same": b"s", "y": b""}))
    fake.on("rm")
    from nbpipe.run.machine import Machine
    from nbpipe.run.settings import Settings

    settings = Settings(state_dir=tmp_path / "state")
    machine = Machine(cat, plat.AMD64, None, engine(fake), {}, settings=settings)
    verdict = reproducible.verify(machine, "t", BuildOptions(), settings)
    assert (verdict.name, verdict.platform, verdict.ids, verdict.same) == ("t", plat.AMD64,
                                                                           (a, b), same)
    assert verdict.differing == ([] if same else ["x", "y"])
    calls = fake.calls()
    builds = [c for c in calls if c[0] == "build"]
    assert len(builds) == 2 and all("--no-cache" in c for c in builds)
    assert [c for c in calls if c[0] == "rmi"] == [
        ["rmi", "-f", "localhost/nbpipe-verify/t:a"], ["rmi", "-f", "localhost/nbpipe-verify/t:b"]]
    assert bool([c for c in calls if c[0] == "create"]) is not same
    assert (tmp_path / "state" / "logs" / "verify-t-a.log").exists()
