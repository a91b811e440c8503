"""The build-and-probe pipeline on a local engine: parents first, independent branches
concurrently (bounded), already-built digests skipped, failures contained.

One image failing marks its descendants blocked and lets unrelated branches finish.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import anyio

from . import sources
from .catalog import Catalog
from . import naming
from .engines import dockerfile
from .engines.oci import OciEngine
from .errors import NbpipeError
from .image import Image
from .options import BuildOptions
from .probes.result import ProbeResult, Status
from .prober import probe
from .report import ImageResult
from .steps import Pip

Event = Callable[[str, str], None]  # (image name, what is happening)


@dataclass
class Pipeline:
    catalog: Catalog
    engine: OciEngine
    platform: str
    options: BuildOptions = field(default_factory=BuildOptions)
    state_dir: Path = Path(".nbpipe")
    jobs: int = 2
    probe: bool = True  # run the contract probes after each build
    force_probe: bool = False  # probe even when a passing record exists
    tags: set[str] | None = None  # runner tags; None = detect
    no_cache: bool = False
    ready_timeout: float = 90.0  # seconds a server gets to answer HTTP 200 when probed
    on_event: Event = lambda name, what: None

    async def run(self, names: list[str] | None) -> list[ImageResult]:
        order = self.catalog.order(names)
        images = {n: self.catalog.resolve(n) for n in order}
        order = [n for n in order if self.platform in images[n].platforms]
        results = {n: ImageResult(n, self.platform, images[n].digest(self.platform),
                                  naming.local_ref(images[n], self.platform)) for n in order}
        done = {n: anyio.Event() for n in order}
        limiter = anyio.CapacityLimiter(self.jobs)

        async def one(name: str) -> None:
            try:
                parent = self.catalog.parent_name(name)
                if parent in done:
                    await done[parent].wait()
                    if not results[parent].ok:
                        results[name].status = "blocked"
                        results[name].message = f"not built: its parent {parent} {results[parent].status}"
                        self.on_event(name, "blocked")
                        return
                async with limiter:
                    await anyio.to_thread.run_sync(self._one, images[name], results[name])
            except Exception as exc:  # never leave children waiting forever
                results[name].status = "failed"
                results[name].message = f"{type(exc).__name__}: {exc}"
            finally:
                done[name].set()

        async with anyio.create_task_group() as tg:
            for n in order:
                tg.start_soon(one, n)
        return [results[n] for n in order]

    # -- one image, in a worker thread -------------------------------------------------
    def _one(self, image: Image, res: ImageResult) -> None:
        started = time.monotonic()
        try:
            if self.engine.exists(res.ref) and not self.no_cache:
                res.status = "cached"
                self.on_event(res.name, "cached: already built, nothing to do")
                info = self.engine.inspect(res.ref)
            else:
                unpinned = [u for st in image.steps_for(self.platform) for u in st.unpinned()]
                missing = self._unreachable(image)
                if missing or unpinned:
                    res.status = "unbuildable"
                    why = []
                    if missing:
                        why.append(f"needs {', '.join(missing)}, not reachable from here")
                    if unpinned:
                        why.append(f"no sha256 pinned yet for {', '.join(unpinned)}")
                    res.message = "; ".join(why)
                    self.on_event(res.name, "unbuildable: " + res.message)
                    return
                self.on_event(res.name, "building")
                rendered = dockerfile.render(image, self.platform, self.options)
                log = self.state_dir / "logs" / f"{res.name}-{self.platform.split('/')[1]}.log"
                info = self.engine.build(rendered, res.ref, self.platform, self.options, log,
                                         no_cache=self.no_cache)
                res.status = "built"
                self.on_event(res.name, f"built in {time.monotonic() - started:.0f}s")
            res.size = info.size
            if self.probe:
                self._probe(res, info.id)
        except NbpipeError as exc:
            res.status = "failed"
            res.message = str(exc)
            self.on_event(res.name, "failed")
        finally:
            res.seconds = round(time.monotonic() - started, 2)

    def _unreachable(self, image: Image) -> list[str]:
        hard: list[str] = []
        for st in image.steps_for(self.platform):
            soft = isinstance(st, Pip) and self.options.wheelhouse is not None and st.index_url
            for host in st.sources():
                if not sources.reachable(host) and not soft and host not in hard:
                    hard.append(host)
        return hard

    def _probe(self, res: ImageResult, image_id: str) -> None:
        record = self.state_dir / "probes" / f"{image_id.split(':')[-1]}.json"
        if record.exists() and not self.force_probe:
            data = json.loads(record.read_text())
            res.probes = [ProbeResult(p["name"], Status(p["status"]), p["message"], p["seconds"])
                          for p in data]
            self.on_event(res.name, "probes passed before for this image id; not re-run")
            return
        self.on_event(res.name, "probing")
        res.probes, log = probe(self.engine, res.ref, tags=self.tags,
                                ready_timeout=self.ready_timeout)
        failed = [p for p in res.probes if p.status is Status.FAILED]
        if failed:
            res.status = "failed"
            res.message = "probe(s) failed: " + "; ".join(f"{p.name}: {p.message}" for p in failed)
            res.log = log
            self.on_event(res.name, f"{len(failed)} probe(s) failed")
            return
        record.parent.mkdir(parents=True, exist_ok=True)
        record.write_text(json.dumps([p.to_dict() for p in res.probes], indent=1))
        self.on_event(res.name, "probes passed")
