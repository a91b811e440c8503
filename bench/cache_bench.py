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
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import anyio

ROOT_DIR = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT_DIR))

from nbpipe.engines import rootfs  # noqa: E402
from nbpipe.engines.oci import OciEngine  # noqa: E402
from nbpipe.family import family  # noqa: E402
from nbpipe.recipe import platforms as plat  # noqa: E402
from nbpipe.recipe.options import BuildOptions  # noqa: E402
from nbpipe.run.pipeline import Pipeline  # noqa: E402
from nbpipe.run.settings import Settings  # noqa: E402

REGISTRY = ROOT_DIR / ".ci/setup-registry.sh"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def fresh_run(label, engine, catalog, platform, options, work, root_tar, image, cache) -> float:
    """IMAGE built in a store of its own that holds only the root; returns the seconds."""
    tmp = work / f"{label}-tmp"
    tmp.mkdir()
    os.environ["TMPDIR"] = tempfile.tempdir = str(tmp)  # buildah's cache mounts live there
    node = replace(engine, graph_root=str(work / label))
    node._run(["load", "-i", str(root_tar)])
    settings = Settings(state_dir=work / f"{label}-state", cache_registry=cache)
    pipe = Pipeline.local(catalog, node, platform, options, settings=settings, probe=False)
    start = time.monotonic()
    try:
        results = anyio.run(pipe.run, [image])
        seconds = time.monotonic() - start
        bad = [f"{r.name}: {r.status.value} {r.message}" for r in results if not r.ok]
        if bad:
            sys.exit(f"{label}: " + "; ".join(bad))
        pulled = sum(
            p.read_text(errors="replace").count("--> Cache pulled from remote")
            for p in (work / f"{label}-state" / "logs").glob("*.log")
        )
        names = ", ".join(r.name for r in results)
        print(f"{label:>9}: {seconds:7.1f} s  ({names}; {pulled} step(s) pulled)", flush=True)
        return seconds
    finally:
        node._run(["system", "reset", "--force"], check=False, timeout=300)
        os.environ["TMPDIR"] = tempfile.tempdir = str(work)
        shutil.rmtree(work / label, ignore_errors=True)
        shutil.rmtree(work / f"{label}-run", ignore_errors=True)
        shutil.rmtree(tmp, ignore_errors=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--image", default="jupyter-scipy")
    ap.add_argument("--baseline", action="store_true", help="also a cold run with no cache")
    ap.add_argument("--deb-store", default="auto", help="auto (this machine's) | none | DIR")
    args = ap.parse_args()

    engine = OciEngine.detect("podman")
    platform = plat.host()
    root = rootfs.local_root(engine, (platform,))
    if root is None:
        sys.exit("no local root: run `nbpipe base bootstrap` first")
    catalog = family().rebased(root)
    options = BuildOptions.from_flags(deb_store=args.deb_store)
    work = Path(tempfile.mkdtemp(prefix="cachebench-", dir="/var/tmp"))  # short run roots
    root_tar = work / "root.tar"
    engine._run(["save", "--format", "oci-archive", "-o", str(root_tar), root.pinned(platform)])
    port = free_port()
    subprocess.run(
        ["bash", str(REGISTRY), "start", str(port), str(work / "reg")],
        check=True,
        capture_output=True,
    )
    cache = f"127.0.0.1:{port}/bench"
    print(f"{args.image} on {platform}, cache registry {cache}, work {work}", flush=True)
    try:
        run = [engine, catalog, platform, options, work, root_tar, args.image]
        base = fresh_run("baseline", *run, "") if args.baseline else None
        cold = fresh_run("cold", *run, cache)
        warm = fresh_run("cached", *run, cache)
    finally:
        subprocess.run(["bash", str(REGISTRY), "stop", str(work / "reg")], capture_output=True)
    used = sum(f.stat().st_size for f in (work / "reg" / "data").rglob("*") if f.is_file())
    shutil.rmtree(work, ignore_errors=True)
    print(f"\ncold (fills the cache): {cold:.1f} s")
    print(f"fresh store, cache filled: {warm:.1f} s")
    print(f"ratio: {warm / cold:.2f} x (issue 23 asks <= 0.2 x); cache holds {used / 1e6:,.0f} MB")
    if base is not None:
        print(f"cold without a cache registry: {base:.1f} s (pushing cost {cold - base:+.1f} s)")


if __name__ == "__main__":
    main()
