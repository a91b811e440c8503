"""Run the contract probes against a server you can reach, from anywhere:

    python3 -m nbpipe.probes --url http://nb:8888 --prefix /notebook/ns/name \\
        --labels '{"io.nbpipe.server": "jupyter", ...}' [--inside]

--inside: this process runs in the notebook container itself (the checks that look at
processes and files run here); without it only the HTTP checks run, the others are
reported SKIPPED. Prints one line per check and a JSON summary; exits 1 if any failed.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys

from nbpipe.probes.checks import Target, run_all
from nbpipe.probes.result import Status
from nbpipe.probes.smoke import runner_tags


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python3 -m nbpipe.probes")
    ap.add_argument("--url", required=True, help="http://HOST:PORT of the server")
    ap.add_argument("--prefix", default="/", help="the NB_PREFIX the server was started with")
    ap.add_argument("--labels", default="{}", help="the image's labels as JSON")
    ap.add_argument("--inside", action="store_true", help="run in the notebook container")
    ap.add_argument("--timeout", type=float, default=90.0)
    args = ap.parse_args(argv)

    def local_exec(cmd: list[str], timeout: float = 60) -> tuple[int, str]:
        r = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
        return r.returncode, r.stdout + r.stderr

    prefix = args.prefix.rstrip("/") + "/"
    target = Target(
        base_url=args.url.rstrip("/"),
        prefix=prefix,
        labels=json.loads(args.labels),
        exec=local_exec if args.inside else None,
        runner_tags=runner_tags(),
        ready_timeout=args.timeout,
    )
    results = run_all(target)
    for r in results:
        print(f"{r.status.value.upper():7} {r.name:22} {r.message}")
    n = {s: sum(r.status is s for r in results) for s in Status}
    print(json.dumps({"results": [r.to_dict() for r in results]}))
    print(f"{n[Status.PASSED]} passed, {n[Status.FAILED]} failed, {n[Status.SKIPPED]} skipped")
    return 1 if n[Status.FAILED] else 0


if __name__ == "__main__":
    sys.exit(main())
