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
    then: Work | None = None,
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
    An exception from ``work`` counts as a failure (``on_error``), never stops the rest.

    ``then`` is a second phase (the probes after the build): children start once their
    parent's ``work`` went well, while the parent's ``then`` runs, so it is off their
    critical path. A name's ``then`` waits for its parent's final outcome and is not run
    when that failed (``on_blocked`` again, after ``work``): nothing goes well on a parent
    that did not. ``jobs`` bounds each phase on its own (at most ``jobs`` works and
    ``jobs`` thens at once) and no phase waits holding a slot, so even ``jobs=1`` moves."""
    names = list(order)
    up = {n: anyio.Event() for n in names}  # its work is over (made says how it went)
    done = {n: anyio.Event() for n in names}  # its outcome is final (ok says which)
    made: dict[str, bool] = {}
    ok: dict[str, bool] = {}
    works = anyio.CapacityLimiter(jobs or len(names) or 1)
    thens = anyio.CapacityLimiter(jobs or len(names) or 1)

    def blocked(name: str, parent: str) -> None:
        ok[name] = False
        on_blocked(name, parent)

    async def one(name: str) -> None:
        try:
            ancestors = catalog.ancestors(name)
            if name in built:
                ancestors = [a for a in ancestors if a not in never]
            parent = next((a for a in ancestors if a in done), None)
            if parent is not None:
                await up[parent].wait()
                if not made[parent] or (done[parent].is_set() and not ok[parent]):
                    return blocked(name, parent)
            async with works:
                made[name] = await work(name)
            up[name].set()
            if not made[name] or then is None:
                ok[name] = made[name]
                return
            if parent is not None:
                await done[parent].wait()
                if not ok[parent]:
                    return blocked(name, parent)
            async with thens:
                ok[name] = await then(name)
        except Exception as exc:  # never leave children waiting forever
            ok[name] = False
            on_error(name, exc)
        finally:
            made.setdefault(name, False)
            up[name].set()
            done[name].set()

    async with anyio.create_task_group() as tg:
        for n in names:
            tg.start_soon(one, n)
    return {n: ok[n] for n in names}
