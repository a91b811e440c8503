"""The one scheduler: parents first, at most ``jobs`` at once, a failure blocks only its
descendants. The local pipeline, publish and the Dagger ``ci`` all run through it."""

from __future__ import annotations

from typing import Awaitable, Callable, Collection, Sequence

import anyio

from nbpipe.recipe.catalog import Catalog

Work = Callable[[str], Awaitable[bool]]  # does one image; True when it went well


async def run(
    catalog: Catalog,
    order: Sequence[str],
    work: Work,
    *,
    jobs: int | None = None,
    on_blocked: Callable[[str, str], None] = lambda name, by: None,
    on_error: Callable[[str, Exception], None] = lambda name, exc: None,
    built: Collection[str] = (),
    never: Collection[str] = (),
) -> dict[str, bool]:
    """Run ``work`` for every name in ``order`` once its nearest scheduled ancestor went
    well; a name whose ancestor did not is never started (``on_blocked(name, ancestor)``).
    A name in ``built`` (already there) looks past ancestors in ``never`` (they cannot be
    built here, and it does not need them): an unbuildable grandparent does not block what
    is already built, nor what is built on it; a failure at run time still blocks.
    An exception from ``work`` counts as a failure (``on_error``), never stops the rest."""
    names = list(order)
    done = {n: anyio.Event() for n in names}
    ok: dict[str, bool] = {}
    limiter = anyio.CapacityLimiter(jobs or len(names) or 1)

    async def one(name: str) -> None:
        try:
            ancestors = catalog.ancestors(name)
            if name in built:
                ancestors = [a for a in ancestors if a not in never]
            parent = next((a for a in ancestors if a in done), None)
            if parent is not None:
                await done[parent].wait()
                if not ok[parent]:
                    ok[name] = False
                    on_blocked(name, parent)
                    return
            async with limiter:
                ok[name] = await work(name)
        except Exception as exc:  # never leave children waiting forever
            ok[name] = False
            on_error(name, exc)
        finally:
            done[name].set()

    async with anyio.create_task_group() as tg:
        for n in names:
            tg.start_soon(one, n)
    return {n: ok[n] for n in names}
