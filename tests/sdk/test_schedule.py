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


# Two phases (`then`: the probes after the build): a child builds on its parent as soon as
# the parent's `work` went well, while the parent's `then` runs; its own `then` waits for
# the parent's final outcome, and a parent that failed it blocks the child.


def chain() -> Catalog:
    cat = Catalog()
    for name, parent in [("a", DEBIAN_ROOT), ("b", "a"), ("c", "b")]:
        cat.add(name, parent, lambda i: i)
    return cat


def run_phased(cat: Catalog, work, then, **kw) -> tuple[dict[str, bool], dict[str, str]]:
    blocked: dict[str, str] = {}
    errors: dict[str, str] = {}

    async def go() -> dict[str, bool]:
        with anyio.fail_after(5):  # a deadlock fails the test, never hangs it
            return await schedule.run(
                cat,
                cat.order(),
                work,
                then=then,
                on_blocked=lambda n, by: blocked.setdefault(n, by),
                on_error=lambda n, e: errors.setdefault(n, repr(e)),
                **kw,
            )

    ok = anyio.run(go)
    assert not errors, errors
    return ok, blocked


def test_a_child_builds_while_its_parent_is_probed() -> None:
    order: list[str] = []
    child_building = anyio.Event()

    async def work(name: str) -> bool:
        order.append(f"build {name}")
        if name == "b":
            child_building.set()
        return True

    async def then(name: str) -> bool:
        if name == "a":  # a's probes end only once b is building on a
            with anyio.fail_after(1):
                await child_building.wait()
        order.append(f"probe {name}")
        return True

    ok, blocked = run_phased(chain(), work, then, jobs=2)
    assert ok == {"a": True, "b": True, "c": True} and not blocked
    assert order.index("build b") < order.index("probe a")
    assert order.index("probe a") < order.index("probe b") < order.index("probe c")


def test_a_parent_failing_its_probes_blocks_the_child_unprobed() -> None:
    cat, works, thens = tree(), [], []
    child_built = anyio.Event()

    async def work(name: str) -> bool:
        works.append(name)
        if name == "b":
            child_built.set()
        return True

    async def then(name: str) -> bool:
        thens.append(name)
        if name == "a":
            with anyio.fail_after(1):
                await child_built.wait()
            return False
        return True

    ok, blocked = run_phased(cat, work, then, jobs=2)
    assert not any(ok.values())  # nothing is ok on a parent that failed its probes
    assert thens == ["a"] and {"a", "b", "c"} <= set(works)
    assert blocked == {"b": "a", "c": "a", "d": "b", "e": "d", "f": "c"}


def test_a_parent_failing_its_build_never_starts_the_child() -> None:
    works, thens = [], []

    async def work(name: str) -> bool:
        works.append(name)
        return False

    async def then(name: str) -> bool:
        thens.append(name)
        return True

    ok, blocked = run_phased(chain(), work, then, jobs=2)
    assert ok == {"a": False, "b": False, "c": False}
    assert works == ["a"] and thens == [] and blocked == {"b": "a", "c": "b"}


def test_one_job_builds_one_at_a_time_and_still_overlaps_the_probes() -> None:
    building, peak, probing = [0], [0], [0]
    overlapped: list[str] = []

    async def work(name: str) -> bool:
        building[0] += 1
        peak[0] = max(peak[0], building[0])
        if probing[0]:
            overlapped.append(name)
        await anyio.sleep(0.01)
        building[0] -= 1
        return True

    async def then(name: str) -> bool:
        probing[0] += 1
        await anyio.sleep(0.05)
        probing[0] -= 1
        return True

    ok, blocked = run_phased(tree(), work, then, jobs=1)
    assert all(ok.values()) and not blocked
    assert peak[0] == 1 and overlapped  # one build at a time, some while a probe ran
