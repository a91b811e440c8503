"""The build-and-probe pipeline on a fake engine: parents first, cached images not
rebuilt, a failure blocks only what is built on it, probe records reused by image id."""

from __future__ import annotations

import time

import anyio

from nbpipe.probes.result import ProbeResult, Status
from nbpipe.probing import prober
from nbpipe.recipe import platforms as plat
from nbpipe.recipe.naming import local_ref
from nbpipe.run.pipeline import Pipeline
from tests.fakes.engine import Engine, family


def run(pipe: Pipeline, names=None) -> dict:
    return {r.name: r for r in anyio.run(pipe.run, names)}


def test_parents_first_cached_kept_failures_contained(tmp_path) -> None:
    cat = family()
    engine = Engine(cat, built=("a",))
    got = run(Pipeline.local(cat, engine, plat.AMD64, state_dir=tmp_path, probe=False))
    assert {n: str(r.status) for n, r in got.items()} == {
        "a": "cached", "b": "built", "bad": "failed", "c": "blocked", "pin": "unbuildable"}
    assert engine.builds == ["b", "bad"] or engine.builds == ["bad", "b"]
    assert got["c"].message == "not built: its parent bad failed"
    assert got["bad"].message == f"{local_ref(cat.resolve('bad'), plat.AMD64)}: step failed: env BAD=1"
    assert "no sha256 pinned yet for https://example.org/x" in got["pin"].message
    assert got["b"].size == 7 and got["a"].ref == local_ref(cat.resolve("a"), plat.AMD64)
    assert {n: r.ok for n, r in got.items()} == {"a": True, "b": True, "bad": False,
                                                 "c": False, "pin": False}
    again = run(Pipeline.local(cat, engine, plat.AMD64, state_dir=tmp_path, probe=False), ["b"])
    assert list(again) == ["a", "b"] and {str(r.status) for r in again.values()} == {"cached"}
    fresh = run(Pipeline.local(cat, engine, plat.AMD64, state_dir=tmp_path, probe=False,
                         no_cache=True), ["b"])
    assert {n: str(r.status) for n, r in fresh.items()} == {"a": "built", "b": "built"}


def test_probe_records_are_kept_per_image_id_and_failures_fail_the_image(tmp_path,
                                                                         monkeypatch) -> None:
    cat = family()
    engine = Engine(cat, built=("a", "b"))
    calls = []
    verdict = {"status": Status.PASSED}

    def fake_probe(engine, ref, **kw):
        calls.append(ref)
        return [ProbeResult("cors", verdict["status"], "msg", 0.1)], "the log"

    monkeypatch.setattr(prober, "probe", fake_probe)
    got = run(Pipeline.local(cat, engine, plat.AMD64, state_dir=tmp_path), ["b"])
    assert [r.ok for r in got.values()] == [True, True] and len(calls) == 2
    assert sorted(p.name for p in (tmp_path / "probes").iterdir()) == ["a.json", "b.json"]
    got = run(Pipeline.local(cat, engine, plat.AMD64, state_dir=tmp_path), ["b"])
    assert len(calls) == 2 and got["b"].probes == [ProbeResult("cors", Status.PASSED, "msg", 0.1)]
    verdict["status"] = Status.FAILED
    got = run(Pipeline.local(cat, engine, plat.AMD64, state_dir=tmp_path, force_probe=True), ["b"])
    assert len(calls) == 3  # a probed again and failed: b, built on it, is not probed
    assert str(got["a"].status) == "failed" and got["a"].message == "probe(s) failed: cors: msg"
    assert got["a"].log == "the log"
    assert str(got["b"].status) == "blocked"


def test_a_child_builds_while_its_parent_is_probed_and_is_blocked_when_it_fails(
    tmp_path, monkeypatch
) -> None:
    cat = family()
    engine = Engine(cat)
    a_ref = local_ref(cat.resolve("a"), plat.AMD64)
    calls, events = [], []

    def fake_probe(engine_, ref, **kw):  # a's probes end only once b is building on a
        calls.append(ref)
        for _ in range(500):
            if "b" in engine.builds:
                break
            time.sleep(0.01)
        return [ProbeResult("cors", Status.FAILED, "msg", 0.1)], "the log"

    monkeypatch.setattr(prober, "probe", fake_probe)
    pipe = Pipeline.local(
        cat,
        engine,
        plat.AMD64,
        state_dir=tmp_path,
        jobs=1,
        on_event=lambda name, what: events.append((name, what)),
    )
    got = run(pipe, ["b"])
    assert engine.builds == ["a", "b"] and calls == [a_ref]  # b built, never probed
    assert events.index(("b", "building with podman")) < events.index(("a", "1 probe(s) failed"))
    assert str(got["a"].status) == "failed" and not got["b"].ok
    assert str(got["b"].status) == "blocked" and got["b"].blocked_by == "a"
    assert got["b"].message == "not passed: its parent a failed its probes"
    # b keeps its tag, with no probe record: the next run probes it (and a) again
    assert local_ref(cat.resolve("b"), plat.AMD64) in engine.store
    assert not list((tmp_path / "probes").glob("*.json"))
