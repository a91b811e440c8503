"""Does a `dagger` CLI here really reach a running engine? A CLI on PATH is not enough: with
no engine it starts provisioning one (pulling an image), which here never ends. One bounded
`dagger query` answers it; the live tests skip with the reason this gives."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
from dataclasses import dataclass

# `{version}` is the smallest query an engine answers; a running local engine answers in
# about a second (measured here: see the README's "With Dagger"), a stopped one fails at once
QUERY = "{version}"
TIMEOUT_S = 8.0


@dataclass(frozen=True)
class Reach:
    """What a bounded query found: the engine's version when it answered, else why not."""

    cli: str | None
    version: str | None
    reason: str

    @property
    def ok(self) -> bool:
        return self.version is not None


def reach(cli: str | None = None, timeout: float = TIMEOUT_S) -> Reach:
    """Ask the engine behind ``cli`` (default: `dagger` on PATH) for its version, for at most
    ``timeout`` seconds; the CLI and anything it started are killed past that."""
    cli = cli or shutil.which("dagger")
    if cli is None:
        return Reach(None, None, "no dagger CLI on PATH")
    env = {**os.environ, "DO_NOT_TRACK": "1", "DAGGER_NO_NAG": "1"}
    try:
        proc = subprocess.Popen(
            [cli, "query", "-M", "--progress", "plain"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
            start_new_session=True,
        )
    except OSError as exc:
        return Reach(cli, None, f"{cli} does not run: {exc.strerror}")
    try:
        out, err = proc.communicate(QUERY, timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.communicate()
        return Reach(
            cli,
            None,
            f"{cli} reached no engine within {timeout:g} s "
            "(is the engine container running? bash .ci/setup-dagger.sh start)",
        )
    return parse(cli, proc.returncode, out, err)


def parse(cli: str, code: int, out: str, err: str) -> Reach:
    """The engine's version from `dagger query`'s JSON, else the last line it printed."""
    if code == 0:
        try:
            version = json.loads(out)["version"]
        except (ValueError, KeyError, TypeError):
            return Reach(cli, None, f"{cli} query answered no version: {out.strip()[:200]!r}")
        if isinstance(version, str) and version:
            return Reach(cli, version, f"engine {version} via {cli}")
        return Reach(cli, None, f"{cli} query answered no version: {out.strip()[:200]!r}")
    lines = [ln for ln in (err or out).strip().splitlines() if ln.strip()]
    last = lines[-1].strip()[:300] if lines else "no output"
    return Reach(cli, None, f"{cli} reached no engine (exit {code}): {last}")
