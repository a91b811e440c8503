"""Downloads start at once (issue 23, item 2).

A cold chain spends most of its time on the network, but each build fetches its own
files only when its step runs: jupyter-scipy's wheels wait for base and jupyter to
build and for its own apt step to install. Here the run fetches the locked files of
every image it will build as soon as it starts, parents' first, many at a time, into
the build cache mounts the steps already read:

- .debs into the run's package store (options.deb_store, as <sha256>.deb): the apt step
  installs them by path, and asks the archive for nothing (not even its lists) when all
  of its pins are there; without a store, into apt's archive cache (``nbpipe-apt-archives``)
  under the names apt gives them, where apt checks each against its index and does not
  fetch it again;
- a locked uv step's wheels and sdists into pip's cache mount (``nbpipe-pip``), one
  folder per step (steps.PREFETCHED/<Pip.prefetch_key()>) holding the files and a simple
  index of them, moved into place whole once the downloads are done: uv asks that index
  first and takes each project it lists from it alone, the lock's hashes checked as
  ever; PyPI only for the rest (an sdist's build requirements, a file not found); without
  the folder the step asks PyPI as before. uv's own pinned wheel the same way
  (steps.UV_PREFETCHED), so a build fetches nothing the run already has.

Nothing here changes what a step's text says, so an image is the same with or without
it. An image's build waits for its own files (so the two never fetch the same bytes);
a file that cannot be found or fetched is only a line in the events: its step fetches
it itself. Only for podman as root, whose cache mounts are host folders (oci.cache_dir).
"""

from __future__ import annotations

import contextlib
import html
import os
import shutil
import tempfile
import time
from concurrent.futures import Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Callable

import anyio

from nbpipe.errors import NbpipeError
from nbpipe.inputs import safe_io
from nbpipe.locks import downloads
from nbpipe.locks.downloads import LockedFile
from nbpipe.recipe.catalog import Catalog
from nbpipe.recipe.steps import APT_ARCHIVES, PREFETCHED_DIR, UV_PREFETCHED, Pip, Step

if TYPE_CHECKING:
    from nbpipe.engines.oci import OciEngine

JOBS = 16  # downloads at once: what saturated this machine's link (bench/bench.py limit)
HEARTBEAT = 5.0  # seconds between touches of the markers pip steps wait on
PIP_MOUNT = "nbpipe-pip"


@dataclass
class Prefetch:
    engine: OciEngine
    platform: str
    deb_store: Path | None  # .debs the package store holds are not fetched
    on_event: Callable[[str, str], None]
    names: list[str]  # the images to fetch for, in build order
    _ready: dict[str, anyio.Event] = field(init=False)  # per image: its .debs are in
    _pending: set[Path] = field(default_factory=set, init=False)  # markers on their way
    _uv_asked: bool = field(default=False, init=False)
    # the archive's index, read once a run
    _debian: dict[str, tuple[str, int, str]] | None = field(default=None, init=False)
    _staging: Path = field(default=Path("/nonexistent"), init=False)  # made by ``run``

    async def ready(self, name: str) -> None:
        """Wait until ``name``'s .debs are fetched (or given up on): its build may start
        then (its package store is read when the build starts); its pip steps wait for
        their own folders themselves (steps.Pip, the ``.pending`` marker). At once for an
        image this run does not prefetch."""
        if name in self._ready:
            await self._ready[name].wait()

    def __post_init__(self) -> None:  # before any build asks: no race with ``run``
        self._ready = {name: anyio.Event() for name in self.names}

    async def run(self, catalog: Catalog) -> None:
        """Fetch the files of ``names`` (in build order: each image's .debs, then its
        wheels); each image's ``ready`` is set when its .debs are in. Cancelled with the
        run; no marker outlives it."""
        arch = self.platform.split("/")[1]
        pool = ThreadPoolExecutor(JOBS, thread_name_prefix="nbpipe-prefetch")
        # Wheels land in a folder of the run's own (root's, 0700) beside the cache mounts,
        # on their file system: a build step can write in pip's cache mount (it is the
        # step user's), so nothing is downloaded there; only hard links are made in it,
        # in folders reached without following a link (safe_io.OutDir).
        self._staging = Path(
            tempfile.mkdtemp(prefix="nbpipe-prefetch-", dir=self._pip_cache().parent)
        )
        try:
            async with anyio.create_task_group() as beating:
                beating.start_soon(self._heartbeat)
                async with anyio.create_task_group() as tg:
                    for name in self.names:
                        steps = catalog.resolve(name).steps_for(self.platform)
                        jobs = _Jobs()
                        try:  # the .debs first: the build waits for them, and only them
                            for kind in ("deb", "whl"):
                                await anyio.to_thread.run_sync(
                                    self._submit, pool, steps, arch, kind, jobs
                                )
                        # an index could not be read, or a link sits where a folder goes
                        except (OSError, ValueError, NbpipeError) as exc:
                            self.on_event(
                                name, f"prefetch: not done ({exc}); steps fetch their own"
                            )
                            self._ready[name].set()
                            continue
                        tg.start_soon(self._finish, name, jobs)
                beating.cancel_scope.cancel()
        finally:
            for event in self._ready.values():
                event.set()
            for marker in list(self._pending):
                _unmark(marker)
            self._pending.clear()
            pool.shutdown(wait=False, cancel_futures=True)
            shutil.rmtree(self._staging, ignore_errors=True)

    async def _heartbeat(self) -> None:
        """A pip step waits on a marker only while it is fresh (touched in the last minute,
        steps.await_prefetch): one left by a run that was killed is then ignored."""
        while True:
            for marker in list(self._pending):
                with contextlib.suppress(OSError):
                    os.utime(marker, follow_symlinks=False)
            await anyio.sleep(HEARTBEAT)

    # -- one image -------------------------------------------------------------------
    def _submit(
        self, pool: ThreadPoolExecutor, steps: tuple[Step, ...], arch: str, kind: str, jobs: "_Jobs"
    ) -> None:
        """Look up and queue the files of ``kind`` (deb | whl) that ``steps`` install."""
        files = {s: [f for f in downloads.step_files(s) if f.kind == kind] for s in steps}
        todo = [f for fs in files.values() for f in fs if not self._stored(f)]
        if kind == "deb" and todo and self._debian is None:
            self._debian = downloads.debian_index(arch)  # once a run: 3 suites, ~10 MB
        found, missing = downloads.find_urls(todo, arch, self._debian) if todo else ([], [])
        found.sort(key=lambda f: -f.size)  # the largest first: no long tail of one big file
        jobs.missing += missing
        with self._prefetched() as out:
            uv_first = self._uv_asked or not any(
                isinstance(s, Pip) and s.installer == "uv" for s in steps
            )
            if kind == "whl" and not uv_first:
                self._uv_asked = True  # the first uv step's image fetches uv, once a run
                if not out.is_dir(UV_PREFETCHED):
                    jobs.uv = downloads.uv_wheels(arch)
                    found = jobs.uv + found
                    self._mark(out, UV_PREFETCHED)
            by_sha = {f.sha256: f for f in found}
            for step, fs in files.items():
                if isinstance(step, Pip) and fs and not out.is_dir(step.prefetch_key()):
                    # what was not found, the step gets from PyPI
                    jobs.folders.append(
                        (step, [by_sha[f.sha256] for f in fs if f.sha256 in by_sha])
                    )
                    self._mark(out, step.prefetch_key())
        wanted = {f.sha256 for _, fs in jobs.folders for f in fs} | {f.sha256 for f in jobs.uv}
        for f in found:  # uv first, then the largest
            if f.kind == "whl" and f.sha256 not in wanted:
                continue  # its step's folder is there already
            dest = self._deb(f) or self._apt_cache() / f.filename
            if f.kind == "whl":
                dest = self._staging / f.sha256 / f.filename
            if dest.is_file() or f.sha256 in jobs.futures:
                continue
            jobs.futures[f.sha256] = (f.kind, pool.submit(downloads.download, f, dest))
            jobs.bytes += f.size

    def _prefetched(self) -> safe_io.OutDir:
        """steps.PREFETCHED on this machine, opened without following a link."""
        return safe_io.OutDir(self._pip_cache() / PREFETCHED_DIR, "the run's prefetch folder")

    def _mark(self, out: safe_io.OutDir, folder: str) -> None:
        out.write(f"{folder}.pending", b"")
        self._pending.add(out.folder / f"{folder}.pending")

    def _stored(self, f: LockedFile) -> bool:
        deb = self._deb(f)
        return deb is not None and deb.is_file()

    def _deb(self, f: LockedFile) -> Path | None:
        """Where a .deb goes in the package store (installed from there by path, and no
        lists fetched when all are there); None without a store, or for a wheel."""
        if f.kind != "deb" or self.deb_store is None:
            return None
        return self.deb_store / f"{f.sha256}.deb"

    def _apt_cache(self) -> Path:
        return self._cache(APT_ARCHIVES.id, 0, 0)

    async def _finish(self, name: str, jobs: "_Jobs") -> None:
        start = time.monotonic()
        debs = [fut for kind, fut in jobs.futures.values() if kind == "deb"]
        await anyio.to_thread.run_sync(lambda: wait(debs))
        self._ready[name].set()  # the build may start: its pip steps wait for their folders
        await anyio.to_thread.run_sync(lambda: wait([fut for _, fut in jobs.futures.values()]))
        failed = [
            f"{sha[:12]}: {fut.exception()}"
            for sha, (_, fut) in jobs.futures.items()
            if fut.exception()
        ]
        fetched = len(jobs.futures) - len(failed)
        ready = 0
        try:
            with self._prefetched() as out:
                for step, files in jobs.folders:
                    ready += _gather(out, step.prefetch_key(), files, self._staging)
                if jobs.uv:  # pip's --find-links: no index
                    _gather(out, UV_PREFETCHED, jobs.uv, self._staging, index=False)
        except NbpipeError as exc:  # a link where a folder goes: planted, never followed
            failed.append(f"its folders not made ({exc}); its steps ask PyPI")
        finally:
            for step, _ in jobs.folders:
                self._unmark(step.prefetch_key())
            if jobs.uv:
                self._unmark(UV_PREFETCHED)
        mb = jobs.bytes / 1e6
        self.on_event(
            name,
            f"prefetched {fetched} file(s), {mb:,.0f} MB, "
            f"in {time.monotonic() - start:.0f}s ({ready} pip step(s) served here)"
            + (f"; not found: {len(jobs.missing)}" if jobs.missing else "")
            + (f"; failed: {'; '.join(failed[:3])}" if failed else ""),
        )

    def _unmark(self, folder: str) -> None:
        marker = self._pip_cache() / PREFETCHED_DIR / f"{folder}.pending"
        self._pending.discard(marker)
        _unmark(marker)

    def _cache(self, cache_id: str, uid: int, gid: int) -> Path:
        return self.engine.cache_dir(cache_id, create=(uid, gid))

    def _pip_cache(self) -> Path:
        return self._cache(PIP_MOUNT, 1000, 0)


def _unmark(marker: Path) -> None:
    with contextlib.suppress(OSError):
        marker.unlink()


@dataclass
class _Jobs:
    futures: dict[str, tuple[str, Future]] = field(default_factory=dict)  # sha256 -> kind, job
    folders: list[tuple[Pip, list[LockedFile]]] = field(default_factory=list)
    uv: list[LockedFile] = field(default_factory=list)  # uv's own wheels, when fetched here
    missing: list[str] = field(default_factory=list)
    bytes: int = 0


def _gather(
    out: safe_io.OutDir, folder: str, files: list[LockedFile], staging: Path, index: bool = True
) -> bool:
    """PREFETCHED/``folder``: hard links to each of ``files`` and (``index``) a simple
    index of them (PEP 503: simple/<project>/index.html, each link with its sha256),
    moved into place whole: a step sees its folder complete or not at all. A file that
    did not arrive is left out (its project then comes from PyPI). False: none did."""
    if out.is_dir(folder):
        return True
    there = [f for f in files if (staging / f.sha256 / f.filename).is_file()]
    if not there:
        return False
    tmp = f".incoming-{folder}-{os.getpid()}-{os.urandom(4).hex()}"
    projects: dict[str, list[LockedFile]] = {}
    for f in there:
        out.link(staging / f.sha256 / f.filename, f"{tmp}/{f.filename}")
        projects.setdefault(f.project, []).append(f)
    if index:
        for project, fs in projects.items():
            links = "".join(
                f'<a href="../../{html.escape(f.filename)}#sha256={f.sha256}">'
                f"{html.escape(f.filename)}</a>\n"
                for f in fs
            )
            page = f"<!DOCTYPE html>\n<html><body>\n{links}</body></html>\n"
            out.write(f"{tmp}/simple/{project}/index.html", page)
    if not out.rename(tmp, folder):  # another run put it there first
        with contextlib.suppress(OSError):
            shutil.rmtree(out.folder / tmp)
    return True
