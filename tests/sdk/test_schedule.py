"""The one scheduler: parents first, at most `jobs` at once, a failure blocks only its
descendants (never a cousin), an exception is a failure, not a crash."""

from __future__ import annotations

import anyio

from nbpipe.run import schedule
from nbpipe.recipe.catalog import Catalog
from nbpipe.family.pins import DEBIAN_ROOT


def tree() -> Catalog:
    cat = Catalog()
    for name, parent in [("a", DEBIAN_ROOT), ("b", "a"), ("c", "a"), ("d", "b"), ("e", "d"),
                         ("f", "c")]:
        cat.add(name, parent, lambda i: i)
    return cat


def test_failure_blocks_descendants_only_and_parents_go_first() -> None:
    cat, started, running, peak = tree(), [], [0], [0]
    blocked: dict[str, str] = {}
    errors: dict[str, str] = {}

    async def work(name: str) -> bool:
        started.append(name)
        running[0] += 1
        peak[0] = max(peak[0], running[0])
        await anyio.sleep(0.01)
        running[0] -= 1
        if name == "c":
            raise RuntimeError("boom")
        return name != "b"

    ok = anyio.run(lambda: schedule.run(cat, cat.order(), work, jobs=2,
                                        on_blocked=lambda n, by: blocked.setdefault(n, by),
                                        on_error=lambda n, e: errors.setdefault(n, str(e))))
    assert ok == {"a": True, "b": False, "c": False, "d": False, "e": False, "f": False}
    assert blocked == {"d": "b", "e": "d", "f": "c"} and errors == {"c": "boom"}
    assert started == ["a", "b", "c"] and peak[0] == 2


def test_a_subset_waits_for_its_nearest_scheduled_ancestor() -> None:
    cat, seen = tree(), []

    async def work(name: str) -> bool:
        seen.append(name)
        return name != "a"

    ok = anyio.run(lambda: schedule.run(cat, ["a", "e", "f"], work))
    assert seen == ["a"] and ok == {"a": False, "e": False, "f": False}
