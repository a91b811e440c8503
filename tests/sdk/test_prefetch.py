"""Downloads start at once (run/prefetch.py), offline: what lands where in the build cache
mounts, when a pip step's folder appears (only whole), and what the step's script does
with it. The network is replaced by a fake that serves each file's bytes by sha256; the
real thing is tests/engine/test_prefetch.py."""

from __future__ import annotations

import hashlib
import os
from dataclasses import replace
from pathlib import Path

import anyio
import pytest

from nbpipe.engines.oci import OciEngine
from nbpipe.locks import downloads
from nbpipe.locks.downloads import LockedFile
from nbpipe.recipe import platforms as plat
from nbpipe.recipe import steps as s
from nbpipe.recipe.catalog import Catalog
from nbpipe.recipe.image import BaseRef
from nbpipe.run.prefetch import Prefetch

ROOT = BaseRef("example.org/root", {plat.AMD64: "sha256:" + "1" * 64})
BYTES = {name: f"the bytes of {name}".encode() for name in ("a", "b", "c", "d", "uv")}
SHA = {name: hashlib.sha256(data).hexdigest() for name, data in BYTES.items()}

pytestmark = pytest.mark.skipif(
    os.geteuid() != 0, reason="prefetch fills buildah's cache folders, which are root's"
)


def pip_lock(*names: str) -> str:
    return "\n".join(f"{n}==1.0 --hash=sha256:{SHA[n]}" for n in names)


def catalog(pip: str, apt: str) -> Catalog:
    cat = Catalog()
    cat.add(
        "t",
        ROOT,
        lambda img: img.with_step(s.Apt(packages=("d",), locked=apt)).with_step(
            s.Pip(packages=("a",), locked=pip)
        ),
    )
    return cat


@pytest.fixture()
def net(monkeypatch) -> dict[str, str]:
    """PyPI and Debian as a dict: sha256 -> the file's name there (absent: not served)."""
    served = {
        SHA["a"]: "a-1.0-py3-none-any.whl",
        SHA["b"]: "b-1.0.tar.gz",
        SHA["d"]: "d_1%3a1.0_amd64.deb",
    }

    def find_urls(files, arch, debian=None):
        found, missing = [], []
        for f in files:
            if f.sha256 in served:
                name = served[f.sha256]
                found.append(replace(f, url=f"https://x/{name}", size=10, filename=name))
            else:
                missing.append(f"{f.name}: not served")
        return found, missing

    def download(f: LockedFile, dest: Path) -> int:
        data = next(BYTES[n] for n, h in SHA.items() if h == f.sha256)
        dest.parent.mkdir(parents=True, exist_ok=True)
        dest.write_bytes(data)
        return len(data)

    uv = LockedFile("uv==x", SHA["uv"], "whl", "https://x/uv.whl", 10, "uv-x-py3-none-any.whl")
    monkeypatch.setattr(downloads, "uv_wheels", lambda arch: [uv])
    monkeypatch.setattr(downloads, "find_urls", find_urls)
    monkeypatch.setattr(downloads, "debian_index", lambda arch: {})
    monkeypatch.setattr(downloads, "download", download)
    return served


def prefetch(
    tmp_path: Path, monkeypatch, cat: Catalog, store: Path | None = None
) -> tuple[Path, list[str]]:
    monkeypatch.setenv("TMPDIR", str(tmp_path))
    events: list[str] = []
    p = Prefetch(
        OciEngine("podman", "/bin/false"), plat.AMD64, store, lambda n, w: events.append(w), ["t"]
    )
    anyio.run(lambda: p.run(cat))
    anyio.run(lambda: p.ready("t"))  # set: never waits forever
    return tmp_path / "buildah-cache", events


def test_debs_land_under_apts_names_and_a_whole_lock_gets_its_folder(
    tmp_path, monkeypatch, net
) -> None:
    apt = f"d=1:1.0@sha256:{SHA['d']}"
    cat = catalog(pip_lock("a"), apt)
    cache, events = prefetch(tmp_path, monkeypatch, cat)
    assert (cache / "nbpipe-apt-archives" / "d_1%3a1.0_amd64.deb").read_bytes() == BYTES["d"]
    step = cat.resolve("t").steps_for(plat.AMD64)[-1]
    assert isinstance(step, s.Pip)
    folder = cache / "nbpipe-pip" / s.PREFETCHED_DIR / step.prefetch_key()
    assert sorted(p.name for p in folder.iterdir()) == ["a-1.0-py3-none-any.whl", "simple"]
    assert (folder / "a-1.0-py3-none-any.whl").read_bytes() == BYTES["a"]
    page = (folder / "simple" / "a" / "index.html").read_text()  # PEP 503, with the sha256
    assert f'<a href="../../a-1.0-py3-none-any.whl#sha256={SHA["a"]}">' in page
    # buildah makes a cache mount's folder for its owner: made the same way when missing
    assert (cache / "nbpipe-pip").stat().st_uid == 1000
    uv = cache / "nbpipe-pip" / s.PREFETCHED_DIR / s.UV_PREFETCHED / "uv-x-py3-none-any.whl"
    assert uv.read_bytes() == BYTES["uv"]  # the first uv step's image fetches uv itself
    assert events == ["prefetched 3 file(s), 0 MB, in 0s (1 pip step(s) served here)"]


def test_with_a_package_store_debs_go_there_by_sha256_and_stored_ones_are_not_fetched(
    tmp_path, monkeypatch, net
) -> None:
    store = tmp_path / "debs"
    cat = catalog(pip_lock("a"), f"d=1:1.0@sha256:{SHA['d']}")
    cache, events = prefetch(tmp_path, monkeypatch, cat, store)
    assert (store / f"{SHA['d']}.deb").read_bytes() == BYTES["d"]
    assert not (cache / "nbpipe-apt-archives" / "d_1%3a1.0_amd64.deb").exists()
    _, again = prefetch(tmp_path, monkeypatch, cat, store)  # all there: nothing fetched
    assert again[0].startswith("prefetched 0 file(s)")


def test_an_sdist_is_listed_too_and_a_file_found_nowhere_is_left_to_pypi(
    tmp_path, monkeypatch, net
) -> None:
    """uv takes a project the folder's index lists from it alone (first-index) and asks
    PyPI for the rest: an sdist is served (its build requirements come from PyPI), a
    project whose file was found nowhere is not listed, so PyPI serves it."""
    cat = catalog(pip_lock("a", "b", "c"), f"d=1:1.0@sha256:{SHA['d']}")
    step = cat.resolve("t").steps_for(plat.AMD64)[-1]
    assert isinstance(step, s.Pip)
    cache, events = prefetch(tmp_path, monkeypatch, cat)
    index = cache / "nbpipe-pip" / s.PREFETCHED_DIR / step.prefetch_key() / "simple"
    assert sorted(p.name for p in index.iterdir()) == ["a", "b"]  # c: not found
    assert "b-1.0.tar.gz#sha256=" in (index / "b" / "index.html").read_text()
    assert "(1 pip step(s) served here); not found: 1" in events[0]


def test_project_names_are_listed_as_an_index_normalizes_them() -> None:
    f = LockedFile("Foo.Bar_baz==1.0", SHA["a"], "whl")
    assert f.project == "foo-bar-baz"


def test_the_build_waits_for_its_debs_only_and_no_marker_outlives_the_run(
    tmp_path, monkeypatch, net
) -> None:
    """The build may start once its .debs are in (its pip steps wait for their folders
    themselves, on a fresh ``.pending`` marker); the markers go when the run ends."""
    import threading

    wheels_may_go = threading.Event()
    fake = downloads.download

    def download(f: LockedFile, dest: Path) -> int:
        if f.kind == "whl":
            assert wheels_may_go.wait(10), "the build's gate waited for the wheels"
        return fake(f, dest)

    monkeypatch.setattr(downloads, "download", download)
    monkeypatch.setenv("TMPDIR", str(tmp_path))
    cat = catalog(pip_lock("a"), f"d=1:1.0@sha256:{SHA['d']}")
    step = cat.resolve("t").steps_for(plat.AMD64)[-1]
    assert isinstance(step, s.Pip)
    prefetched = tmp_path / "buildah-cache" / "nbpipe-pip" / s.PREFETCHED_DIR
    p = Prefetch(OciEngine("podman", "/bin/false"), plat.AMD64, None, lambda n, w: None, ["t"])
    seen: list[str] = []

    async def main() -> None:
        async with anyio.create_task_group() as tg:
            tg.start_soon(p.run, cat)
            with anyio.fail_after(10):
                await p.ready("t")
            seen.extend(sorted(x.name for x in prefetched.iterdir()))
            wheels_may_go.set()

    anyio.run(main)
    key = step.prefetch_key()
    assert seen == [f"{key}.pending", f"{s.UV_PREFETCHED}.pending"]  # on their way
    assert sorted(x.name for x in prefetched.iterdir()) == sorted([key, s.UV_PREFETCHED])


def test_the_step_installs_from_its_folder_only_when_it_is_there() -> None:
    """The script, not the Dockerfile's options, decides: an image is the same with or
    without a prefetch. With the folder: its index first, the lock's hashes required."""
    locked = s.Pip(packages=("a",), locked=pip_lock("a"))
    [op] = locked.lower()
    folder = f"{s.PREFETCHED}/{locked.prefetch_key()}"
    assert (
        f"  set -- --extra-index-url file://{folder}/simple --index-strategy first-index"
        in op.script
    )
    assert op.script.count('--require-hashes -r /tmp/nbpipe-pip.lock "$@"') == 1
    # uv notes a file's time (dist-info/uv_cache.json, listed in RECORD) for what it
    # installed from a folder: removed, so the image is the index-installed one
    # (checked for jupyter on 2026-12-07: all 11 layers the same with and without)
    assert "find /opt/venv -path '*.dist-info/uv_cache.json'" in op.script
    # pip as installer, an index of the step's own, or no lock: never from a folder
    for step in (
        replace(locked, installer="pip"),
        replace(locked, index_url="https://idx.example/simple"),
        s.Pip(packages=("a",)),
    ):
        [op] = step.lower()
        assert f"{s.PREFETCHED}/{step.prefetch_key()}" not in op.script
        assert '"$@"' not in op.script
    assert locked.prefetch_key() != s.Pip(packages=("a",), locked=pip_lock("b")).prefetch_key()


def test_lock_lines_of_another_shape_fetch_nothing() -> None:
    odd = s.Pip(packages=("a",), locked="a==1.0 --hash=sha256:" + SHA["a"] + "\n-e ./x")
    assert downloads.step_files(odd) == []
    assert [f.kind for f in downloads.step_files(s.Pip(packages=("a",), locked=pip_lock("a")))] == [
        "whl"
    ]


def test_nothing_is_fetched_for_an_image_the_cache_registry_holds_finished(
    tmp_path, monkeypatch
) -> None:
    """A runner that will pull an image whole (engines/image_cache.py) must not spend
    the network on its files: the run asks the cache first (no engine needed: the key is
    the recipe chain's)."""
    from nbpipe.run.backends import Local
    from nbpipe.run.pipeline import Pipeline
    from nbpipe.run.settings import Settings

    cat = catalog(pip_lock("a"), f"d=1:1.0@sha256:{SHA['d']}")
    cat.add("u", "t", lambda img: img.with_env("U", "1"))
    asked: list[str] = []

    def in_cache(self, image, platform) -> bool:
        asked.append(image.name)
        return image.name == "t"

    monkeypatch.setattr(Local, "in_cache", in_cache)
    events: list[tuple[str, str]] = []
    settings = Settings(state_dir=tmp_path, prefetch=True, cache_registry="127.0.0.1:5000/a")
    pipe = Pipeline.local(
        cat,
        OciEngine("podman", "/bin/false"),
        plat.AMD64,
        settings=settings,
        on_event=lambda n, w: events.append((n, w)),
    )
    assert pipe._in_cache(["t", "u"]) == ["t"] and asked == ["t", "u"]
    assert ("t", "the cache registry holds it finished: nothing to fetch") in events
    # without a cache registry nobody is asked
    asked.clear()
    plain = Pipeline.local(
        cat,
        OciEngine("podman", "/bin/false"),
        plat.AMD64,
        settings=Settings(state_dir=tmp_path, prefetch=True),
    )
    assert plain._in_cache(["t", "u"]) == [] and asked == []


def test_a_link_planted_in_pips_cache_mount_is_never_written_through(
    tmp_path, monkeypatch, net
) -> None:
    """A build step can write in pip's cache mount (it is the step user's): a link it
    left where the run's folder goes is refused, nothing is written where it points,
    and the run goes on (the steps ask PyPI)."""
    target = tmp_path / "elsewhere"
    target.mkdir()
    pip_cache = tmp_path / "buildah-cache" / "nbpipe-pip"
    pip_cache.mkdir(parents=True)
    (pip_cache / s.PREFETCHED_DIR).symlink_to(target)
    cat = catalog(pip_lock("a"), f"d=1:1.0@sha256:{SHA['d']}")
    cache, events = prefetch(tmp_path, monkeypatch, cat)
    assert list(target.iterdir()) == []
    assert "prefetch: not done" in events[0] and "symbolic link" in events[0]


def test_a_file_name_that_is_not_a_plain_name_is_never_a_path() -> None:
    assert downloads.SAFE_NAME.fullmatch("numpy-2.4.6-cp311-cp311-manylinux_2_28_x86_64.whl")
    assert downloads.SAFE_NAME.fullmatch("libc6_2.36-9+deb12u14_amd64.deb")
    assert downloads.SAFE_NAME.fullmatch("git_1%3a2.39.5-0+deb12u3_amd64.deb")
    for bad in ("../../etc/passwd", "a/b.whl", ".hidden.whl", "x\nb.whl", ""):
        assert not downloads.SAFE_NAME.fullmatch(bad), bad

