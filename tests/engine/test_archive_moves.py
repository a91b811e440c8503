"""A Debian archive that moves under a lock, served on loopback: nothing here depends on
what Debian's own archive holds today.

Packages are made with dpkg-deb and indexed with dpkg-scanpackages (tools nbpipe does not
own), served by a loopback HTTP server, and seen through a root whose only apt source is
that archive. The image is locked, built, then a pinned version is replaced in the
archive, as a Debian security update does.
"""

from __future__ import annotations

import functools
import http.server
import os
import shutil
import subprocess
import tempfile
import threading
from pathlib import Path

import anyio
import pytest

from nbpipe.engines.oci import OciEngine
from nbpipe.engines.rootfs import local_ref as root_ref
from nbpipe.errors import NbpipeError
from nbpipe.locks import lock
from nbpipe.recipe import naming
from nbpipe.recipe.catalog import Catalog
from nbpipe.recipe.image import BaseRef
from nbpipe.recipe.options import BuildOptions
from nbpipe.run.pipeline import Pipeline

pytestmark = pytest.mark.engine

IMAGE = "aptdemo"


def make_deb(pool: Path, name: str, version: str, depends: str = "") -> None:
    """A real .deb holding one file that says its name and version."""
    tree = pool.parent / "src" / f"{name}-{version}"
    (tree / "DEBIAN").mkdir(parents=True)
    (tree / "usr/share/nbpipe-demo").mkdir(parents=True)
    (tree / f"usr/share/nbpipe-demo/{name}").write_text(f"{name} {version}\n")
    control = [
        f"Package: {name}",
        f"Version: {version}",
        "Architecture: all",
        "Maintainer: nbpipe tests <tests@nbpipe.invalid>",
        f"Description: {name}, a package of the loopback test archive",
    ]
    if depends:
        control.insert(3, f"Depends: {depends}")
    (tree / "DEBIAN/control").write_text("\n".join(control) + "\n")
    for f in tree.rglob("*"):  # the same bytes on every run, as Debian's own files are
        os.utime(f, (0, 0))
    subprocess.run(
        [
            "dpkg-deb",
            "--root-owner-group",
            "-Zgzip",
            "-b",
            str(tree),
            str(pool / f"{name}_{version}_all.deb"),
        ],
        check=True,
        capture_output=True,
        env={**os.environ, "SOURCE_DATE_EPOCH": "0"},
    )


def index(repo: Path) -> None:
    """Packages, as Debian's tools write it (flat repository: `deb URL ./`)."""
    out = subprocess.run(
        ["dpkg-scanpackages", "--multiversion", "pool", "/dev/null"],
        cwd=repo,
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    (repo / "Packages").write_text(out)


class _Quiet(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args) -> None:  # apt's requests would fill the test log
        pass


@pytest.fixture
def repo(tmp_path_factory):
    if shutil.which("dpkg-scanpackages") is None or shutil.which("dpkg-deb") is None:
        pytest.skip("dpkg-dev is not installed (dpkg-scanpackages): .ci/setup installs it")
    repo = tmp_path_factory.mktemp("archive")
    pool = repo / "pool"
    pool.mkdir()
    make_deb(pool, "nbpipe-demo-lib", "1.0")
    make_deb(pool, "nbpipe-demo-extra", "1.0")
    make_deb(pool, "nbpipe-demo-extra", "2.0")  # two versions served: the pin picks one
    make_deb(pool, "nbpipe-demo", "1.0", "nbpipe-demo-lib (>= 1.0), nbpipe-demo-extra")
    index(repo)
    handler = functools.partial(_Quiet, directory=str(repo))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield repo, server.server_address[1]
    server.shutdown()


def security_update(repo: Path) -> None:
    """nbpipe-demo-lib 1.0 replaced by 1.1: the old version leaves the archive."""
    (repo / "pool/nbpipe-demo-lib_1.0_all.deb").unlink()
    make_deb(repo / "pool", "nbpipe-demo-lib", "1.1")
    index(repo)


@pytest.fixture
def apt_root(repo, engine, platform, local_family, tmp_path_factory) -> BaseRef:
    """Our debootstrap root whose only apt source is the loopback archive."""
    _, port = repo
    ctx = tmp_path_factory.mktemp("aptroot")
    (ctx / "Containerfile").write_text(
        f"FROM {root_ref(platform)}\n"
        "RUN rm -f /etc/apt/sources.list.d/* && "
        f"echo 'deb [trusted=yes] http://127.0.0.1:{port}/ ./' > /etc/apt/sources.list\n"
    )
    tag = f"localhost/nbpipe-test/aptroot:{port}"
    ref = f"{tag}-{platform.split('/')[1]}"
    subprocess.run(
        [engine.binary, "build", "--pull=never", "--network", "host", "-t", ref, str(ctx)],
        check=True,
        capture_output=True,
    )
    yield BaseRef(tag, {platform: engine.inspect(ref).id})
    engine._run(["rmi", "-f", ref], check=False)


def demo_catalog(root: BaseRef, lock_path: Path) -> Catalog:
    cat = Catalog()
    cat.add(IMAGE, root, lambda img: img.with_apt("nbpipe-demo"))
    return lock.apply(cat, lock_path)


def run(cat: Catalog, engine, platform, state_dir, options=BuildOptions(), **kw):
    pipe = Pipeline.local(cat, engine, platform, options, state_dir=state_dir, probe=False, **kw)
    return {r.name: r for r in anyio.run(pipe.run, [IMAGE])}


def sha256(repo: Path, pin: str) -> str:
    """The sha256 of a pin's .deb, as the archive's own index (dpkg-scanpackages) says."""
    name, _, version = pin.split("@")[0].partition("=")
    for record in (repo / "Packages").read_text().split("\n\n"):
        fields = dict(line.split(": ", 1) for line in record.splitlines() if ": " in line)
        if fields.get("Package") == name and fields.get("Version") == version:
            return fields["SHA256"]
    raise AssertionError(f"{pin} is not in the archive's index")


def locked_demo(engine, apt_root: BaseRef, platform: str, lock_path: Path) -> tuple[Catalog, str]:
    cat = demo_catalog(apt_root, lock_path)
    steps = cat.resolve(IMAGE).steps
    lines = lock.resolve_apt(engine, apt_root.pinned(platform), steps[-1])
    lock.save_entry(lock_path, lock.key(IMAGE, len(steps) - 1, steps[-1]), platform, lines)
    lock.reload(cat)
    return cat, lines


def installed(engine, ref: str) -> dict[str, str]:
    r = engine.run_once(
        ref,
        [
            "dpkg-query",
            "-W",
            "-f",
            "${Package}=${Version}\\n",
            "nbpipe-demo",
            "nbpipe-demo-lib",
            "nbpipe-demo-extra",
        ],
    )
    return dict(line.split("=") for line in r.stdout.split())


def test_a_moved_archive_is_refreshed_by_default_and_refused_when_locked(
    repo, apt_root, engine, platform, tmp_path
) -> None:
    archive_dir, _ = repo
    lock_path = tmp_path / "lock.json"
    cat = demo_catalog(apt_root, lock_path)
    steps = cat.resolve(IMAGE).steps
    step, at = steps[-1], len(steps) - 1
    # Lock as `nbpipe lock` does: what apt installs on the parent (extra 1.0 pinned by hand,
    # as a lock written while 1.0 was the newest would have it).
    lines = lock.resolve_apt(engine, apt_root.pinned(platform), step, ("nbpipe-demo-extra=1.0",))
    assert [p.split("@")[0] for p in lines.split()] == [
        "nbpipe-demo-extra=1.0",
        "nbpipe-demo-lib=1.0",
        "nbpipe-demo=1.0",
    ]
    assert all(p.partition("@sha256:")[2] == sha256(archive_dir, p) for p in lines.split())
    lock.save_entry(lock_path, lock.key(IMAGE, at, step), platform, lines)
    lock.reload(cat)

    first = run(cat, engine, platform, tmp_path / "state", locked=True)[IMAGE]
    assert first.ok, first.message
    assert installed(engine, first.ref) == {
        "nbpipe-demo": "1.0",
        "nbpipe-demo-lib": "1.0",
        "nbpipe-demo-extra": "1.0",
    }

    security_update(archive_dir)
    engine._run(["rmi", "-f", first.ref], check=False)  # a fresh runner: nothing built yet

    # --locked: refused before anything is built, naming the package and the fix.
    with pytest.raises(NbpipeError) as refused:
        run(cat, engine, platform, tmp_path / "state", locked=True)
    assert "aptdemo step" in str(refused.value)
    assert "nbpipe-demo-lib=1.0 left Debian's archive" in str(refused.value)
    assert "nbpipe lock aptdemo" in str(refused.value)
    assert not engine.exists(first.ref)
    assert lock.load(lock_path)[lock.key(IMAGE, at, step)][platform] == lines  # untouched
    # ... and `lock --check`'s question says the same
    assert lock.vanished(engine, cat, lock.load(lock_path), platform) == [
        f"aptdemo step {at} ({platform}): nbpipe-demo-lib=1.0"
    ]

    # Default: that step is resolved again, saved, and built under the new digest.
    again = run(cat, engine, platform, tmp_path / "state")[IMAGE]
    assert again.ok, again.message
    assert again.refreshed == [f"aptdemo step {at}: nbpipe-demo-lib 1.0 -> 1.1"]
    saved = lock.load(lock_path)[lock.key(IMAGE, at, step)][platform]
    # only the package that left moved: extra stays at its pin although 2.0 is served
    assert [p.split("@")[0] for p in saved.split()] == [
        "nbpipe-demo-extra=1.0",
        "nbpipe-demo-lib=1.1",
        "nbpipe-demo=1.0",
    ]
    assert again.digest != first.digest
    fresh = demo_catalog(apt_root, lock_path)  # the identity the lock file now gives
    assert again.ref == naming.local_ref(fresh.resolve(IMAGE), platform)
    assert installed(engine, again.ref) == {
        "nbpipe-demo": "1.0",
        "nbpipe-demo-lib": "1.1",
        "nbpipe-demo-extra": "1.0",
    }
    engine._run(["rmi", "-f", again.ref], check=False)


def test_the_package_store_rebuilds_the_same_image_after_the_archive_moved(
    repo, apt_root, engine, platform, tmp_path
) -> None:
    if engine.kind != "podman":
        pytest.skip(
            "the package store is filled from podman's apt cache folder (buildah's "
            "cache mounts live on the host; docker's do not)"
        )
    archive_dir, _ = repo
    store = tmp_path / "debs"
    options = BuildOptions(deb_store=store)
    cat, lines = locked_demo(engine, apt_root, platform, tmp_path / "lock.json")

    first = run(cat, engine, platform, tmp_path / "state", options)[IMAGE]
    assert first.ok, first.message
    built_id = engine.inspect(first.ref).id
    # the build kept every pinned .deb, under the sha256 its lock line names
    assert sorted(f.name for f in store.iterdir()) == sorted(
        f"{p.partition('@sha256:')[2]}.deb" for p in lines.split()
    )

    security_update(archive_dir)
    # A fresh engine store (a new runner): nothing built, only the root, loaded.
    # podman wants a short run root (<= 50 characters): not under pytest's tmp_path
    graph = Path(tempfile.mkdtemp(prefix="nbpipe-store-", dir="/var/tmp"))
    fresh = OciEngine(engine.kind, engine.binary, engine.runtime, graph_root=str(graph))
    image_tar = tmp_path / "root.tar"
    engine._run(["save", "-o", str(image_tar), apt_root.pinned(platform)])
    fresh._run(["load", "-i", str(image_tar)])
    try:
        # --locked: the archive lacks nbpipe-demo-lib=1.0 but the store has it: no refusal
        again = run(cat, fresh, platform, tmp_path / "state2", options, locked=True)[IMAGE]
        assert again.ok, again.message
        assert again.refreshed == []
        assert again.status == "built", (again.status, again.message)
        assert fresh.inspect(again.ref).id == built_id  # the identical image, byte for byte
        assert installed(fresh, again.ref)["nbpipe-demo-lib"] == "1.0"

        # A tampered .deb in the store is refused by its sha256.
        lib = next(p.partition("@sha256:")[2] for p in lines.split() if "demo-lib" in p)
        (store / f"{lib}.deb").write_bytes(b"!<arch>\nnot the package the lock names\n")
        fresh._run(["rmi", "-f", again.ref], check=False)
        bad = run(cat, fresh, platform, tmp_path / "state3", options, locked=True)[IMAGE]
        assert not bad.ok
        log = Path(bad.message.split("log: ", 1)[1].split()[0]).read_text()
        assert (
            f"the package store's {lib}.deb (nbpipe-demo-lib=1.0) does not match its "
            "sha256: refused" in log
        )
        assert not fresh.exists(again.ref)
    finally:
        fresh.drop_store()  # never `system reset`: /run/libpod is the machine's
        engine._run(["rmi", "-f", first.ref], check=False)
