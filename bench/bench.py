"""nbpipe benchmarks (a script, not a test): ONE run prints every figure issue 23 asks for,
as ratios, on this machine.

    nice -n 10 .venv/bin/python bench/bench.py [--json FILE] [--only SECTION ...]

Sections (all but the opt-in ones run by default, in this order; `--only` repeats):

- cold: base -> jupyter -> jupyter-scipy as on a fresh runner (a podman store of its own
  holding only the debootstrap root, loaded from an OCI archive; an empty $TMPDIR, so
  buildah's pip/uv/apt cache mounts are empty; an empty package store of its own, as
  `--deb-store auto` is on a new machine; prefetch on, as on the command line), nbpipe's
  probes included, against `../shared/bench/scipy-naive.Containerfile` built with `buildah bud
  --no-cache --layers=false` in another fresh store, in the same run.
- warm: the same cold build again on cold's node (its store and $TMPDIR kept, so the
  download caches are warm) with the layer cache ignored (--no-cache), probes included.
- limit: the locked wheels and .debs of the chain (images/lock.json, this platform)
  fetched in parallel into an empty folder, then unpacked (wheels: unzip; debs:
  dpkg-deb -x) into an empty folder: the physical limit of a cold build. Then those files
  committed as one layer by buildah (as a build commits a RUN step), timed on its own:
  a layered build writes each installed byte into a layer once at least, so limit + that
  commit is this machine's floor for any buildah build of the chain.
- shared: bench/cache_bench.py's two fresh stores, the first filling a loopback
  --cache-registry, the second building with it (builds only, both sides).
- firstnb: time to the first notebook on a cold node (bench/coldstart.py): jupyter pushed
  to a loopback registry, pulled into an empty store, played as Kubeflow's pod until
  <prefix>/api/kernels answers 200.
- noop, rebuild, sizes, startup: on this machine's own store (built there first, cached).
- arm64, registry: opt-in (--arm64, --registry, or --only).

Before each section (and before the naive build, and between shared's two stores) the
page cache is written back and, on ext4 without a journal (this machine's root), the
bench waits out the 60 s in which the kernel passes over inodes freed by the last section
(``settle``/``fresh.quiet``, their seconds printed): no section pays for the last one's
writes or removals, as a fresh runner would not.

`--chain IMAGE` stops the chain at IMAGE (e.g. `--chain base` for a quick check); the
naive anchor is built only for jupyter-scipy unless `--naive FILE` names another.
"""

from __future__ import annotations

import argparse
import json
import os
import platform as pyplatform
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import anyio

ROOT_DIR = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT_DIR))
sys.path.insert(0, str(ROOT_DIR / "bench"))

import cache_bench  # noqa: E402
import coldstart  # noqa: E402
import fresh  # noqa: E402

from nbpipe import family as images  # noqa: E402
from nbpipe.engines import rootfs  # noqa: E402
from nbpipe.engines.oci import OciEngine  # noqa: E402
from nbpipe.family import pins  # noqa: E402
from nbpipe.locks import downloads  # noqa: E402
from nbpipe.locks.downloads import LockedFile  # noqa: E402
from nbpipe.probing.prober import probe  # noqa: E402
from nbpipe.recipe import platforms as plat  # noqa: E402
from nbpipe.recipe.naming import local_ref  # noqa: E402
from nbpipe.recipe.options import BuildOptions  # noqa: E402
from nbpipe.recipe.steps import Pip  # noqa: E402
from nbpipe.run.pipeline import Pipeline  # noqa: E402

CA = Path("/etc/ssl/certs/ca-certificates.crt")
NAIVE_FILE = ROOT_DIR.parent / "shared/bench/scipy-naive.Containerfile"
NAIVE_REF = "localhost/anchor/scipy-naive"
SECTIONS = ("cold", "warm", "limit", "shared", "firstnb", "noop", "rebuild", "sizes", "startup")
OPT_IN = ("arm64", "registry")

FIGURES: dict[str, dict] = {}


def row(what: str, value: str) -> None:
    print(f"{what:58} {value}", flush=True)


WORK_DIR = Path("/var/tmp")  # where main() makes the bench's folder: every store is in it


def settle(wait: bool = True) -> float:
    """Before a timed section: the page cache written back and, where the filesystem
    remembers freed inodes (fresh.quiet_window: this machine's ext4 has no journal), the
    last section's removals out of its memory, as on a fresh runner; returns the seconds
    that took. ``wait`` False for sections that make few files (no-op, sizes, startup)."""
    return fresh.quiet(WORK_DIR, wait)


def head(title: str, wait: bool = True) -> None:
    settled = settle(wait)
    print(
        f"\n== {title} ({time.strftime('%H:%M:%S')}, load {os.getloadavg()[0]:.1f}, "
        f"settled before it {settled:.1f} s)",
        flush=True,
    )


def ratio(a: float | None, b: float | None) -> float | None:
    return round(a / b, 3) if a is not None and b else None


def show_ratio(what: str, a: float | None, b: float | None, target: str = "") -> None:
    r = ratio(a, b)
    if r is not None:
        row(what, f"{r:.2f}" + (f"  (issue 23: {target})" if target else ""))


# -- the machine ----------------------------------------------------------------------------
def machine(engine: OciEngine) -> dict:
    mem = next(
        int(line.split()[1]) * 1024
        for line in Path("/proc/meminfo").read_text().splitlines()
        if line.startswith("MemTotal:")
    )
    cpu = next(
        (
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if line.startswith("model name")
        ),
        pyplatform.machine(),
    )

    def version(argv: list[str]) -> str:
        r = subprocess.run(argv, capture_output=True, text=True)
        return r.stdout.strip().splitlines()[0] if r.returncode == 0 and r.stdout else "?"

    git = subprocess.run(
        ["git", "describe", "--always", "--dirty"], capture_output=True, text=True, cwd=ROOT_DIR
    )
    return {
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "commit": git.stdout.strip(),
        "nproc": os.cpu_count(),
        "cpu": cpu,
        "memory_gb": round(mem / 2**30, 1),
        "kernel": pyplatform.release(),
        "podman": version([engine.binary, "--version"]),
        "buildah": version(["buildah", "--version"]),
        "load_start": [round(x, 2) for x in os.getloadavg()],
    }


# -- cold, warm -------------------------------------------------------------------------------
@dataclass
class Ctx:
    engine: OciEngine
    platform: str
    root_ref: str
    catalog: object  # the family rebased onto the local root
    chain: list[str]
    work: Path
    root_tar: Path
    options: BuildOptions  # a fresh runner's: no .deb store
    node: fresh.Node | None = None  # cold's nbpipe node, kept for warm

    def pipeline(self, catalog, platform: str, **how) -> Pipeline:
        """A pipeline on this machine's own store (the CA if any, a state folder of its own)."""
        options = BuildOptions(ca_bundle=CA if CA.exists() else None)
        state = Path(tempfile.mkdtemp(dir=self.work))
        return Pipeline.local(catalog, self.engine, platform, options, state_dir=state, **how)


def describe(run: fresh.Run) -> dict:
    per = {}
    for r in run.results:
        b, p = run.phase(r.name)
        per[r.name] = {"status": r.status.value, "build_s": round(b, 1), "probe_s": round(p, 1)}
    return {
        "seconds": round(run.seconds, 1),
        "images": per,
        "pulled_steps": run.pulled,
        "pulled_images": run.whole,
    }


def print_run(what: str, run: fresh.Run) -> None:
    parts = []
    for r in run.results:
        b, p = run.phase(r.name)
        parts.append(f"{r.name} {b:.0f}+{p:.0f}" if p else f"{r.name} {b:.0f}")
    row(what, f"{run.seconds:.1f} s ({', '.join(parts)}; build+probes s)")


def cold(ctx: Ctx, naive_file: Path | None) -> None:
    head("cold: fresh runners, empty layer and download caches")
    ctx.node = fresh.Node("cold-nbpipe", ctx.engine, ctx.work, ctx.root_tar)
    run = ctx.node.build(
        ctx.catalog, ctx.platform, ctx.options, ctx.chain, probe=True, label="cold"
    )
    top = ctx.chain[-1]
    size = ctx.node.size(next(r.ref for r in run.results if r.name == top))
    probes = sum(run.phase(n)[1] for n in ctx.chain)
    out = {**describe(run), "probe_s": round(probes, 1), "size": size, "top": top}
    out["sizes"] = {r.name: ctx.node.size(r.ref) for r in run.results}
    print_run(f"cold {' -> '.join(ctx.chain)} (nbpipe, probes)", run)
    row(f"  of which probes / {top} size", f"{probes:.1f} s / {size / 1e6:,.0f} MB")
    FIGURES["cold"] = out
    if naive_file is None:
        row("naive anchor", f"skipped: it is jupyter-scipy, the chain ends at {top}")
        return
    settle()  # nbpipe's writes and removals are not the naive build's to pay for
    with fresh.node("cold-naive", ctx.engine, ctx.work, ctx.root_tar) as n:
        n.store._run(["tag", ctx.root_ref, "localhost/debian-base:bookworm"])
        cmd = ["bud", "--no-cache", "--layers=false"]
        if CA.exists():
            cmd += ["-v", f"{CA}:/tmp/ca.crt:ro"]
        cmd += ["-f", str(naive_file), "-t", NAIVE_REF, str(naive_file.parent)]
        log = ctx.work / "naive.log"
        start = time.monotonic()
        with log.open("w") as f:
            r = n.buildah(cmd, stdout=f, stderr=subprocess.STDOUT)
        seconds = time.monotonic() - start
        if r.returncode != 0:
            sys.exit(f"naive build failed ({r.returncode}):\n{log.read_text()[-2000:]}")
        naive_size = n.size(NAIVE_REF)
    FIGURES["naive"] = {"seconds": round(seconds, 1), "size": naive_size, "file": str(naive_file)}
    row(
        f"naive {naive_file.name} (buildah, no cache)",
        f"{seconds:.1f} s, {naive_size / 1e6:,.0f} MB",
    )
    show_ratio("cold nbpipe / naive, time", out["seconds"], FIGURES["naive"]["seconds"], "<= 0.5")
    show_ratio(f"{top} / naive, size", size, naive_size)


def warm(ctx: Ctx) -> None:
    head("warm-download cold: download caches kept, layer cache ignored")
    if ctx.node is None:  # alone: a first build on a fresh node fills its download caches
        ctx.node = fresh.Node("warm-nbpipe", ctx.engine, ctx.work, ctx.root_tar)
        prime = ctx.node.build(ctx.catalog, ctx.platform, ctx.options, ctx.chain, label="prime")
        print_run("priming build (fills the download caches, not counted)", prime)
    caches = fresh.folder_bytes(ctx.node.tmp)
    run = ctx.node.build(
        ctx.catalog, ctx.platform, ctx.options, ctx.chain, probe=True, no_cache=True, label="warm"
    )
    FIGURES["warm"] = {**describe(run), "download_cache_bytes": caches}
    row("download caches before it (the node's $TMPDIR)", f"{caches / 1e6:,.0f} MB")
    print_run(f"warm-download cold {' -> '.join(ctx.chain)} (probes)", run)
    if "cold" in FIGURES:
        show_ratio("warm-download / cold", FIGURES["warm"]["seconds"], FIGURES["cold"]["seconds"])


# -- limit --------------------------------------------------------------------------------------
def locked_files(catalog, chain: list[str], platform: str) -> list[LockedFile]:
    """Every wheel and .deb the chain's locked steps install on ``platform``, once each
    (a later step's lock lists what an earlier one installed; it is not fetched again):
    what the pipeline's prefetch fetches (nbpipe/locks/downloads.py), the same way."""
    out: dict[str, LockedFile] = {}
    for name in chain:
        for st in catalog.resolve(name).steps_for(platform):
            for f in downloads.step_files(st):
                out.setdefault(f.sha256, f)
    return list(out.values())


def uses_uv(catalog, chain: list[str], platform: str) -> bool:
    return any(
        isinstance(st, Pip) and getattr(st, "installer", "pip") == "uv"
        for name in chain
        for st in catalog.resolve(name).steps_for(platform)
    )


def limit(ctx: Ctx, jobs: int) -> None:
    head("limit: the chain's locked wheels and .debs, downloaded then unpacked")
    files = locked_files(ctx.catalog, ctx.chain, ctx.platform)
    t = time.monotonic()
    arch = ctx.platform.split("/")[1]
    files, missing = downloads.find_urls(files, arch)
    if missing:
        sys.exit("files the lock names that are found nowhere:\n  " + "\n  ".join(missing))
    if uses_uv(ctx.catalog, ctx.chain, ctx.platform):  # the installer's own wheel, too
        files += downloads.uv_wheels(arch)
    files.sort(key=lambda f: -f.size)  # the largest first: no long tail of one big file
    lookup = time.monotonic() - t
    got, out = ctx.work / "limit-download", ctx.work / "limit-unpack"
    got.mkdir()
    out.mkdir()
    t = time.monotonic()
    with ThreadPoolExecutor(jobs) as pool:
        fetched = list(
            pool.map(
                lambda f: (downloads.download(f, got / f.filename), time.monotonic() - t), files
            )
        )
    fetch = time.monotonic() - t
    by_kind = {
        k: (
            sum(b for (b, _), f in zip(fetched, files, strict=True) if f.kind == k),
            max((d for (_, d), f in zip(fetched, files, strict=True) if f.kind == k), default=0.0),
        )
        for k in ("whl", "deb")
    }

    def unpack(item: tuple[int, LockedFile]) -> None:
        i, f = item
        path, dest = got / f.filename, out / f"{f.kind}-{i}"
        dest.mkdir()
        if f.kind == "deb":
            argv = ["dpkg-deb", "-x", str(path), str(dest)]
        elif path.name.endswith((".tar.gz", ".tgz")):  # an sdist: what its build starts from
            argv = ["tar", "-xzf", str(path), "-C", str(dest)]
        else:
            argv = ["unzip", "-qo", str(path), "-d", str(dest)]
        subprocess.run(argv, check=True)

    t = time.monotonic()
    with ThreadPoolExecutor(os.cpu_count() or 2) as pool:
        list(pool.map(unpack, enumerate(files)))
    unpacked = time.monotonic() - t
    on_disk = int(
        subprocess.run(["du", "-sb", str(out)], capture_output=True, text=True).stdout.split()[0]
    )
    shutil.rmtree(got, ignore_errors=True)
    committed = commit_once(ctx.work, out)
    shutil.rmtree(out, ignore_errors=True)
    n = {k: sum(f.kind == k for f in files) for k in ("whl", "deb")}
    sdists = [f.name for f in files if f.kind == "whl" and not f.url.endswith(".whl")]
    total = fetch + unpacked
    FIGURES["limit"] = {
        "seconds": round(total, 1),
        "download_s": round(fetch, 1),
        "unpack_s": round(unpacked, 1),
        "lookup_s": round(lookup, 1),
        "wheels": n["whl"],
        "debs": n["deb"],
        "sdists": sdists,
        "download_bytes": sum(b for b, _ in fetched),
        "unpacked_bytes": on_disk,
        "parallel_downloads": jobs,
        "pypi_bytes_done_s": by_kind["whl"],
        "debian_bytes_done_s": by_kind["deb"],
        "commit_s": round(committed, 1),
        "with_commit_s": round(total + committed, 1),
    }
    uv = " (uv's wheel among them)" if any(f.name.startswith("uv==") for f in files) else ""
    row(
        f"files: {n['whl']} Python{uv} + {n['deb']} .debs (URLs found in {lookup:.1f} s)",
        f"{sum(b for b, _ in fetched) / 1e6:,.0f} MB, unpacked {on_disk / 1e6:,.0f} MB",
    )
    row(
        f"download ({jobs} at a time) / unpack ({os.cpu_count()} at a time)",
        f"{fetch:.1f} s ({sum(b for b, _ in fetched) / 1e6 / fetch:,.0f} MB/s) / {unpacked:.1f} s",
    )
    row(
        "  PyPI / Debian: bytes, all done after",
        " / ".join(f"{b / 1e6:,.0f} MB, {d:.1f} s" for b, d in by_kind.values()),
    )
    if sdists:
        row("  of the Python files, sdists (unpacked, not built)", ", ".join(sdists))
    row("download-and-unpack limit", f"{total:.1f} s")
    row(
        "  then committing the same files as one layer (buildah)",
        f"{committed:.1f} s ({on_disk / 1e6 / committed:,.0f} MB/s): {total + committed:.1f} s",
    )


def commit_once(work: Path, tree: Path) -> float:
    """Seconds buildah takes to commit ``tree`` as one layer, as a build commits a RUN
    step's files (tar of the layer's diff, copied into the store, applied as a new layer):
    every byte a layered build installs is committed once at least, so this is part of a
    cold build's floor on this machine. ``tree`` is moved (renamed) into a scratch
    container's upper directory in a store of its own under ``work``, and back."""
    store, tmp = work / "commit-store", work / "commit-tmp"
    tmp.mkdir()

    def buildah(*args: str) -> str:
        return fresh.buildah(store, tmp, list(args), check=True, capture_output=True).stdout.strip()

    try:
        box = buildah("from", "scratch")
        upper = Path(buildah("mount", box)).parent / "diff"  # the overlay layer's own files
        buildah("umount", box)
        if not upper.is_dir():
            sys.exit(f"limit: no overlay upper directory at {upper} (the commit needs overlay)")
        tree.rename(upper / "limit")
        t = time.monotonic()
        buildah("commit", "--timestamp", "0", "--quiet", box, "limit-commit")
        seconds = time.monotonic() - t
        (upper / "limit").rename(tree)
        return seconds
    finally:
        fresh.buildah(store, tmp, ["rm", "--all"], capture_output=True)
        fresh.buildah(store, tmp, ["rmi", "--all", "--force"], capture_output=True)
        shutil.rmtree(store, ignore_errors=True)
        shutil.rmtree(f"{store}-run", ignore_errors=True)
        shutil.rmtree(tmp, ignore_errors=True)


# -- shared cache, first notebook ------------------------------------------------------------
def shared(ctx: Ctx) -> None:
    head("shared: a second fresh store with the registry's layer cache (builds only)")
    folder = ctx.work / "shared"
    folder.mkdir()
    first, second, _, used = cache_bench.shared_cache(
        ctx.engine, ctx.catalog, ctx.platform, ctx.options, folder, ctx.root_tar, ctx.chain[-1]
    )
    FIGURES["shared"] = {
        "cold_filling_s": round(first, 1),
        "cached_s": round(second, 1),
        "cache_bytes": used,
    }
    row("cold, filling the cache registry", f"{first:.1f} s")
    row("second fresh store, cache filled", f"{second:.1f} s (cache {used / 1e6:,.0f} MB)")
    show_ratio("shared cache / its cold (which also pushed)", second, first, "<= 0.2")
    if "cold" in FIGURES:  # the cold section's builds alone: no pushes, probes left out
        builds = FIGURES["cold"]["seconds"] - FIGURES["cold"]["probe_s"]
        FIGURES["shared"]["cold_builds_s"] = round(builds, 1)
        show_ratio("shared cache / the cold section's builds (no probes)", second, builds)


def first_notebook(ctx: Ctx, ready_runs: int, compression: str) -> None:
    head("firstnb: jupyter on a cold node (push, pull into an empty store, start)")
    ensure_built(ctx, ["jupyter"])
    ref = local_ref(ctx.catalog.resolve("jupyter"), ctx.platform)
    folder = ctx.work / "firstnb"
    folder.mkdir()
    res = coldstart.cold_node(
        ctx.engine, {"jupyter": ref}, (compression,), ready_runs, folder, both=False
    )
    ready = [w for w, _ in res.ready["jupyter", True]]
    cpu = [c for _, c in res.ready["jupyter", True] if c is not None]
    total = res.first_notebook("jupyter", compression)
    FIGURES["firstnb"] = {
        "compression": compression,
        "compressed_bytes": res.sizes["jupyter", compression],
        "pull_s": round(res.pulls["jupyter", compression], 1),
        "ready_s": [round(w, 2) for w in ready],
        "ready_cpu_s": round(statistics.median(cpu), 2) if cpu else None,
        "seconds": round(total, 1),
    }
    row(
        f"pull ({compression}, {res.sizes['jupyter', compression] / 1e6:,.0f} MB)",
        f"{res.pulls['jupyter', compression]:.1f} s",
    )
    row(
        f"kube play -> 200 at cpu 0.6 (median of {len(ready)})",
        f"{statistics.median(ready):.2f} s ({min(ready):.2f}-{max(ready):.2f})",
    )
    row("first notebook on a cold node (pull + ready)", f"{total:.1f} s")


# -- this machine's own store ----------------------------------------------------------------
def ensure_built(ctx: Ctx, names: list[str]) -> None:
    """``names`` built in this machine's store (cached after the first time), no probes."""
    res = anyio.run(ctx.pipeline(ctx.catalog, ctx.platform, probe=False).run, names)
    bad = [f"{r.name}: {r.status.value} {r.message}" for r in res if not r.ok]
    if bad:
        sys.exit("; ".join(bad))
    built = [r.name for r in res if r.status.value == "built"]
    if built:
        print(f"  (built in this machine's store first: {', '.join(built)})", flush=True)


def noop_as_a_process(runs: int, names: list[str]) -> None:
    """`nbpipe build NAMES` when they are built: the real command, a fresh process each
    time (imports, the engine query, the plan)."""
    head("noop: `nbpipe build` with nothing to do, as a process", wait=False)
    reports = tempfile.mkdtemp(prefix="bench-noop-")
    cmd = [sys.executable, "-m", "nbpipe", "build", *names, "--no-probe", "--report-dir", reports]
    first = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT_DIR)  # builds the rest
    times, cpu = [], []
    for _ in range(runs):
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        t = time.monotonic()
        r = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT_DIR)
        times.append(time.monotonic() - t)
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        cpu.append(after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime)
    states = [x["status"] for x in json.loads((Path(reports) / "nbpipe-report.json").read_text())]
    shutil.rmtree(reports, ignore_errors=True)
    counts = ", ".join(f"{states.count(s)} {s}" for s in dict.fromkeys(states))
    FIGURES["noop"] = {
        "names": names or "all",
        "median_s": round(statistics.median(times), 3),
        "min_s": round(min(times), 3),
        "cpu_s": round(statistics.median(cpu), 3),
        "states": counts,
        "exit": r.returncode,
    }
    row(
        f"no-op `nbpipe build {' '.join(names) or '(all)'}`, as a process",
        f"median {statistics.median(times):.2f} s (min {min(times):.2f}, n={runs}; CPU "
        f"{statistics.median(cpu):.2f} s; {counts}; exit {r.returncode}, first run exit "
        f"{first.returncode})",
    )


def rebuild_one_package(ctx: Ctx) -> None:
    head("rebuild: one package changed in jupyter-scipy")
    # Its step layers as these options write them: an image of the same digest built with
    # other options (the command line's package store, verify-reproducible) has other RUN
    # lines, so buildah would find none of its layers (a 76-81 s "rebuild" on 2026-12-07).
    ctx.engine.remove(local_ref(ctx.catalog.resolve("jupyter-scipy"), ctx.platform))
    ensure_built(ctx, ["jupyter-scipy"])
    old = pins.SCIPY_EXTRA
    pins.SCIPY_EXTRA = tuple("sympy==1.13.3" if p.startswith("sympy==") else p for p in old)
    try:
        changed = images.family().rebased(rootfs.local_root(ctx.engine, (ctx.platform,)))
        t = time.monotonic()
        res = anyio.run(ctx.pipeline(changed, ctx.platform, probe=False).run, ["jupyter-scipy"])
        seconds = time.monotonic() - t
        # gone again (with its untagged intermediate layers), so the next run rebuilds it
        ctx.engine.remove(local_ref(changed.resolve("jupyter-scipy"), ctx.platform))
    finally:
        pins.SCIPY_EXTRA = old
    bad = [f"{r.name}: {r.status.value} {r.message[-300:]}" for r in res if not r.ok]
    if bad:
        row("rebuild after changing one package in jupyter-scipy", "FAILED: " + "; ".join(bad))
        return
    built = [r.name for r in res if r.status.value == "built"]
    FIGURES["rebuild"] = {"seconds": round(seconds, 1), "rebuilt": built}
    row(
        "rebuild after changing one package in jupyter-scipy",
        f"{len(built)} image(s) rebuilt ({', '.join(built)}) in {seconds:.0f} s",
    )


def sizes(ctx: Ctx) -> None:
    head("sizes (uncompressed, this machine's store)", wait=False)
    ensure_built(ctx, ctx.chain)
    out = {}
    for name in ctx.chain:
        out[name] = ctx.engine.inspect(local_ref(ctx.catalog.resolve(name), ctx.platform)).size
        row(f"size of {name}", f"{out[name] / 1e6:,.0f} MB")
    FIGURES["sizes"] = out


def startups(ctx: Ctx, n: int) -> None:
    head("startup: jupyter, container start -> HTTP 200, empty home", wait=False)
    ensure_built(ctx, ["jupyter"])
    ref = local_ref(ctx.catalog.resolve("jupyter"), ctx.platform)
    times = []
    for _ in range(n):
        results, _ = probe(ctx.engine, ref, tags=set())
        ready = [p for p in results if p.name == "http-ready"][0]
        times.append(float(ready.message.split(" after ")[1].split("s")[0]))
    FIGURES["startup"] = {"median_s": statistics.median(times), "all_s": times}
    row(
        f"jupyter: container start -> HTTP 200, empty home (n={n})",
        f"median {statistics.median(times):.2f} s, min {min(times):.2f}, max {max(times):.2f}",
    )


def arm64(ctx: Ctx) -> None:
    head("arm64 (emulated, qemu) cold build of base -> jupyter")
    both = rootfs.local_root(ctx.engine)
    if both is None or plat.ARM64 not in both.platforms:
        row("arm64 (emulated) build of base -> jupyter", "skipped: no arm64 root")
        return
    arm = images.family().rebased(both)
    t = time.monotonic()
    res = anyio.run(
        ctx.pipeline(arm, plat.ARM64, probe=False, no_cache=True).run,
        ["jupyter"],
    )
    seconds = time.monotonic() - t
    FIGURES["arm64"] = {"seconds": round(seconds, 1)}
    status = ", ".join(f"{r.name} {r.status.value}" for r in res)
    row("arm64 (emulated, qemu) cold build of base -> jupyter", f"{seconds:.0f} s ({status})")


def plan_against_registry(ctx: Ctx) -> None:
    """Publish the chain to a loopback registry, then time the look-ups of all images."""
    from nbpipe.engines.registry import Registry
    from nbpipe.recipe.naming import content_tag
    from nbpipe.run.machine import Machine
    from nbpipe.run.publish import publish
    from nbpipe.run.settings import Settings

    head("registry: plan against a registry")
    ensure_built(ctx, ctx.chain)
    with fresh.registry(ctx.work / "plan-registry") as address:
        reg = Registry.parse(address)
        options = BuildOptions(ca_bundle=CA if CA.exists() else None)
        settings = Settings(state_dir=Path(tempfile.mkdtemp(dir=ctx.work)))
        publish(
            Machine(ctx.catalog, ctx.platform, None, ctx.engine, None, settings=settings),
            ctx.chain,
            reg,
            platforms=(ctx.platform,),
            options=options,
            settings=settings,
        )
        everything = ctx.catalog.order()
        t = time.monotonic()
        with reg.authfile() as auth:
            have = [
                n
                for n in everything
                if reg.digest(f"{reg.repo(n)}:{content_tag(ctx.catalog.resolve(n))}", auth)
            ]
        seconds = time.monotonic() - t
    FIGURES["registry"] = {"seconds": round(seconds, 2), "looked_up": len(everything)}
    row(
        f"plan against a registry ({len(have)} published, {len(everything)} looked up)",
        f"{seconds:.2f} s",
    )


# -- the summary ------------------------------------------------------------------------------
def summary() -> None:
    head("summary: every cold figure as a ratio", wait=False)
    lim = FIGURES.get("limit", {}).get("seconds")
    naive = FIGURES.get("naive", {}).get("seconds")
    figures = [
        ("cold nbpipe, probes included", FIGURES.get("cold", {}).get("seconds")),
        ("naive anchor (buildah, no cache)", naive),
        ("warm-download cold, probes included", FIGURES.get("warm", {}).get("seconds")),
        ("shared: cold, filling the cache", FIGURES.get("shared", {}).get("cold_filling_s")),
        ("shared: second store, cache filled", FIGURES.get("shared", {}).get("cached_s")),
        ("first notebook on a cold node (jupyter)", FIGURES.get("firstnb", {}).get("seconds")),
        ("download-and-unpack limit", lim),
        (
            "limit + committing its files as one layer",
            FIGURES.get("limit", {}).get("with_commit_s"),
        ),
    ]
    print(f"{'figure':44} {'seconds':>8} {'/ naive':>8} {'/ limit':>8}")
    ratios = {}
    for what, s in figures:
        if s is None:
            continue
        rn, rl = (ratio(s, naive), ratio(s, lim)) if "notebook" not in what else (None, None)
        ratios[what] = {"seconds": s, "to_naive": rn, "to_limit": rl}
        cells = [f"{x:8.2f}" if x is not None else f"{'-':>8}" for x in (rn, rl)]
        print(f"{what:44} {s:8.1f} {cells[0]} {cells[1]}")
    FIGURES["ratios"] = ratios
    goals: list[tuple[str, float | None, float, str]] = []
    cold_s = FIGURES.get("cold", {}).get("seconds")
    if cold_s and naive:
        goals.append(("cold <= 0.5 x naive", ratio(cold_s, naive), 0.5, "x"))
    if cold_s and lim:
        goals.append(("cold <= 2 x limit", ratio(cold_s, lim), 2.0, "x"))
    if "shared" in FIGURES:
        sh = FIGURES["shared"]
        goals.append(
            ("shared <= 0.2 x its cold", ratio(sh["cached_s"], sh["cold_filling_s"]), 0.2, "x")
        )
        if "cold_builds_s" in sh:  # the stricter reading: a cold run that pushed nothing
            goals.append(
                (
                    "shared <= 0.2 x cold builds",
                    ratio(sh["cached_s"], sh["cold_builds_s"]),
                    0.2,
                    "x",
                )
            )
    sz = FIGURES.get("cold", {}).get("sizes") or FIGURES.get("sizes") or {}
    if "jupyter" in sz:
        goals.append(("jupyter <= 450 MB", round(sz["jupyter"] / 1e6), 450, "MB"))
    if "jupyter-scipy" in sz:
        goals.append(("jupyter-scipy <= 2.2 GB", round(sz["jupyter-scipy"] / 1e6), 2200, "MB"))
    floor = FIGURES.get("limit", {}).get("with_commit_s")
    if cold_s and floor:  # not one of the goals: how far cold is from the floor
        FIGURES["floor"] = {"seconds": floor, "cold_to_floor": ratio(cold_s, floor)}
        print(f"{'cold / (limit + one commit of its files)':44} {ratio(cold_s, floor):8.2f}")
    if goals:
        print("\nissue 23's goals (same run):")
    for what, value, target, unit in goals:
        met = value is not None and value <= target
        shown = f"{value:.2f} x" if unit == "x" else f"{value:,.0f} MB"
        print(f"{what:44} {shown:>10}  {'met' if met else 'NOT met'}")
    FIGURES["goals"] = {
        w: {"value": v, "target": t, "met": v is not None and v <= t} for w, v, t, _ in goals
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--only", action="append", choices=SECTIONS + OPT_IN, help="repeatable")
    ap.add_argument("--json", type=Path, help="write every figure to this file")
    ap.add_argument("--chain", default="jupyter-scipy", help="the top of the chain")
    ap.add_argument("--naive", type=Path, help=f"the anchor Containerfile (default {NAIVE_FILE})")
    ap.add_argument("--downloads", type=int, default=16, help="limit: parallel downloads")
    ap.add_argument("--startups", type=int, default=5)
    ap.add_argument("--ready-runs", type=int, default=3, help="firstnb: pods played")
    ap.add_argument("--compression", default="gzip", choices=("gzip", "zstd"))
    ap.add_argument("--noop-runs", type=int, default=7)
    ap.add_argument(
        "--noop-names",
        nargs="*",
        default=None,
        help="images the no-op builds (default: the chain; none named: all)",
    )
    ap.add_argument("--arm64", action="store_true", help="also the emulated arm64 build")
    ap.add_argument("--registry", action="store_true", help="also `plan` against a registry")
    args = ap.parse_args()
    asked = set(args.only or [*SECTIONS, *(s for s in OPT_IN if getattr(args, s))])
    wanted = [s for s in SECTIONS + OPT_IN if s in asked]  # warm needs cold's node, if any

    engine = OciEngine.detect("podman")
    platform = plat.host()
    root = rootfs.local_root(engine, (platform,)) or rootfs.bootstrap(engine, platform)
    catalog = images.family().rebased(root)
    chain = catalog.order([args.chain])
    naive = args.naive or (NAIVE_FILE if chain[-1] == "jupyter-scipy" else None)
    FIGURES["machine"] = m = machine(engine)
    print(
        f"{m['date']}, commit {m['commit']}: {m['nproc']} cores ({m['cpu']}), "
        f"{m['memory_gb']} GB, {m['podman']}, {m['buildah']}, load {m['load_start']}\n"
        f"platform {platform}, root {root.pinned(platform)}, chain {' -> '.join(chain)}, "
        f"sections {', '.join(wanted)}",
        flush=True,
    )
    work = Path(tempfile.mkdtemp(prefix="bench-", dir=WORK_DIR))  # short run roots
    ctx = Ctx(
        engine,
        platform,
        root.pinned(platform),
        catalog,
        chain,
        work,
        work / "root.tar",
        BuildOptions.from_flags(deb_store="none"),
    )
    if {"cold", "warm", "shared"} & set(wanted):
        fresh.save_root(engine, ctx.root_ref, ctx.root_tar)
    started = time.monotonic()
    try:
        for section in wanted:
            if section == "cold":
                cold(ctx, naive)
            elif section == "warm":
                warm(ctx)
            elif section == "limit":
                limit(ctx, args.downloads)
            elif section == "shared":
                if ctx.node is not None:
                    ctx.node.close()  # warm has run (sections go in order): free the disk
                    ctx.node = None
                shared(ctx)
            elif section == "firstnb":
                first_notebook(ctx, args.ready_runs, args.compression)
            elif section == "noop":
                names = chain if args.noop_names is None else args.noop_names
                noop_as_a_process(args.noop_runs, names)
            elif section == "rebuild":
                rebuild_one_package(ctx)
            elif section == "sizes":
                sizes(ctx)
            elif section == "startup":
                startups(ctx, args.startups)
            elif section == "arm64":
                arm64(ctx)
            elif section == "registry":
                plan_against_registry(ctx)
        summary()
    finally:
        if ctx.node is not None:
            ctx.node.close()
        shutil.rmtree(work, ignore_errors=True)
        m["load_end"] = [round(x, 2) for x in os.getloadavg()]
        m["wall_s"] = round(time.monotonic() - started, 1)
        print(f"\nload at the end {m['load_end']}; the run took {m['wall_s']:.0f} s")
        if args.json:
            args.json.write_text(json.dumps(FIGURES, indent=1) + "\n")
            print(f"figures written to {args.json}")


if __name__ == "__main__":
    main()
