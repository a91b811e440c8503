"""`nbpipe build --engine dagger`: the same lowering, run through dagger.connection().

Used when a Dagger session is there (inside `dagger run`: $DAGGER_SESSION_PORT) or a
`dagger` CLI is on PATH; never downloads an engine on its own.
"""

from __future__ import annotations

import os
import shutil
import time

import anyio

from nbpipe.engines import dagger as lowering
from nbpipe.errors import NbpipeError
from nbpipe.recipe.catalog import Catalog
from nbpipe.recipe.options import BuildOptions
from nbpipe.run import schedule
from nbpipe.run.report import ImageResult, Outcome
from nbpipe.run.state import State, assess

# NAME@sha256:DIGEST of a Debian bookworm root to build on instead of the pinned
# docker.io one (the `--root` of our Dagger module, for `nbpipe build --engine dagger`)
ROOT_ENV = "NBPIPE_DAGGER_ROOT"


def available() -> str | None:
    """Why Dagger can be used here (or None): a session, or a CLI on PATH."""
    if os.environ.get("DAGGER_SESSION_PORT"):
        return "the Dagger session of `dagger run`"
    cli = shutil.which("dagger")
    return f"the dagger CLI at {cli}" if cli else None


async def build(
    catalog: Catalog,
    names: list[str] | None,
    platform: str,
    options: BuildOptions,
    on_event=lambda n, w: None,
    jobs: int = 2,
) -> list[ImageResult]:
    import dagger

    if available() is None:
        raise NbpipeError(
            "--engine dagger: no Dagger engine here (no `dagger` CLI on PATH and "
            "no $DAGGER_SESSION_PORT); install Dagger or use --engine podman"
        )
    if shutil.which("dagger") and not os.environ.get("_EXPERIMENTAL_DAGGER_CLI_BIN"):
        os.environ["_EXPERIMENTAL_DAGGER_CLI_BIN"] = shutil.which("dagger") or ""
    # where Docker Hub is out of reach: the root from another registry, by digest
    catalog = lowering.rooted(catalog, os.environ.get(ROOT_ENV, ""), f"${ROOT_ENV}")
    # Dagger keeps its own cache: nothing counts as built beforehand, the rest is the same
    states = {
        s.name: s for s in assess(catalog, platform, {}, names, wheelhouse=options.has_wheelhouse)
    }
    results = {n: ImageResult(n, platform, s.digest, s.ref) for n, s in states.items()}

    async def work(name: str) -> bool:
        res, started = results[name], time.monotonic()
        if states[name].state is State.UNBUILDABLE:
            res.status, res.message = Outcome.UNBUILDABLE, states[name].reason
            on_event(name, f"unbuildable: {res.message}")
            return False
        on_event(name, "building with dagger")
        try:
            await lowering.lower(catalog.resolve(name), platform, options).sync()
            res.status = Outcome.BUILT
        except dagger.ExecError as exc:
            res.status = Outcome.FAILED
            res.message = failed_step(name, exc)
        except dagger.QueryError as exc:
            res.status, res.message = Outcome.FAILED, f"{name}: {exc}"
        res.seconds = round(time.monotonic() - started, 2)
        on_event(name, res.status)
        return res.ok

    def blocked(name: str, by: str) -> None:
        results[name].status = Outcome.BLOCKED
        results[name].message = f"not built: its parent {by} {results[by].status}"

    async with dagger.connection(dagger.Config(log_output=None)):
        await schedule.run(catalog, list(states), work, jobs=jobs, on_blocked=blocked)
    return list(results.values())


def failed_step(name: str, exc) -> str:
    """One line naming the image, the command and its exit code, then stderr's tail."""
    cmd = " ".join(exc.command)
    if len(cmd) > 300:
        cmd = cmd[:300] + "..."
    tail = "\n".join(exc.stderr.rstrip().splitlines()[-20:])[-2000:]
    return f"{name}: step failed (exit {exc.exit_code}): {cmd}\n{tail}"


def run(catalog: Catalog, names, platform, options, on_event, jobs: int = 2) -> list[ImageResult]:
    return anyio.run(build, catalog, names, platform, options, on_event, jobs)
