"""Run nbpipe as a new user would, bounded: a subprocess under a 3 GB address-space limit
(RLIMIT_AS, what `ulimit -v 3000000` sets) and a wall-clock limit, so a hostile input
that hangs, loops or fills memory fails the test instead of the machine (issue 21)."""

from __future__ import annotations

import os
import resource
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

MEMORY = 3_000_000 * 1024  # bytes: ulimit -v 3000000
ROOT = Path(__file__).resolve().parents[2]


@dataclass(frozen=True)
class Run:
    rc: int
    out: str
    err: str
    seconds: float

    def one_line_error(self, *fragments: str) -> str:
        """The run failed (exit 1) with exactly one error line on stderr, the last one,
        holding each fragment: no traceback, no internal error, no raw control character
        (a line before it may say what is being done, e.g. export's digest line)."""
        assert self.rc == 1, (self.rc, self.err[-2000:])
        lines = self.err.strip().splitlines()
        errors = [x for x in lines if x.startswith("nbpipe: error: ")]
        assert len(errors) == 1 and lines[-1] == errors[0], self.err[-2000:]
        assert "Traceback" not in self.err and all(c.isprintable() or c == "\n"
                                                   for c in self.err), repr(self.err[-2000:])
        line = errors[0]
        assert line.startswith("nbpipe: error: ") and "internal error" not in line, line
        assert all(c.isprintable() for c in line), repr(line)
        for f in fragments:
            assert f in line, (f, line)
        return line


def _limit() -> None:
    resource.setrlimit(resource.RLIMIT_AS, (MEMORY, MEMORY))


def nbpipe(*args: str, cwd: Path, timeout: float = 30, env: dict[str, str] | None = None) -> Run:
    """`python -m nbpipe ARGS` in ``cwd``, within ``timeout`` seconds and 3 GB."""
    return python("-m", "nbpipe", *args, cwd=cwd, timeout=timeout, env=env)


def python(*args: str, cwd: Path, timeout: float = 30, env: dict[str, str] | None = None) -> Run:
    environ = {**os.environ, "PYTHONPATH": str(ROOT), **(env or {})}
    environ.pop("NBPIPE_DEBUG", None)
    start = time.monotonic()
    try:
        p = subprocess.run([sys.executable, *args], cwd=cwd, capture_output=True, text=True,
                           errors="surrogateescape", timeout=timeout, env=environ,
                           preexec_fn=_limit, stdin=subprocess.DEVNULL)
    except subprocess.TimeoutExpired:
        raise AssertionError(f"nbpipe {' '.join(args)[:200]} ran past {timeout} s") from None
    seconds = time.monotonic() - start
    assert "MemoryError" not in p.stderr, p.stderr[-2000:]
    return Run(p.returncode, p.stdout, p.stderr, seconds)
