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
- wheels into pip's cache mount (``nbpipe-pip``), one folder per locked step
  (steps.PREFETCHED/<Pip.prefetch_key()>), moved into place only when every file of
  that lock is there: the step then installs from it with --no-index, the lock's hashes
  checked as ever; without it the step asks its index as before. uv's own pinned wheel
  the same way (steps.UV_PREFETCHED), so a build fetches nothing the run already has.

Nothing here changes what a step's text says, so an image is the same with or without
it. An image's build waits for its own files (so the two never fetch the same bytes);
a file that cannot be found or fetched is only a line in the events: its step fetches
it itself. Only for podman as root, whose cache mounts are host folders (oci.cache_dir).
"""

from __future__ import annotations

import os
import shutil
import time
from concurrent.futures import Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Callable

import anyio

from nbpipe.locks import downloads
from nbpipe.locks.downloads import LockedFile
from nbpipe.recipe.catalog import Catalog
from nbpipe.recipe.steps import APT_ARCHIVES, PREFETCHED_DIR, UV_PREFETCHED, Pip, Step

if TYPE_CHECKING:
    from nbpipe.engines.oci import OciEngine

JOBS = 16  # downloads at once: what saturated this machine's link (bench/bench.py limit)
PIP_MOUNT = "nbpipe-pip"


@dataclass
class Prefetch:
    engine: OciEngine
    platform: str
    deb_store: Path | None  # .debs the package store holds are not fetched
    on_event: Callable[[str, str], None]
    _ready: dict[str, anyio.Event] = field(default_factory=dict)
    _uv_asked: bool = False

    async def ready(self, name: str) -> None:
        """Wait until ``name``'s files are fetched (or given up on); at once for an image
        this run does not prefetch."""
        if name in self._ready:
            await self._ready[name].wait()

    async def run(self, catalog: Catalog, names: list[str]) -> None:
        """Fetch the files of ``names`` (in build order); each image's ``ready`` is set
        when its own are in. Cancelled with the run."""
        for name in names:
            self._ready[name] = anyio.Event()
        arch = self.platform.split("/")[1]
        pool = ThreadPoolExecutor(JOBS, thread_name_prefix="nbpipe-prefetch")
        try:
            async with anyio.create_task_group() as tg:
                for name in names:
                    steps = catalog.resolve(name).steps_for(self.platform)
                    try:
                        jobs = await anyio.to_thread.run_sync(self._submit, pool, steps, arch)
                    except (OSError, ValueError) as exc:  # the index could not be read
                        self.on_event(name, f"prefetch: not done ({exc}); steps fetch their own")
                        self._ready[name].set()
                        continue
                    tg.start_soon(self._finish, name, jobs)
        finally:
            for event in self._ready.values():
                event.set()
            pool.shutdown(wait=False, cancel_futures=True)

    # -- one image -------------------------------------------------------------------
    def _submit(self, pool: ThreadPoolExecutor, steps: tuple[Step, ...], arch: str) -> "_Jobs":
        files = {s: downloads.step_files(s) for s in steps}
        todo = [f for fs in files.values() for f in fs if not self._stored(f)]
        found, missing = downloads.find_urls(todo, arch) if todo else ([], [])
        jobs = _Jobs(missing=missing)
        pip_cache = self._cache(PIP_MOUNT, 1000, 0)
        uv = pip_cache / PREFETCHED_DIR / UV_PREFETCHED
        if not self._uv_asked and any(isinstance(s, Pip) and s.installer == "uv" for s in steps):
            self._uv_asked = True  # the first uv step's image fetches uv, once a run
            if not uv.is_dir():
                wheels = downloads.uv_wheels(arch)
                found += wheels
                jobs.uv = wheels
        by_sha = {f.sha256: f for f in found}
        for f in by_sha.values():
            dest = self._deb(f) or self._apt_cache() / f.filename
            if f.kind == "whl":
                dest = pip_cache / "prefetched-files" / f.sha256 / f.filename
            if dest.is_file():
                continue
            jobs.futures[f.sha256] = pool.submit(downloads.download, f, dest)
            jobs.bytes += f.size
        for step, fs in files.items():
            if isinstance(step, Pip) and fs:
                jobs.folders.append((step, [by_sha.get(f.sha256) for f in fs]))
        return jobs

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
        await anyio.to_thread.run_sync(lambda: wait(list(jobs.futures.values())))
        failed = [
            f"{sha[:12]}: {fut.exception()}" for sha, fut in jobs.futures.items() if fut.exception()
        ]
        pip_cache = self._cache(PIP_MOUNT, 1000, 0)
        ready = 0
        for step, maybe in jobs.folders:
            files = [f for f in maybe if f is not None and f.is_wheel]
            if len(files) == len(maybe) and _gather(pip_cache, step.prefetch_key(), files):
                ready += 1
        if jobs.uv:
            _gather(pip_cache, UV_PREFETCHED, jobs.uv)
        mb = jobs.bytes / 1e6
        self.on_event(
            name,
            f"prefetched {len(jobs.futures) - len(failed)} file(s), {mb:,.0f} MB, "
            f"in {time.monotonic() - start:.0f}s ({ready} pip step(s) offline)"
            + (f"; not found: {len(jobs.missing)}" if jobs.missing else "")
            + (f"; failed: {'; '.join(failed[:3])}" if failed else ""),
        )
        self._ready[name].set()

    def _cache(self, cache_id: str, uid: int, gid: int) -> Path:
        return self.engine.cache_dir(cache_id, create=(uid, gid))


@dataclass
class _Jobs:
    futures: dict[str, Future] = field(default_factory=dict)
    folders: list[tuple[Pip, list[LockedFile | None]]] = field(default_factory=list)
    uv: list[LockedFile] = field(default_factory=list)  # uv's own wheels, when fetched here
    missing: list[str] = field(default_factory=list)
    bytes: int = 0


def _gather(pip_cache: Path, folder: str, files: list[LockedFile]) -> bool:
    """PREFETCHED/``folder``: hard links to each of ``files``, moved into place whole
    (a step sees all of its lock's files or no folder). False: a file is not there."""
    final = pip_cache / PREFETCHED_DIR / folder
    if final.is_dir():
        return True
    fetched = [pip_cache / "prefetched-files" / f.sha256 / f.filename for f in files]
    if not all(p.is_file() for p in fetched):
        return False
    tmp = final.with_name(f".incoming-{final.name}-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    for path in fetched:
        os.link(path, tmp / path.name)
    try:
        tmp.rename(final)
    except OSError:  # another run put it there first
        shutil.rmtree(tmp, ignore_errors=True)
    return True
