"""Fresh runners and cold nodes for the benches (bench.py, cache_bench.py, coldstart.py):
a podman store of its own holding only the debootstrap root, with a $TMPDIR of its own
(where buildah keeps its cache mounts: pip's, uv's, apt's), and a loopback registry.
Not a test; imported by the scripts beside it.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Iterator

import anyio

ROOT_DIR = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT_DIR))

from nbpipe.run.pipeline import Pipeline  # noqa: E402
from nbpipe.run.report import ImageResult  # noqa: E402
from nbpipe.run.settings import Settings  # noqa: E402

if TYPE_CHECKING:
    from nbpipe.engines.oci import OciEngine
    from nbpipe.recipe.catalog import Catalog
    from nbpipe.recipe.image import BaseRef
    from nbpipe.recipe.options import BuildOptions

REGISTRY = ROOT_DIR / ".ci/setup-registry.sh"
# ext4 without a journal passes over every inode freed in the last 60 s when it allocates
# one (the kernel's recently_deleted(), 60 s once the inode table is written back), so
# files made just after many were removed cost a scan each. Measured here, one pull of
# jupyter into an empty store: 9.2 s (sys 5.0 s) a quiet minute after the last store was
# removed, 18.9 s (sys 15.9 s) one second after. A fresh runner has removed nothing.
RECENTLY_FREED_S = 61.0


def quiet_window(path: Path) -> float:
    """The seconds ``path``'s filesystem remembers freed inodes (RECENTLY_FREED_S on ext4
    without a journal, else 0)."""
    best, fstype, source = "", "", ""
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        left, _, right = line.partition(" - ")
        point = left.split()[4]
        if str(path).startswith(point.rstrip("/") + "/") and len(point) >= len(best):
            best, (fstype, source) = point, right.split()[:2]
    if fstype != "ext4":
        return 0.0
    jbd2 = Path("/proc/fs/jbd2")
    device = Path(source).name
    journaled = jbd2.is_dir() and any(p.name.startswith(device + "-") for p in jbd2.iterdir())
    return 0.0 if journaled else RECENTLY_FREED_S


def quiet(path: Path, wait: bool = True) -> float:
    """Before a timed run: the page cache written back, and (where the filesystem
    remembers freed inodes, unless ``wait`` is False) the earlier runs' removals out of
    its memory, as on a fresh runner. Returns the seconds that took."""
    start = time.monotonic()
    os.sync()
    if wait:
        time.sleep(quiet_window(path))
        os.sync()
    return time.monotonic() - start


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def registry(folder: Path) -> Iterator[str]:
    """A loopback registry (Debian's docker-registry) storing in ``folder``; yields
    ``127.0.0.1:PORT``. Its blobs are under ``folder / "data"``."""
    port = free_port()
    subprocess.run(
        ["bash", str(REGISTRY), "start", str(port), str(folder)], check=True, capture_output=True
    )
    try:
        yield f"127.0.0.1:{port}"
    finally:
        subprocess.run(["bash", str(REGISTRY), "stop", str(folder)], capture_output=True)


def folder_bytes(folder: Path) -> int:
    return sum(f.stat().st_size for f in folder.rglob("*") if f.is_file())


def local_podman() -> tuple["OciEngine", str, "BaseRef"]:
    """This machine's podman, platform and local debootstrap root (exit if it has none)."""
    from nbpipe.engines import rootfs
    from nbpipe.engines.oci import OciEngine
    from nbpipe.recipe import platforms as plat

    engine = OciEngine.detect("podman")
    platform = plat.host()
    root = rootfs.local_root(engine, (platform,))
    if root is None:
        sys.exit("no local root: run `nbpipe base bootstrap` first")
    return engine, platform, root


def save_root(engine: OciEngine, ref: str, path: Path) -> Path:
    """The root as an OCI archive: what a new runner starts from."""
    engine._run(["save", "--format", "oci-archive", "-o", str(path), ref])
    return path


@contextlib.contextmanager
def tmpdir(path: Path) -> Iterator[None]:
    """$TMPDIR (and Python's) set to ``path`` while the block runs: buildah's cache mounts
    live there, so a new folder is an empty pip/uv/apt download cache."""
    old_env, old_py = os.environ.get("TMPDIR"), tempfile.tempdir
    os.environ["TMPDIR"] = tempfile.tempdir = str(path)
    try:
        yield
    finally:
        if old_env is None:
            os.environ.pop("TMPDIR", None)
        else:
            os.environ["TMPDIR"] = old_env
        tempfile.tempdir = old_py


@dataclass
class Run:
    """One pipeline run on a fresh node."""

    label: str
    seconds: float
    results: list[ImageResult]
    pulled: int  # steps the shared layer cache served
    whole: int  # images the cache registry served finished (engines/image_cache.py)
    events: list[tuple[float, str, str]]  # (seconds since start, image, what)

    def phase(self, name: str) -> tuple[float, float]:
        """(build seconds, probe seconds) of image ``name``, from the pipeline's events."""
        start = built = probed = None
        for t, n, what in self.events:
            if n != name:
                continue
            if what.startswith("building"):
                start = t
            elif what.startswith("built in"):
                built = t
            elif what.startswith(("probes passed", "probe(s) failed")):
                probed = t
        if start is None or built is None:
            return 0.0, 0.0
        return built - start, (probed - built) if probed is not None else 0.0


@dataclass
class Node:
    """A fresh runner: a podman store of its own holding only the root (loaded from
    ``root_tar``), and a $TMPDIR of its own. Builds on it can be repeated (the store and
    the download caches are kept between them) until ``close``."""

    label: str
    engine: OciEngine  # the machine's; the node's own is ``self.store``
    work: Path
    root_tar: Path
    runs: int = field(default=0, init=False)

    def __post_init__(self) -> None:
        self.store = replace(self.engine, graph_root=str(self.work / self.label))
        self.tmp = self.work / f"{self.label}-tmp"
        self.tmp.mkdir(parents=True)
        # its package store: empty at first, as `--deb-store auto` is on a new machine
        self.debs = self.work / f"{self.label}-debs"
        self.store._run(["load", "-i", str(self.root_tar)])

    def build(
        self,
        catalog: Catalog,
        platform: str,
        options: BuildOptions,
        names: list[str],
        *,
        cache: str = "",
        probe: bool = False,
        no_cache: bool = False,
        label: str = "",
        prefetch: bool = True,
    ) -> Run:
        """``names`` and their ancestors built (and probed) on this node; exits naming
        what failed. A state folder of its own per run: probes are never skipped.
        ``prefetch``: as the command line does by default (NBPIPE_PREFETCH)."""
        self.runs += 1
        label = label or f"{self.label}-{self.runs}"
        state = self.work / f"{label}-state"
        settings = Settings(state_dir=state, cache_registry=cache, prefetch=prefetch)
        if options.deb_store is None:  # none given: the node's own, as a new machine has
            options = replace(options, deb_store=self.debs)
        events: list[tuple[float, str, str]] = []
        start = time.monotonic()

        def on_event(name: str, what: str) -> None:
            events.append((time.monotonic() - start, name, what))

        pipe = Pipeline.local(
            catalog,
            self.store,
            platform,
            options,
            settings=settings,
            probe=probe,
            no_cache=no_cache,
            on_event=on_event,
        )
        with tmpdir(self.tmp):
            start = time.monotonic()
            results = anyio.run(pipe.run, names)
            seconds = time.monotonic() - start
        bad = [f"{r.name}: {r.status.value} {r.message}" for r in results if not r.ok]
        if bad:
            sys.exit(f"{label}: " + "; ".join(bad))
        logs = [p.read_text(errors="replace") for p in (state / "logs").glob("*.log")]
        pulled = sum(text.count("--> Cache pulled from remote") for text in logs)
        whole = sum(text.count("image cache: pulled the finished image") for text in logs)
        return Run(label, seconds, results, pulled, whole, events)

    def buildah(self, args: list[str], **kw) -> subprocess.CompletedProcess[str]:
        """buildah on this node's store, with its $TMPDIR."""
        return buildah(Path(self.store.graph_root or ""), self.tmp, args, **kw)

    def size(self, ref: str) -> int:
        return self.store.inspect(ref).size

    def close(self) -> None:
        self.store.drop_store()
        shutil.rmtree(self.tmp, ignore_errors=True)
        shutil.rmtree(self.debs, ignore_errors=True)


def buildah(store: Path, tmp: Path, args: list[str], **kw) -> subprocess.CompletedProcess[str]:
    """buildah on the store at ``store`` (its run root beside it, ``store``-run), with
    $TMPDIR ``tmp``: a store of a node's or a bench section's own, never the machine's."""
    flags = ["--root", str(store), "--runroot", f"{store}-run"]
    with tmpdir(tmp):
        return subprocess.run(["buildah", *flags, *args], text=True, **kw)


@contextlib.contextmanager
def node(label: str, engine: OciEngine, work: Path, root_tar: Path) -> Iterator[Node]:
    n = Node(label, engine, work, root_tar)
    try:
        yield n
    finally:
        n.close()


def fresh_run(
    label: str,
    engine: OciEngine,
    catalog: Catalog,
    platform: str,
    options: BuildOptions,
    work: Path,
    root_tar: Path,
    image: str,
    cache: str,
    *,
    probe: bool = False,
) -> Run:
    """IMAGE (and its ancestors) built once in a fresh node, which is then removed."""
    quiet(work)  # the node before it was just removed
    with node(label, engine, work, root_tar) as n:
        return n.build(catalog, platform, options, [image], cache=cache, probe=probe, label=label)
