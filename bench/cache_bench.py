"""A fresh runner with and without the shared layer cache (issue 23, item 3; a script,
not a test):

    nice -n 10 .venv/bin/python bench/cache_bench.py [--image jupyter-scipy] [--baseline]

Two podman stores of their own, each holding only the local debootstrap root (loaded as
an OCI archive, as a new runner would have it), one loopback registry (Debian's
docker-registry, .ci/setup-registry.sh). Run 1 builds IMAGE and its ancestors cold with
--cache-registry (an empty cache: it pushes every layer); run 2, in the second fresh
store, builds the same recipes with the cache now filled. Prints both times and the
ratio (the issue asks for <= 0.2). --baseline adds a cold run without any cache registry
(what run 1's pushes cost). Builds only, no probes. Each run has an empty $TMPDIR, so no
build-cache mount (pip's, apt's) of this machine is shared; the machine's .deb store is
(--deb-store none: Debian's archive only).
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
from pathlib import Path

ROOT_DIR = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT_DIR))
sys.path.insert(0, str(ROOT_DIR / "bench"))

from fresh import folder_bytes, fresh_run, local_podman, registry, save_root  # noqa: E402

from nbpipe.family import family  # noqa: E402
from nbpipe.recipe.options import BuildOptions  # noqa: E402


def shared_cache(engine, catalog, platform, options, work, root_tar, image, baseline=False):
    """Run 1 fills the cache registry from a fresh node; run 2, in another fresh node,
    builds the same recipes with it. Returns (cold, cached, baseline or None, cache bytes)."""
    with registry(work / "reg") as reg:
        cache = f"{reg}/bench"
        print(f"{image} on {platform}, cache registry {cache}, work {work}", flush=True)
        run = [engine, catalog, platform, options, work, root_tar, image]
        runs = []
        for label, c in [("baseline", "")] * baseline + [("cold", cache), ("cached", cache)]:
            r = fresh_run(label, *run, c)
            names = ", ".join(x.name for x in r.results)
            print(
                f"{label:>9}: {r.seconds:7.1f} s  ({names}; {r.whole} finished image(s) and "
                f"{r.pulled} step(s) pulled)"
            )
            runs.append(r)
        used = folder_bytes(work / "reg" / "data")
    base = runs[0].seconds if baseline else None
    return runs[-2].seconds, runs[-1].seconds, base, used


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--image", default="jupyter-scipy")
    ap.add_argument("--baseline", action="store_true", help="also a cold run with no cache")
    ap.add_argument("--deb-store", default="auto", help="auto (this machine's) | none | DIR")
    args = ap.parse_args()

    engine, platform, root = local_podman()
    catalog = family().rebased(root)
    options = BuildOptions.from_flags(deb_store=args.deb_store)
    work = Path(tempfile.mkdtemp(prefix="cachebench-", dir="/var/tmp"))  # short run roots
    root_tar = save_root(engine, root.pinned(platform), work / "root.tar")
    try:
        cold, warm, base, used = shared_cache(
            engine, catalog, platform, options, work, root_tar, args.image, args.baseline
        )
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print(f"\ncold (fills the cache): {cold:.1f} s")
    print(f"fresh store, cache filled: {warm:.1f} s")
    print(f"ratio: {warm / cold:.2f} x (issue 23 asks <= 0.2 x); cache holds {used / 1e6:,.0f} MB")
    if base is not None:
        print(f"cold without a cache registry: {base:.1f} s (pushing cost {cold - base:+.1f} s)")


if __name__ == "__main__":
    main()
