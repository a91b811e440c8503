"""`nbpipe lock`: build each image as its recipe resolves today and pin what it installed.

It builds (through the one pipeline), so it lives in the run layer; the lock file itself,
and resolving one step in a built image, are nbpipe.locks.lock's."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Collection

import anyio

from nbpipe.locks import archive
from nbpipe.locks.lock import (
    LOCKABLE,
    brief,
    keep_debs,
    key,
    load,
    resolve,
    resolve_apt,
    save,
    unlocked,
)
from nbpipe.recipe import naming
from nbpipe.recipe.steps import Pip
from nbpipe.run.backends import Local
from nbpipe.run.pipeline import Pipeline
from nbpipe.run.settings import Settings

if TYPE_CHECKING:
    from nbpipe.recipe.options import BuildOptions
    from nbpipe.run.machine import Machine


def refresh(
    machine: "Machine",
    names: list[str] | None,
    lock_file: Path,
    options: "BuildOptions",
    on_event=lambda name, what: None,
    *,
    only: "Collection[str] | None" = None,
    settings: Settings | None = None,
) -> dict[str, dict[str, str]]:
    """Build each image as its recipe resolves today (unlocked), resolve every apt and pip
    step in it, and save the lock file after each image. The caller holds the state
    folder's lock (one run at a time), so two runs never lose each other's entries.
    ``only``: lock just these images (a team's spec), built on their parents as locked."""
    eng, platform = machine.need_engine(), machine.platform
    plain = unlocked(machine.catalog, only)
    current = load(lock_file)  # read under the lock: a run before this one may have saved
    wanted = [
        n
        for n in plain.order(names or None)
        if platform in plain.resolve(n).platforms
        and any(isinstance(s, LOCKABLE) for s in plain.resolve(n).steps)
        and (only is None or n in only)
    ]
    if not wanted:  # nothing to lock: build nothing (None would mean every image)
        return current
    settings = settings or machine.settings
    pipe = Pipeline(
        plain,
        Local(eng, options, settings),
        platform,
        options,
        settings,
        probe=False,
        on_event=on_event,
    )
    built = {r.name: r for r in anyio.run(pipe.run, wanted or None)}
    for name in wanted:
        if not built[name].ok:
            on_event(name, f"not locked: {built[name].status}")
            continue
        img = plain.resolve(name)
        for i, st in enumerate(img.steps):
            if not isinstance(st, LOCKABLE) or not st.applies_to(platform):
                continue
            on_event(name, f"resolving step {i}: {brief(st.describe())}")
            if isinstance(st, Pip):
                lines = resolve(eng, naming.local_ref(img, platform), st, options)
            else:  # what apt installs on the parent, as it is built
                lines = resolve_apt(eng, naming.parent_ref(img, platform), st)
                keep_debs(eng, options, archive.pins(lines), platform)
            current.setdefault(key(name, i, st), {})[platform] = lines
        save(lock_file, current)
    return current
