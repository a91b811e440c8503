"""Living with a moving archive, in figures (issue 19; a script, not a test):

    nice -n 10 .venv/bin/python bench/store_bench.py [--image jupyter-scipy] [--skip-rebuild]

1. The package store's size for IMAGE and its ancestors: the pinned .debs of their locked
   apt steps (this platform) that the machine's store holds, and what it lacks.
2. A refresh of one step: a copy of the lock in which one pin of IMAGE's first apt step
   names a version the archive never had; IMAGE is built on its cached parent (as the
   default `nbpipe build` does after the archive moved): apt refuses, the step is resolved
   again, and IMAGE is built under the new lock. Printed: the whole build and its three
   parts (the build apt refused, the resolve, the build under the new lock).
3. An exact rebuild from the store against a normal cold build: IMAGE and its ancestors
   in a fresh podman store with empty build caches (bench/fresh.py's fresh_run),
   once installing pinned .debs from the machine's store and once from the archive only
   (--deb-store none). (That both give the same image id is tests/engine/test_archive_moves.py's.)
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import anyio

ROOT_DIR = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT_DIR))
sys.path.insert(0, str(ROOT_DIR / "bench"))

from fresh import fresh_run, local_podman, save_root  # noqa: E402

from nbpipe.family import LOCK_FILE, base, codeserver, jupyter, pytorch, rstudio, tensorflow  # noqa: E402
from nbpipe.locks import archive, lock  # noqa: E402
from nbpipe.recipe.catalog import Catalog  # noqa: E402
from nbpipe.recipe.naming import local_ref  # noqa: E402
from nbpipe.recipe.options import DEFAULT_DEB_STORE, BuildOptions  # noqa: E402
from nbpipe.recipe.steps import Apt  # noqa: E402
from nbpipe.run.pipeline import Pipeline  # noqa: E402
from nbpipe.run.settings import Settings  # noqa: E402

NEVER = "+nbpipe.never.1"  # appended to a pinned version: no archive has it


def family_on(lock_path: Path) -> Catalog:
    """Our family, its steps locked by ``lock_path`` (refreshes are saved there)."""
    catalog = Catalog()
    for module in (base, jupyter, codeserver, rstudio, pytorch, tensorflow):
        module.register(catalog)
    return lock.apply(catalog, lock_path)


def store_size(catalog: Catalog, image: str, platform: str, store: Path) -> None:
    held = missing = size = 0
    for name in catalog.order([image]):
        for st in catalog.resolve(name).steps_for(platform):
            if not (isinstance(st, Apt) and st.locked):
                continue
            for line in st.locked.split():
                sha = line.rpartition("@sha256:")[2]
                deb = store / f"{sha}.deb"
                if sha and deb.is_file():
                    held, size = held + 1, size + deb.stat().st_size
                else:
                    missing += 1
    print(
        f"store for {image} and its ancestors ({platform}): {held} .debs, {size / 1e6:,.0f} MB"
        f" ({missing} pinned .debs not in {store})",
        flush=True,
    )


def refresh_one_step(root, engine, image: str, platform: str, options: BuildOptions) -> None:
    work = Path(tempfile.mkdtemp(prefix="storebench-"))
    moved = work / "lock.json"
    moved.write_text(LOCK_FILE.read_text())
    catalog = family_on(moved).rebased(root)
    step = next(
        ps for ps in lock.pinned_steps(catalog, image, platform) if isinstance(ps.step, Apt)
    )
    pin = archive.pins(ps_lines := step.lines)[0]
    entries = json.loads(moved.read_text())
    for key, by_platform in entries["locks"].items():
        if by_platform.get(platform) == ps_lines:
            by_platform[platform] = ps_lines.replace(
                f"{pin.name}={pin.version}", f"{pin.name}={pin.version}{NEVER}", 1
            )
            print(
                f"moved: {image} step {step.index}: {pin.name}={pin.version}{NEVER} ({key})",
                flush=True,
            )
    moved.write_text(json.dumps(entries, indent=1, sort_keys=True) + "\n")
    catalog = family_on(moved).rebased(root)
    # The refresh most likely gives back today's pin, i.e. the real lock: not built yet
    real = local_ref(family_on(LOCK_FILE).rebased(root).resolve(image), platform)
    moved_ref = local_ref(catalog.resolve(image), platform)  # a rerun's, if any
    engine._run(["rmi", "--ignore", real, moved_ref], check=False)
    stamps: list[tuple[float, str]] = []
    settings = Settings(state_dir=work / "state")

    def heard(name: str, what: str) -> None:
        stamps.append((time.monotonic(), what))
        print(f"  [{time.monotonic() - start:6.1f}s] {name}: {what}", flush=True)

    pipe = Pipeline.local(
        catalog, engine, platform, options, settings=settings, probe=False, on_event=heard
    )
    start = time.monotonic()
    [res] = [r for r in anyio.run(pipe.run, [image]) if r.name == image]
    total = time.monotonic() - start
    began = next(t for t, w in stamps if "resolving that step again" in w)
    done = next(t for t, w in stamps if w.startswith("refreshed "))
    print(
        f"refresh: {image} built under the refreshed lock in {total:.1f} s"
        f" ({res.status.value}; {res.refreshed}): the build apt refused {began - start:.1f} s,"
        f" the resolve {done - began:.1f} s, the build under the new lock"
        f" {start + total - done:.1f} s",
        flush=True,
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--image", default="jupyter-scipy")
    ap.add_argument("--skip-rebuild", action="store_true", help="no fresh-store builds (3.)")
    ap.add_argument("--skip-refresh", action="store_true", help="no refresh (2.)")
    args = ap.parse_args()

    engine, platform, root = local_podman()
    store = DEFAULT_DEB_STORE
    options = BuildOptions.from_flags(deb_store=str(store))
    store_size(family_on(LOCK_FILE).rebased(root), args.image, platform, store)
    if not args.skip_refresh:
        # without the store: a store that holds the pinned .deb installs it by sha256,
        # whatever the archive has (that is the point of it), and nothing is refreshed
        refresh_one_step(
            root, engine, args.image, platform, BuildOptions.from_flags(deb_store="none")
        )
    if args.skip_rebuild:
        return
    catalog = family_on(LOCK_FILE).rebased(root)
    work = Path(tempfile.mkdtemp(prefix="storebench-", dir="/var/tmp"))
    root_tar = save_root(engine, root.pinned(platform), work / "root.tar")
    run = [engine, catalog, platform]
    store_run = fresh_run("store", *run, options, work, root_tar, args.image, "")
    archive_only = BuildOptions.from_flags(deb_store="none")
    cold_run = fresh_run("archive", *run, archive_only, work, root_tar, args.image, "")
    from_store, cold = store_run.seconds, cold_run.seconds
    print(
        f"\nexact rebuild from the store: {from_store:.1f} s; normal cold build (archive):"
        f" {cold:.1f} s; ratio {from_store / cold:.2f}",
        flush=True,
    )


if __name__ == "__main__":
    main()
