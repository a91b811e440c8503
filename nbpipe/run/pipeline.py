"""The build-and-probe pipeline on a local engine: parents first, independent branches
concurrently (bounded), already-built digests skipped, failures contained.

One image failing marks its descendants blocked and lets unrelated branches finish.

Debian's archive moves under a lock (archive.py). When apt refuses a pinned version that
has left the archive, the default run re-resolves that one step on the built parent,
saves it in the lock file, and runs again: the image gets the digest of what it really
installs, and only it and its descendants move. ``locked`` (releases) refuses instead,
before anything is built.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Mapping

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
from nbpipe.run.report import ImageResult, Outcome
from nbpipe.run.state import ImageState, State, assess

if TYPE_CHECKING:  # the engine, the lowering and the prober load when an image needs them
    from nbpipe.engines.oci import ImageInfo, OciEngine
    from nbpipe.run.machine import Machine

Event = Callable[[str, str], None]  # (image name, what is happening)


@dataclass
class Pipeline:
    catalog: Catalog
    engine: "OciEngine"
    platform: str
    options: BuildOptions = field(default_factory=BuildOptions)
    state_dir: Path = Path(".nbpipe")
    jobs: int = 2
    probe: bool = True  # run the contract probes after each build
    force_probe: bool = False  # probe even when a passing record exists
    # `nbpipe test NAMES`: only these are probed afresh; an ancestor already built is
    # not probed at all (one built in this run is, as `build` would). None: every image.
    targets: frozenset[str] | None = None
    tags: set[str] | None = None  # runner tags; None = detect
    no_cache: bool = False
    ready_timeout: float = 90.0  # seconds a server gets to answer HTTP 200 when probed
    pod: str | None = None  # probe as Kubeflow's pod: "kubeflow" | "openshift" (podprober)
    on_event: Event = lambda name, what: None
    store: "Mapping[str, ImageInfo] | None" = None  # the engine's images, if just read
    locked: bool = False  # a pin that left the archive is an error, never a lock change
    _refreshed: dict[str, list[str]] = field(default_factory=dict, init=False, repr=False)
    _refreshed_keys: set[str] = field(default_factory=set, init=False, repr=False)

    async def run(self, names: list[str] | None) -> list[ImageResult]:
        """Build and probe ``names`` and their ancestors (default: all), parents first.
        One run at a time per state folder: a second one waits for the lock."""
        with safe_io.locked(self.state_dir, on_wait=lambda m: self.on_event("nbpipe", m)):
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
                self.store = None  # what this round built is in the store now
            for r in results:
                r.refreshed = refreshed.get(r.name, [])
            return results

    async def _run(self, names: list[str] | None) -> list[ImageResult]:
        store = self.engine.images() if self.store is None else self.store
        states = {
            s.name: s
            for s in assess(
                self.catalog,
                self.platform,
                store,
                names,
                wheelhouse=self.options.has_wheelhouse,
                rebuild=self.no_cache,
            )
        }
        results = {n: ImageResult(n, self.platform, s.digest, s.ref) for n, s in states.items()}
        if self.locked:
            self._refuse_gone([n for n, s in states.items() if s.state is State.TO_BUILD])

        async def work(name: str) -> bool:
            await anyio.to_thread.run_sync(self._one, states[name], results[name])
            return results[name].ok

        def blocked(name: str, by: str) -> None:
            results[name].status = Outcome.BLOCKED
            results[name].blocked_by = results[by].blocked_by or by
            results[name].message = f"not built: its parent {by} {results[by].status}"
            self.on_event(name, "blocked")

        def failed(name: str, exc: Exception) -> None:
            results[name].status = Outcome.FAILED
            results[name].message = f"{type(exc).__name__}: {exc}"

        await schedule.run(
            self.catalog,
            list(states),
            work,
            jobs=self.jobs,
            on_blocked=blocked,
            on_error=failed,
            built={n for n, s in states.items() if s.state is State.BUILT},
            never={n for n, s in states.items() if s.state in (State.UNBUILDABLE, State.BLOCKED)},
        )
        return list(results.values())

    # -- one image, in a worker thread -------------------------------------------------
    def _one(self, st: ImageState, res: ImageResult) -> None:
        started = time.monotonic()
        try:
            if st.state is State.BUILT:
                res.status, res.size = Outcome.CACHED, st.size
                self.on_event(res.name, "cached: already built, nothing to do")
                image_id = st.image_id or ""
            elif st.state is State.UNBUILDABLE:
                res.status, res.message = Outcome.UNBUILDABLE, st.reason
                self.on_event(res.name, "unbuildable: " + st.reason)
                return
            else:
                from nbpipe.engines import dockerfile

                self.on_event(res.name, "building")
                rendered = dockerfile.render(
                    self.catalog.resolve(st.name), self.platform, self.options
                )
                log = self.state_dir / "logs" / f"{res.name}-{self.platform.split('/')[1]}.log"
                try:
                    info = self.engine.build(
                        rendered, res.ref, self.platform, self.options, log, no_cache=self.no_cache
                    )
                except NbpipeError:
                    if self._pins_gone(st.name, log, res):
                        return
                    raise
                res.status, res.size, image_id = Outcome.BUILT, info.size, info.id
                self.on_event(res.name, f"built in {time.monotonic() - started:.0f}s")
                self._keep_debs(st.name)
            if self.probe and (
                self.targets is None or st.name in self.targets or st.state is not State.BUILT
            ):
                self._probe(res, image_id)
        except NbpipeError as exc:
            res.status = Outcome.FAILED
            res.message = str(exc)
            self.on_event(res.name, "failed")
        finally:
            res.seconds = round(time.monotonic() - started, 2)

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
            new = lock.refresh_step(self.engine, parent, ps.step, gone)
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
        added = lock.keep_debs(self.engine, self.options, pins, self.platform)
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
        gone = archive.gone(self.engine, root, self.platform, pins)
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

    def _probe(self, res: ImageResult, image_id: str) -> None:
        mode = f"-{self.pod}" if self.pod else ""
        record = self.state_dir / "probes" / f"{image_id.split(':')[-1]}{mode}.json"
        fresh = self.force_probe and (self.targets is None or res.name in self.targets)
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
        if self.pod:
            from nbpipe.probing.podprober import probe_pod

            res.probes, log = probe_pod(
                self.engine, res.ref, flavor=self.pod, ready_timeout=self.ready_timeout
            )
        else:
            from nbpipe.probing.prober import probe

            res.probes, log = probe(
                self.engine, res.ref, tags=self.tags, ready_timeout=self.ready_timeout
            )
        failed = [p for p in res.probes if p.status is Status.FAILED]
        if failed:
            res.status = Outcome.FAILED
            res.message = "probe(s) failed: " + "; ".join(f"{p.name}: {p.message}" for p in failed)
            res.log = log
            self.on_event(res.name, f"{len(failed)} probe(s) failed")
            return
        safe_io.atomic_write(
            record, json.dumps([p.to_dict() for p in res.probes], indent=1), root=self.state_dir
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


def build(
    machine: "Machine",
    names: list[str] | None,
    options: BuildOptions,
    *,
    jobs: int = 2,
    probe: bool = True,
    force_probe: bool = False,
    no_cache: bool = False,
    state_dir: Path = Path(".nbpipe"),
    on_event: Event = lambda n, w: None,
    pod: str | None = None,
    locked: bool = False,
    audit: bool = False,
) -> list[ImageResult]:
    """`nbpipe build` / `test`: through Dagger when the machine builds with it, else the
    local engine, on the machine's root; names unknown to the catalog are an error.
    ``audit``: each image's Python packages checked against PyPI's advisories too."""
    for n in names or []:
        machine.catalog.entry(n)
    if machine.dagger:
        from nbpipe.run import dagger_run as dagger_client

        if pod:
            raise NbpipeError(f"--as {pod} plays the pod with podman: use --engine podman")
        return dagger_client.run(
            machine.catalog, names or None, machine.platform, options, on_event, jobs
        )
    pipe = Pipeline(
        machine.catalog,
        machine.need_engine(),
        machine.platform,
        options,
        state_dir=state_dir,
        jobs=jobs,
        probe=probe,
        force_probe=force_probe,
        no_cache=no_cache,
        on_event=on_event,
        store=machine.store,
        pod=pod,
        locked=locked,
        targets=frozenset(names) if force_probe and names else None,
    )
    results = anyio.run(pipe.run, names or None)
    if audit:
        from nbpipe.supply import audit as audits

        audits.built_images(machine.need_engine(), results, on_event=on_event)
    return results
