"""nbpipe benchmarks (a script, not a test): prints the figures the issues ask for.

    .venv/bin/python bench/bench.py [--skip-cold] [--startups 5]

Cold builds use --no-cache (no layer reuse); apt/pip download caches stay warm for both
sides alike, so the ratio compares the pipelines, not the network.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import anyio

ROOT_DIR = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT_DIR))

from nbpipe import family as images  # noqa: E402
from nbpipe.engines import rootfs  # noqa: E402
from nbpipe.engines.oci import OciEngine  # noqa: E402
from nbpipe.family import pins  # noqa: E402
from nbpipe.probing.prober import probe  # noqa: E402
from nbpipe.recipe import platforms as plat  # noqa: E402
from nbpipe.recipe.naming import local_ref  # noqa: E402
from nbpipe.recipe.options import BuildOptions  # noqa: E402
from nbpipe.run.pipeline import Pipeline  # noqa: E402

CA = Path("/etc/ssl/certs/ca-certificates.crt")
CHAIN = ["base", "jupyter", "jupyter-scipy"]


def row(what: str, value: str) -> None:
    print(f"{what:58} {value}", flush=True)


def pipeline(cat, engine, platform, **kw):
    options = BuildOptions(ca_bundle=CA if CA.exists() else None)
    return Pipeline.local(cat, engine, platform, options, state_dir=Path(tempfile.mkdtemp()), **kw)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--skip-cold", action="store_true")
    ap.add_argument("--only", choices=("noop", "registry"), help="just one measurement")
    ap.add_argument("--startups", type=int, default=5)
    ap.add_argument("--noop-runs", type=int, default=7)
    ap.add_argument(
        "--noop-names",
        nargs="*",
        default=[],
        help="images the no-op builds (default: all; the first run builds whatever is missing)",
    )
    ap.add_argument(
        "--arm64",
        action="store_true",
        help="also time an emulated arm64 "
        "build of base -> jupyter (needs .ci/setup-emulation.sh and its root)",
    )
    ap.add_argument(
        "--registry",
        action="store_true",
        help="also time `plan --registry` against a local registry holding every image built here",
    )
    args = ap.parse_args()
    engine = OciEngine.detect()
    platform = plat.host()
    root = rootfs.local_root(engine, (platform,)) or rootfs.bootstrap(engine, platform)
    family = images.family().rebased(root)
    print(f"engine {engine.kind}, platform {platform}, root {root.pinned(platform)}\n")

    if args.only == "registry":
        return plan_against_registry(family, engine, platform)
    if not args.skip_cold and args.only is None:
        t = time.monotonic()
        res = anyio.run(pipeline(family, engine, platform, probe=False, no_cache=True).run, CHAIN)
        cold = time.monotonic() - t
        assert all(r.status == "built" for r in res), [(r.name, r.message) for r in res]
        row("cold build base -> jupyter -> jupyter-scipy (nbpipe)", f"{cold:.0f} s")
        t = time.monotonic()
        cmd = [
            engine.binary,
            "build",
            "--no-cache",
            "--network",
            "host",
            "-q",
            "-f",
            str(ROOT_DIR / "bench/handwritten.Dockerfile"),
            "--build-arg",
            f"ROOT={root.pinned(platform)}",
            "-t",
            "localhost/bench/handwritten",
        ]
        if CA.exists():
            cmd += ["--secret", f"id=ca,src={CA}"]
        subprocess.run([*cmd, str(ROOT_DIR)], check=True, stdout=subprocess.DEVNULL)
        hand = time.monotonic() - t
        row("same content, one hand-written Dockerfile (same CLI)", f"{hand:.0f} s")
        row("ratio nbpipe / hand-written", f"{cold / hand:.2f}")
        hand_size = engine.inspect("localhost/bench/handwritten").size
        row("hand-written image size", f"{hand_size / 1e6:,.0f} MB")

    noop_as_a_process(args.noop_runs, args.noop_names)
    if args.only == "noop":
        return

    old = pins.SCIPY_EXTRA
    pins.SCIPY_EXTRA = tuple("sympy==1.13.3" if p.startswith("sympy==") else p for p in old)
    try:
        changed = images.family().rebased(root)
        t = time.monotonic()
        res = anyio.run(pipeline(changed, engine, platform, probe=False).run, CHAIN)
        built = [r.name for r in res if r.status == "built"]
        row(
            "rebuild after changing one package in jupyter-scipy",
            f"{len(built)} image(s) rebuilt ({', '.join(built)}) in {time.monotonic() - t:.0f} s",
        )
    finally:
        pins.SCIPY_EXTRA = old

    for name in CHAIN:
        size = engine.inspect(local_ref(family.resolve(name), platform)).size
        row(f"size of {name} (uncompressed)", f"{size / 1e6:,.0f} MB")

    ref = local_ref(family.resolve("jupyter"), platform)
    times = []
    for _ in range(args.startups):
        results, _ = probe(engine, ref, tags=set())
        ready = [p for p in results if p.name == "http-ready"][0]
        times.append(float(ready.message.split(" after ")[1].split("s")[0]))
    row(
        f"jupyter: container start -> HTTP 200, empty home (n={len(times)})",
        f"median {statistics.median(times):.2f} s, min {min(times):.2f}, max {max(times):.2f}",
    )

    if args.arm64:
        both = rootfs.local_root(engine)
        if both is None or plat.ARM64 not in both.platforms:
            row("arm64 (emulated) build of base -> jupyter", "skipped: no arm64 root")
        else:
            arm = images.family().rebased(both)
            t = time.monotonic()
            res = anyio.run(
                pipeline(arm, engine, plat.ARM64, probe=False, no_cache=True).run, ["jupyter"]
            )
            status = ", ".join(f"{r.name} {r.status}" for r in res)
            row(
                "arm64 (emulated, qemu) cold build of base -> jupyter",
                f"{time.monotonic() - t:.0f} s ({status})",
            )

    if args.registry:
        plan_against_registry(family, engine, platform)


def noop_as_a_process(runs: int, names: list[str]) -> None:
    """`nbpipe build` (default: the whole family) when everything buildable is built: the
    real command, a fresh process each time (imports, the engine query, the plan)."""
    reports = tempfile.mkdtemp(prefix="bench-noop-")
    cmd = [sys.executable, "-m", "nbpipe", "build", *names, "--no-probe", "--report-dir", reports]
    first = subprocess.run(
        cmd, capture_output=True, text=True, cwd=ROOT_DIR
    )  # builds what is missing
    times, cpu = [], []
    for _ in range(runs):
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        t = time.monotonic()
        r = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT_DIR)
        times.append(time.monotonic() - t)
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        cpu.append(after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime)
    states = [x["status"] for x in json.loads((Path(reports) / "nbpipe-report.json").read_text())]
    counts = ", ".join(f"{states.count(s)} {s}" for s in dict.fromkeys(states))
    row(
        f"no-op `nbpipe build {' '.join(names) or '(all 17)'}`, as a process",
        f"median {statistics.median(times):.2f} s (min {min(times):.2f}, n={runs}; CPU "
        f"{statistics.median(cpu):.2f} s; load {os.getloadavg()[0]:.1f}; {counts}; "
        f"exit {r.returncode}, first run exit {first.returncode})",
    )


def plan_against_registry(family, engine, platform) -> None:
    """Publish every image built here to a local registry, then time the plan."""
    import shutil
    import socket

    from nbpipe.engines.registry import Registry
    from nbpipe.recipe.naming import content_tag
    from nbpipe.run.machine import Machine
    from nbpipe.run.publish import publish
    from nbpipe.run.settings import Settings

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    folder = Path(tempfile.mkdtemp(prefix="bench-registry-"))
    script = ROOT_DIR / ".ci/setup-registry.sh"
    subprocess.run(
        ["bash", str(script), "start", str(port), str(folder)], check=True, capture_output=True
    )
    try:
        reg = Registry.parse(f"127.0.0.1:{port}")
        built = CHAIN  # the chain the bench built; plan then looks up all 17
        options = BuildOptions(ca_bundle=CA if CA.exists() else None)
        settings = Settings(state_dir=Path(tempfile.mkdtemp()))
        publish(
            Machine(family, platform, None, engine, None, settings=settings),
            built,
            reg,
            platforms=(platform,),
            options=options,
            settings=settings,
        )
        t = time.monotonic()
        with reg.authfile() as auth:
            have = [
                n
                for n in family.order()
                if reg.digest(f"{reg.repo(n)}:{content_tag(family.resolve(n))}", auth)
            ]
        row(
            f"plan against a registry ({len(have)} of 17 published, 17 looked up)",
            f"{time.monotonic() - t:.2f} s",
        )
    finally:
        subprocess.run(["bash", str(script), "stop", str(folder)], capture_output=True)
        shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    main()
