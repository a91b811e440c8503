"""Large untrusted inputs, timed (issue 21): what a new user's `nbpipe` does with a 1 MiB
requirements.txt (about 200,000 lines), a 1 MiB environment.yml and a chain of 1,000
specs, each as a whole process (`python -m nbpipe ...`, as the CLI runs) and, for the
parsers, in-process. Each figure is the median of --runs runs; memory is the process's
peak resident set (ru_maxrss of the children).

    python bench/untrusted.py [--runs 3]
"""

from __future__ import annotations

import argparse
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from functools import partial
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

LIMIT = (1 << 20) - 64  # just under safe_io.MAX_BYTES


def lines_up_to(fmt: str, limit: int = LIMIT) -> tuple[str, int]:
    out, size, i = [], 0, 0
    while True:
        line = fmt.format(i=i) + "\n"
        if size + len(line) > limit:
            return "".join(out), i
        out.append(line)
        size += len(line)
        i += 1


def run_cli(args: list[str], cwd: Path) -> tuple[float, int]:
    before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    start = time.monotonic()
    p = subprocess.run(
        [sys.executable, "-m", "nbpipe", *args], cwd=cwd, capture_output=True, text=True
    )
    seconds = time.monotonic() - start
    if p.returncode != 0:
        raise SystemExit(f"nbpipe {' '.join(args[:4])} ... failed: {p.stderr.strip()[-300:]}")
    return seconds, max(before, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)


def median(runs: int, fn) -> tuple[float, int]:
    results = [fn() for _ in range(runs)]
    return statistics.median(r[0] for r in results), max(r[1] for r in results)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=3)
    runs = ap.parse_args().runs
    from nbpipe.family import family
    from nbpipe.inputs import requirements, spec

    rows: list[tuple[str, str, str]] = []
    with tempfile.TemporaryDirectory(prefix="nbpipe-bench-") as tmp:
        work = Path(tmp)
        reqs = work / "reqs"
        reqs.mkdir()
        text, n = lines_up_to("p{i}")
        (reqs / "requirements.txt").write_text(text)
        start = time.monotonic()
        for _ in range(runs):
            requirements.pip(reqs / "requirements.txt")
        rows.append(
            (
                f"requirements.pip, {n:,} lines ({len(text):,} B), in-process",
                f"{(time.monotonic() - start) / runs:.2f} s",
                "-",
            )
        )
        for verb in ("plan", "export"):
            s, rss = median(runs, partial(run_cli, [verb, "--from-repo", str(reqs)], work))
            rows.append(
                (
                    f"nbpipe {verb} --from-repo (1 MiB requirements.txt)",
                    f"{s:.2f} s",
                    f"{rss / 1024:.0f} MiB",
                )
            )

        env = work / "env"
        env.mkdir()
        body, n = lines_up_to("    - p{i}", LIMIT - 40)
        (env / "environment.yml").write_text("dependencies:\n  - pip:\n" + body)
        s, rss = median(runs, lambda: run_cli(["export", "--from-repo", str(env)], work))
        rows.append(
            (
                f"nbpipe export --from-repo (1 MiB environment.yml, {n:,} pip entries)",
                f"{s:.2f} s",
                f"{rss / 1024:.0f} MiB",
            )
        )

        chain = work / "chain"
        chain.mkdir()
        for i in range(1000):
            parent = "jupyter" if i == 0 else f"s{i - 1}"
            (chain / f"s{i}.yaml").write_text(f"name: s{i}\nparent: {parent}\nenv: {{A{i}: x}}\n")
        start = time.monotonic()
        for _ in range(runs):
            cat = family()
            for i in range(1000):
                spec.load(chain / f"s{i}.yaml").register(cat)
            cat.resolve("s999").digest()
            cat.digests()
        rows.append(
            (
                "1,000-spec chain: load, register, resolve, every digest, in-process",
                f"{(time.monotonic() - start) / runs:.2f} s",
                "-",
            )
        )
        files = [a for i in range(1000) for a in ("-f", f"s{i}.yaml")]
        for verb, extra in (("plan", []), ("export", ["s999"])):
            s, rss = median(runs, partial(run_cli, [verb, *files, *extra], chain))
            rows.append(
                (f"nbpipe {verb} with 1,000 chained specs", f"{s:.2f} s", f"{rss / 1024:.0f} MiB")
            )

    width = max(len(r[0]) for r in rows)
    print(f"{'what':<{width}}  {'median':>8}  {'peak RSS':>9}")
    for what, s, rss in rows:
        print(f"{what:<{width}}  {s:>8}  {rss:>9}")


if __name__ == "__main__":
    main()
