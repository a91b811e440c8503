"""Dagger against Podman on one machine, in one run (a script, not a test; it prints the
table the README's "With Dagger" quotes):

    source /opt/nbpipe-dagger/env && .venv/bin/python bench/dagger_figures.py [IMAGE]

For IMAGE (default jupyter-scipy), one after the other: `dagger call build` cold (the
engine's cache pruned first: layers and cache volumes) and warm (the same call again),
then `nbpipe build --no-probe` cold (`--no-cache`) and warm (everything already built).
Also the engine's start-up (stopped -> answering a query) and the build figures
`.ci/setup-dagger.sh` recorded in $PREFIX/timings. Needs the engine `.ci/setup-dagger.sh`
built and started; it stops nothing it did not start.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
PREFIX = Path(os.environ.get("NBPIPE_DAGGER_PREFIX", "/opt/nbpipe-dagger"))
CA = Path("/etc/ssl/certs/ca-certificates.crt")


def timed(label: str, argv: list[str], log: Path) -> dict:
    """Run ``argv`` (output to ``log``), wall time in seconds, and whether it worked."""
    t0 = time.monotonic()
    with log.open("a") as f:
        f.write(f"\n$ {' '.join(argv)}\n")
        f.flush()
        rc = subprocess.run(argv, cwd=REPO, stdout=f, stderr=subprocess.STDOUT).returncode
    row = {"what": label, "seconds": round(time.monotonic() - t0, 1), "exit": rc}
    print(f"{label:44} {row['seconds']:8.1f} s  exit {rc}", flush=True)
    return row


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("image", nargs="?", default="jupyter-scipy")
    ap.add_argument("--log", type=Path, default=Path("/tmp/dagger_figures.log"))
    ap.add_argument("--skip-start", action="store_true", help="do not restart the engine")
    args = ap.parse_args(argv)
    root = os.environ.get("NBPIPE_DAGGER_ROOT", "")
    ca = ["--ca-bundle", f"file:{CA}"] if CA.exists() else []
    dagger = ["dagger", "call", "--progress", "plain", *(["--root", root] if root else [])]
    rows = []
    if not args.skip_start:
        subprocess.run(["bash", ".ci/setup-dagger.sh", "stop"], cwd=REPO, check=True)
        rows.append(
            timed(
                "engine start-up (stopped -> answers)",
                ["bash", ".ci/setup-dagger.sh", "start"],
                args.log,
            )
        )
    rows.append(
        timed(
            "dagger: prune the engine's cache",
            [
                "sh",
                "-c",
                "echo '{ engine { localCache { prune } } }' | dagger query --progress plain",
            ],
            args.log,
        )
    )
    build = [*dagger, "build", "--image", args.image, *ca, "sync"]
    rows.append(timed(f"dagger call build --image {args.image} (cold)", build, args.log))
    rows.append(timed(f"dagger call build --image {args.image} (warm)", build, args.log))
    nbpipe = [
        str(REPO / ".venv/bin/nbpipe"),
        "build",
        args.image,
        "--engine",
        "podman",
        "--no-probe",
        "--report-dir",
        "/tmp/dagger_figures-reports",
    ]
    rows.append(
        timed(f"nbpipe build {args.image} --no-cache (cold)", [*nbpipe, "--no-cache"], args.log)
    )
    rows.append(timed(f"nbpipe build {args.image} (warm)", nbpipe, args.log))
    timings = {}
    if (PREFIX / "timings").exists():
        for line in (PREFIX / "timings").read_text().split():
            k, _, v = line.partition("=")
            timings[k] = float(v)  # the last run of each stage wins
    print(json.dumps({"image": args.image, "rows": rows, "setup": timings}, indent=2))
    return 0 if all(r["exit"] == 0 for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
