"""The one build-and-probe pipeline, on any backend (run/backends.py): parents first,
independent branches concurrently (bounded), already-built digests skipped, failures
contained. `schedule.run` has this one caller.

One image failing marks its descendants blocked and lets unrelated branches finish. A
child builds as soon as its parent is built (or cached), while the parent's probes run;
a parent that fails them blocks the child all the same (built, never reported ok).

Debian's archive moves under a lock (archive.py). When apt refuses a pinned version that
has left the archive, the default run re-resolves that one step on the built parent,
saves it in the lock file, and runs again: the image gets the digest of what it really
installs, and only it and its descendants move. ``locked`` (releases) refuses instead,
before anything is built.
"""

from __future__ import annotations

import json
import os
import time
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Iterator, Mapping

import anyio

from nbpipe.errors import NbpipeError
from nbpipe.inputs import safe_io
from nbpipe.locks import archive, lock
from nbpipe.probes.result import ProbeResult, Status
from nbpipe.recipe import naming
from nbpipe.recipe.catalog import Catalog
from nbpipe.recipe.options import BuildOptions
from nbpipe.recipe.steps import Apt
from nbpipe.run import schedule
from nbpipe.run.backends import (
    Backend,
    BuildFailed,
    Built,
    DaggerBackend,
    Local,
    dagger_reason,
    host_source,
)
from nbpipe.run.prefetch import Prefetch
from nbpipe.run.report import ImageResult, Outcome
from nbpipe.run.settings import Settings
from nbpipe.run.state import ImageState, State, assess

if TYPE_CHECKING:
    from nbpipe.engines.oci import ImageInfo, OciEngine
    from nbpipe.engines.registry import Registry
    from nbpipe.run.machine import Machine

Event = Callable[[str, str], None]  # (image name, what is happening)


@dataclass
class Pipeline:
    """The one run: every command that builds (build, test, publish, lock,
    verify-reproducible, the Dagger module's ci) runs its images through here, on any
    backend. The caller holds the state folder's lock (one run at a time per folder)."""

    catalog: Catalog
    backend: Backend
    platform: str
    options: BuildOptions = field(default_factory=BuildOptions)
    settings: Settings = field(default_factory=Settings)
    jobs: int = 2
    probe: bool = True  # run the contract probes after each build
    force_probe: bool = False  # probe even when a passing record exists
    # `nbpipe test NAMES`: only these are probed afresh; an ancestor already built is
    # not probed at all (one built in this run is, as `build` would). None: every image.
    targets: frozenset[str] | None = None
    no_cache: bool = False
    on_event: Event = lambda name, what: None
    locked: bool = False  # a pin that left the archive is an error, never a lock change
    _refreshed: dict[str, list[str]] = field(default_factory=dict, init=False, repr=False)
    _refreshed_keys: set[str] = field(default_factory=set, init=False, repr=False)
    _prefetch: Prefetch | None = field(default=None, init=False, repr=False)
    _ahead: anyio.Event | None = field(default=None, init=False, repr=False)  # _pull_ahead done
    _cached: frozenset[str] = field(default=frozenset(), init=False, repr=False)  # it pulls

    @classmethod
    def local(
        cls,
        catalog: Catalog,
        engine: "OciEngine",
        platform: str,
        options: BuildOptions | None = None,
        *,
        settings: Settings | None = None,
        state_dir: Path | None = None,
        store: "Mapping[str, ImageInfo] | None" = None,
        tags: set[str] | None = None,
        pod: str | None = None,
        ready_timeout: float = 90.0,
        **how,
    ) -> "Pipeline":
        """The pipeline on a local engine (podman or docker): the common case, in one call."""
        options = options or BuildOptions()
        settings = settings or Settings()
        if state_dir is not None:
            settings = replace(settings, state_dir=state_dir)
        backend = Local(engine, options, settings, store, tags, pod, ready_timeout)
        return cls(catalog, backend, platform, options, settings, **how)

    @property
    def engine(self) -> "OciEngine | None":
        """The local engine, where the backend has one (the archive is asked through it)."""
        return self.backend.engine if isinstance(self.backend, Local) else None

    def _local(self) -> "OciEngine":
        if self.engine is None:  # only a local build leaves a log that names apt's refusal
            raise NbpipeError(
                f"the archive is asked through podman or docker, not {self.backend.kind}"
            )
        return self.engine

    async def run(self, names: list[str] | None) -> list[ImageResult]:
        """Build and probe ``names`` and their ancestors (default: all), parents first."""
        refreshed: dict[str, list[str]] = {}
        # Each round that refreshes a step runs again on the saved lock; a chain of
        # n images needs at most n rounds (built images are cached by then).
        for _ in range(len(self.catalog.entries) + 1):
            self._refreshed = {}
            results = await self._run(names)
            for name, lines in self._refreshed.items():
                refreshed.setdefault(name, []).extend(lines)
            if not self._refreshed:
                break
            lock.reload(self.catalog)
        for r in results:
            r.refreshed = refreshed.get(r.name, [])
        return results

    async def _run(self, names: list[str] | None) -> list[ImageResult]:
        states = {
            s.name: s
            for s in assess(
                self.catalog,
                self.platform,
                self.backend.store(),
                names,
                wheelhouse=self.options.has_wheelhouse,
                rebuild=self.no_cache,
                assume=self.settings.assume_reachable,
            )
        }
        results = {n: ImageResult(n, self.platform, s.digest, s.ref) for n, s in states.items()}
        if self.locked and self.engine is not None:
            self._refuse_gone([n for n, s in states.items() if s.state is State.TO_BUILD])

        made: dict[str, Built] = {}

        async def work(name: str) -> bool:
            if (image := await self._one(states[name], results[name])) is not None:
                made[name] = image
            return results[name].ok

        async def check(name: str) -> bool:
            await self._check(states[name], results[name], made[name])
            return results[name].ok

        def blocked(name: str, by: str) -> None:
            res, parent = results[name], results[by]
            failed = any(p.status is Status.FAILED for p in parent.probes)
            why = "failed its probes" if failed else parent.status
            res.message = (
                f"not built: its parent {by} {why}"
                if res.status is Outcome.PENDING
                else f"not passed: its parent {by} {why}"
            )
            res.status = Outcome.BLOCKED
            res.blocked_by = parent.blocked_by or by
            self.on_event(name, "blocked")

        def failed(name: str, exc: Exception) -> None:
            results[name].status = Outcome.FAILED
            results[name].message = f"{type(exc).__name__}: {exc}"

        to_build = [n for n, s in states.items() if s.state is State.TO_BUILD]
        cached = self._in_cache(to_build)
        self._cached = frozenset(cached)
        self._prefetch = self._prefetcher([n for n in to_build if n not in cached])
        self._ahead = anyio.Event() if cached else None
        async with self.backend.session(), anyio.create_task_group() as tg:
            if self._prefetch is not None:
                tg.start_soon(self._prefetch.run, self.catalog)
            if self._ahead is not None:
                tg.start_soon(self._pull_ahead, cached)
            await schedule.run(
                self.catalog,
                list(states),
                work,
                then=check,
                jobs=self.jobs,
                on_blocked=blocked,
                on_error=failed,
                built={n for n, s in states.items() if s.state is State.BUILT},
                never={
                    n for n, s in states.items() if s.state in (State.UNBUILDABLE, State.BLOCKED)
                },
            )
            tg.cancel_scope.cancel()  # what is left to fetch, nothing will install
        return list(results.values())

    def _in_cache(self, to_build: list[str]) -> list[str]:
        """The images of ``to_build`` the cache registry holds finished (podman, no
        --no-cache): they are pulled, so nothing is fetched for them."""
        if not (self.settings.cache_registry and isinstance(self.backend, Local)):
            return []
        if self.no_cache or self.engine is None or self.engine.kind != "podman":
            return []
        backend = self.backend
        cached = [n for n in to_build if backend.in_cache(self.catalog.resolve(n), self.platform)]
        for n in cached:
            self.on_event(n, "the cache registry holds it finished: nothing to fetch")
        return cached

    async def _pull_ahead(self, cached: list[str]) -> None:
        """The cached images no other cached image descends from, pulled at once: their
        parents' layers come in the same pulls, in parallel, instead of one image after
        another. Each image's own fetch waits for this, then finds its layers here."""
        backend = self.backend
        assert isinstance(backend, Local)
        try:
            above = {a for n in cached for a in self.catalog.ancestors(n)}
            for name in (n for n in cached if n not in above):
                line = await anyio.to_thread.run_sync(
                    backend.pull_ahead, self.catalog.resolve(name), self.platform
                )
                self.on_event(name, line)
        finally:
            if self._ahead is not None:
                self._ahead.set()

    def _prefetcher(self, to_build: list[str]) -> Prefetch | None:
        """Fetching every locked file at once, where the engine's cache mounts are folders
        here (podman as root) and there is something to build without --no-cache."""
        engine = self.engine
        if not (to_build and self.settings.prefetch and not self.no_cache and engine):
            return None
        if engine.kind != "podman" or os.geteuid() != 0:
            return None
        return Prefetch(engine, self.platform, self.options.deb_store, self.on_event, to_build)

    # -- one image ---------------------------------------------------------------------
    async def _one(self, st: ImageState, res: ImageResult) -> Built | None:
        """The image made (built, or found cached): its children may build on it now,
        while ``_check`` probes it. None: it is not there."""
        started = time.monotonic()
        with self._contained(res):
            if st.state is State.BUILT:
                res.status, res.size = Outcome.CACHED, st.size
                self.on_event(res.name, "cached: already built, nothing to do")
                return Built(st.image_id or "", st.size)
            if st.state is State.UNBUILDABLE:
                res.status, res.message = Outcome.UNBUILDABLE, st.reason
                self.on_event(res.name, "unbuildable: " + st.reason)
                return None
            if self._prefetch is not None:
                await self._prefetch.ready(st.name)
            if self._ahead is not None and st.name in self._cached:  # others build at once
                await self._ahead.wait()
            self.on_event(res.name, f"building with {self.backend.kind}")
            image = self.catalog.resolve(st.name)
            try:
                built = await self.backend.build(
                    image, self.platform, res.ref, no_cache=self.no_cache
                )
            except BuildFailed as exc:
                if exc.log is not None and self._pins_gone(st.name, exc.log, res):
                    return None
                raise
            res.status, res.size = Outcome.BUILT, built.size
            how = " (pulled whole from the cache registry)" if built.pulled else ""
            self.on_event(res.name, f"built in {time.monotonic() - started:.0f}s{how}")
            if self.engine is not None:
                self._keep_debs(st.name)
            return built
        return None

    async def _check(self, st: ImageState, res: ImageResult, built: Built) -> None:
        """The probes of an image made, run once its parent passed its own (the scheduler
        waits for that). A failure keeps the tag and writes no probe record, so the next
        run probes again; so does a parent's failure: the child, built meanwhile, keeps
        its tag, is reported blocked, unprobed, and is probed in a run its parent passes."""
        if self.probe and (
            self.targets is None or st.name in self.targets or st.state is not State.BUILT
        ):
            with self._contained(res):
                await self._probe(res, built)

    @contextmanager
    def _contained(self, res: ImageResult) -> Iterator[None]:
        """One phase of one image: its error fails the image, never the run; its time
        counts in the image's seconds (not the waits between phases)."""
        started = time.monotonic()
        try:
            yield
        except NbpipeError as exc:
            res.status = Outcome.FAILED
            res.message = str(exc)
            self.on_event(res.name, "failed")
        finally:
            res.seconds = round(res.seconds + time.monotonic() - started, 2)

    # -- a lock the archive has moved under ----------------------------------------------
    def _pins_gone(self, name: str, log: Path, res: ImageResult) -> bool:
        """After a failed build: if apt refused pins the archive no longer has, refresh
        the steps holding them (or, ``locked``, fail naming them). False: another failure."""
        gone = {p.name for p in archive.gone_in_log(log)}
        steps = [
            ps
            for ps in lock.pinned_steps(self.catalog, name, self.platform)
            if gone & {p.name for p in archive.pins(ps.lines)}
        ]
        if not steps or any(ps.key in self._refreshed_keys for ps in steps):
            return False  # not a moved archive, or a refresh that did not help: a failure
        res.status = Outcome.FAILED
        if self.locked:
            res.message = "\n".join(_gone_line(ps, gone) for ps in steps)
            self.on_event(name, "failed: pinned versions left the archive (--locked)")
            return True
        path = lock.lock_file(self.catalog, name)
        assert path is not None  # pinned_steps found entries in it
        parent = naming.parent_ref(self.catalog.resolve(name), self.platform)
        for ps in steps:
            self.on_event(
                name,
                f"step {ps.index}: pinned versions left the archive; resolving that step again",
            )
            new = lock.refresh_step(self._local(), parent, ps.step, gone)
            lock.save_entry(path, ps.key, self.platform, new)
            self._refreshed_keys.add(ps.key)
            line = (
                f"{name} step {ps.index}: "
                f"{archive.summary(archive.changes(ps.lines, new), first=gone)}"
            )
            self._refreshed.setdefault(name, []).append(line)
            self.on_event(name, f"refreshed {line} (saved in {path})")
        res.message = "refreshed: built again under the new lock"
        return True

    def _keep_debs(self, name: str) -> None:
        pins = [
            p
            for st in self.catalog.resolve(name).steps_for(self.platform)
            if isinstance(st, Apt) and st.locked
            for p in archive.pins(st.locked)
        ]
        added = lock.keep_debs(self._local(), self.options, pins, self.platform)
        if added:
            self.on_event(
                name, f"kept {added} pinned .deb(s) in the package store {self.options.deb_store}"
            )

    def _refuse_gone(self, to_build: list[str]) -> None:
        """``locked``: before anything is built, ask the archive for every pin the images
        to build install; one line per step whose pins have gone, and nothing built."""
        steps = [ps for n in to_build for ps in lock.pinned_steps(self.catalog, n, self.platform)]
        if not steps:
            return
        root = lock.root_ref(self.catalog, self.platform, to_build)
        pins = {p for ps in steps for p in archive.pins(ps.lines)}
        self.on_event("nbpipe", f"--locked: asking the archive for {len(pins)} pinned versions")
        gone = archive.gone(self._local(), root, self.platform, pins)
        store = self.options.deb_store
        gone = {p for p in gone if store is None or p.deb(store) is None}  # the store has it
        if gone:
            names = {p.name for p in gone}
            raise NbpipeError(
                "\n".join(
                    _gone_line(ps, names)
                    for ps in steps
                    if names & {p.name for p in archive.pins(ps.lines)}
                )
            )

    async def _probe(self, res: ImageResult, built: Built) -> None:
        pod = self.backend.pod if isinstance(self.backend, Local) else None
        record = self.settings.state_dir / "probes" / f"{built.id.split(':')[-1]}"
        record = record.with_name(record.name + (f"-{pod}" if pod else "") + ".json")
        fresh = not built.id or (
            self.force_probe and (self.targets is None or res.name in self.targets)
        )
        data = (
            None
            if fresh
            else safe_io.read_record(
                record, _probe_record, lambda why: self.on_event(res.name, f"warning: {why}")
            )
        )
        if data is not None:
            res.probes = [
                ProbeResult(p["name"], Status(p["status"]), p["message"], p["seconds"])
                for p in data
            ]
            self.on_event(res.name, "probes passed before for this image id; not re-run")
            return
        self.on_event(res.name, "probing")
        res.probes, log = await self.backend.probe(res.name, self.platform, res.ref)
        failed = [p for p in res.probes if p.status is Status.FAILED]
        if failed:
            res.status = Outcome.FAILED
            res.message = "probe(s) failed: " + "; ".join(f"{p.name}: {p.message}" for p in failed)
            res.log = log
            self.on_event(res.name, f"{len(failed)} probe(s) failed")
            return
        if built.id:  # an image id to remember the pass by
            safe_io.atomic_write(
                record,
                json.dumps([p.to_dict() for p in res.probes], indent=1),
                root=self.settings.state_dir,
            )
        self.on_event(res.name, "probes passed")


def _gone_line(ps: "lock.PinnedStep", gone: set[str]) -> str:
    left = [str(p) for p in archive.pins(ps.lines) if p.name in gone]
    return (
        f"{ps.image} step {ps.index}: {', '.join(left)} left Debian's archive; "
        f"`nbpipe lock {ps.image}` (or a build without --locked) pins today's versions"
    )


def _probe_record(data: object) -> bool:
    """The shape `_probe` writes: a list of passed/skipped probe results."""
    return isinstance(data, list) and all(
        isinstance(p, dict)
        and isinstance(p.get("name"), str)
        and isinstance(p.get("message"), str)
        and p.get("status") in {s.value for s in Status}
        and p.get("status") != Status.FAILED.value
        and isinstance(p.get("seconds"), (int, float))
        for p in data
    )


def backend_for(
    machine: "Machine",
    options: BuildOptions,
    settings: Settings,
    *,
    pod: str | None = None,
    runner_tags: str = "",
) -> Backend:
    """The backend this machine builds with: Dagger when it builds through Dagger (a
    `dagger run` session, or --engine dagger), else its local engine."""
    if machine.dagger:
        from nbpipe.engines import dagger as lowering

        if dagger_reason(settings) is None:
            raise NbpipeError(
                "--engine dagger: no Dagger engine here (no `dagger` CLI on PATH and no "
                "$DAGGER_SESSION_PORT); install Dagger or use --engine podman"
            )
        # where Docker Hub is out of reach: the root from another registry, by digest
        catalog = lowering.rooted(machine.catalog, settings.dagger_root, "$NBPIPE_DAGGER_ROOT")
        backend: Backend = DaggerBackend(catalog, options, host_source, runner_tags)
    else:
        backend = Local(machine.need_engine(), options, settings, machine.store, pod=pod)
    if pod and (why := backend.cannot("pod")):
        raise NbpipeError(why)
    if settings.cache_registry and not machine.dagger:  # Dagger keeps its own cache
        if why := backend.cannot("cache"):
            raise NbpipeError(why)
        from nbpipe.engines.registry import Registry

        Registry.parse(settings.cache_registry, "--cache-registry")  # before any build
    return backend


def build(
    machine: "Machine",
    names: list[str] | None,
    options: BuildOptions,
    settings: Settings,
    *,
    jobs: int = 2,
    probe: bool = True,
    force_probe: bool = False,
    no_cache: bool = False,
    on_event: Event = lambda n, w: None,
    pod: str | None = None,
    locked: bool = False,
    audit: bool = False,
    registry: "Registry | None" = None,
) -> list[ImageResult]:
    """`nbpipe build` / `test`: the machine's backend on the machine's root; names unknown
    to the catalog are an error. ``audit``: each image's Python packages checked against
    PyPI's advisories too (needs the local engine, which reads the image). ``registry``:
    where `publish` put the images' pinned .debs: they fill the package store first."""
    for n in names or []:
        machine.catalog.entry(n)
    if registry is not None and options.deb_store is not None:
        from nbpipe.supply import debs

        order = machine.catalog.order(names or None)
        images = [machine.catalog.resolve(n) for n in order]
        debs.fill(
            registry,
            [i for i in images if machine.platform in i.platforms],
            machine.platform,
            options.deb_store,
            on_event,
        )
    backend = backend_for(machine, options, settings, pod=pod)
    catalog = backend.catalog if isinstance(backend, DaggerBackend) else machine.catalog
    pipe = Pipeline(
        catalog,
        backend,
        machine.platform,
        options,
        settings,
        jobs=jobs,
        probe=probe,
        force_probe=force_probe,
        no_cache=no_cache,
        on_event=on_event,
        locked=locked,
        targets=frozenset(names) if force_probe and names else None,
    )
    results = anyio.run(pipe.run, names or None)
    if audit:
        if pipe.engine is None:
            raise NbpipeError(
                "--audit reads each image's packages with podman: use --engine podman"
            )
        from nbpipe.supply import audit as audits

        audits.built_images(pipe.engine, results, on_event=on_event)
    return results
