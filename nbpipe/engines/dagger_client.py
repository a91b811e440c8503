"""`nbpipe build --engine dagger`: the same lowering, run through dagger.connection().

Used when a Dagger session is there (inside `dagger run`: $DAGGER_SESSION_PORT) or a
`dagger` CLI is on PATH; never downloads an engine on its own.
"""

from __future__ import annotations

import os
import shutil
import time

import anyio

from ..catalog import Catalog
from ..errors import NbpipeError
from ..options import BuildOptions
from ..report import ImageResult
from . import dagger as lowering


def available() -> str | None:
    """Why Dagger can be used here (or None): a session, or a CLI on PATH."""
    if os.environ.get("DAGGER_SESSION_PORT"):
        return "the Dagger session of `dagger run`"
    cli = shutil.which("dagger")
    return f"the dagger CLI at {cli}" if cli else None


async def build(catalog: Catalog, names: list[str] | None, platform: str,
                options: BuildOptions, on_event=lambda n, w: None) -> list[ImageResult]:
    import dagger

    if available() is None:
        raise NbpipeError("--engine dagger: no Dagger engine here (no `dagger` CLI on PATH and "
                          "no $DAGGER_SESSION_PORT); install Dagger or use --engine podman")
    if shutil.which("dagger") and not os.environ.get("_EXPERIMENTAL_DAGGER_CLI_BIN"):
        os.environ["_EXPERIMENTAL_DAGGER_CLI_BIN"] = shutil.which("dagger") or ""
    results = []
    async with dagger.connection(dagger.Config(log_output=None)):
        for name in catalog.order(names):
            img = catalog.resolve(name)
            if platform not in img.platforms:
                continue
            res = ImageResult(name, platform, img.digest(platform))
            started = time.monotonic()
            on_event(name, "building with dagger")
            try:
                await lowering.lower(img, platform, options).sync()
                res.status = "built"
            except dagger.ExecError as exc:
                res.status, res.message = "failed", f"{name}: {exc.cmd}: exit {exc.exit_code}\n{exc.stderr[-2000:]}"
            except dagger.QueryError as exc:
                res.status, res.message = "failed", f"{name}: {exc}"
            res.seconds = round(time.monotonic() - started, 2)
            results.append(res)
            on_event(name, res.status)
            if res.status == "failed":
                break  # later images need this one (Dagger builds the whole chain anyway)
    return results


def run(catalog: Catalog, names, platform, options, on_event) -> list[ImageResult]:
    return anyio.run(build, catalog, names, platform, options, on_event)
