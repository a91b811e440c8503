"""`nbpipe verify-reproducible`: build an image twice from scratch (its parent as built)
and compare; when the digests differ, say which files do."""

from __future__ import annotations

import hashlib
import subprocess
import tarfile
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import anyio

from nbpipe.engines import dockerfile
from nbpipe.engines.oci import OciEngine
from nbpipe.errors import NbpipeError
from nbpipe.recipe.options import BuildOptions
from nbpipe.run.backends import Local
from nbpipe.run.pipeline import Pipeline, backend_for
from nbpipe.run.settings import Settings

if TYPE_CHECKING:
    from nbpipe.run.machine import Machine


@dataclass
class Verdict:
    name: str
    platform: str
    ids: tuple[str, str]
    seconds: tuple[float, float]
    differing: list[str] = field(default_factory=list)

    @property
    def same(self) -> bool:
        return self.ids[0] == self.ids[1]


def verify(machine: "Machine", name: str, options: BuildOptions, settings: Settings) -> Verdict:
    """Build ``name`` twice from scratch on its parent as built (through the one pipeline)
    and compare; a backend that cannot build from scratch says so in one line."""
    backend = backend_for(machine, options, settings)
    if why := backend.cannot("verify"):
        raise NbpipeError(why)
    assert isinstance(backend, Local)  # the one backend that can
    catalog, engine, platform = machine.catalog, backend.engine, machine.platform
    state_dir = settings.state_dir
    catalog.entry(name)  # an unknown name: one line listing the valid ones
    parent = catalog.parent_name(name)
    if parent:  # the parent as it is built (or built now, once)
        pipe = Pipeline(catalog, backend, platform, options, settings, probe=False)
        results = {r.name: r for r in anyio.run(pipe.run, [parent])}
        if not results[parent].ok:
            raise NbpipeError(f"{parent}: {results[parent].status}: {results[parent].message}")
    image = catalog.resolve(name)
    rendered = dockerfile.render(image, platform, options)
    ids, seconds, refs = [], [], []
    for attempt in ("a", "b"):
        ref = f"localhost/nbpipe-verify/{name}:{attempt}"
        started = time.monotonic()
        info = engine.build(
            rendered,
            ref,
            platform,
            options,
            state_dir / "logs" / f"verify-{name}-{attempt}.log",
            no_cache=True,
        )
        seconds.append(round(time.monotonic() - started, 1))
        ids.append(info.id)
        refs.append(ref)
    verdict = Verdict(name, platform, (ids[0], ids[1]), (seconds[0], seconds[1]))
    try:
        if not verdict.same:
            a, b = (_files(engine, r) for r in refs)
            verdict.differing = sorted(p for p in a.keys() | b.keys() if a.get(p) != b.get(p))
    finally:
        for r in refs:
            engine.remove(r)
    return verdict


def _files(engine: OciEngine, ref: str) -> dict[str, tuple]:
    """path -> (type, mode, owner, mtime, content hash) of every file in the image."""
    cid = subprocess.run(
        [engine.binary, "create", ref], capture_output=True, text=True, check=True
    ).stdout.strip()
    try:
        proc = subprocess.Popen([engine.binary, "export", cid], stdout=subprocess.PIPE)
        out = {}
        with tarfile.open(fileobj=proc.stdout, mode="r|") as tar:
            for m in tar:
                digest = ""
                if m.isfile():
                    f = tar.extractfile(m)
                    digest = hashlib.sha256(f.read()).hexdigest() if f else ""
                out[m.name] = (m.type, m.mode, m.uid, m.gid, m.mtime, digest, m.linkname)
        proc.wait()
        return out
    finally:
        subprocess.run([engine.binary, "rm", "-f", cid], capture_output=True)
