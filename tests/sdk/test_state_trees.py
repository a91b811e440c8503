"""States of whole descendant trees, three generations below the cause: what `plan` and
`images` say of grandchildren and deeper under an unbuildable image (out of reach, or a
download without a sha256), under a failed build or probe, and beside published ones,
and that the pipeline then does what the plan said. A state rule that stopped after one
generation would promise builds the run then blocks."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

import anyio
import pytest

from nbpipe.run import machine, state
from nbpipe.engines import sources
from nbpipe.recipe import platforms as plat
from nbpipe.recipe.catalog import Catalog
from nbpipe.engines.oci import ImageInfo
from nbpipe.errors import BuildError
from nbpipe.recipe.image import BaseRef
from nbpipe.recipe.naming import content_tag, local_ref
from nbpipe.run.pipeline import Pipeline
from nbpipe.run.state import State

P = plat.AMD64
ROOT = BaseRef("example.org/root", {P: "sha256:" + "1" * 64})
DOWN = "down.example.org"  # the one host out of reach in these tests
PIN = "0" * 64

# a -> u (needs DOWN)          -> u1 -> u2 -> u3
# a -> p (download, no sha256) -> p1 -> p2 (p2 downloads from deep.example.org)
# a -> b                       -> b1 -> b2
TREE = {"a": None, "u": "a", "u1": "u", "u2": "u1", "u3": "u2",
        "p": "a", "p1": "p", "p2": "p1", "b": "a", "b1": "b", "b2": "b1"}


def tree() -> Catalog:
    cat = Catalog()
    for name, parent in TREE.items():
        def recipe(img, name=name):
            img = img.with_env("IMG", name)
            if name == "u":
                img = img.with_download(f"https://{DOWN}/u.tgz", PIN, "/opt/u.tgz")
            if name == "p":
                img = img.with_download("https://example.org/p.tgz", None, "/opt/p.tgz")
            if name == "p2":
                img = img.with_download("https://deep.example.org/p2.tgz", PIN, "/opt/p2.tgz")
            return img
        cat.add(name, parent or ROOT, recipe)
    return cat


@pytest.fixture()
def asked(monkeypatch) -> list[str]:
    """Every host the state computation asks about; only DOWN is out of reach."""
    hosts: list[str] = []

    def reachable(host: str, assume: frozenset = frozenset(), timeout: float = 5.0) -> bool:
        hosts.append(host)
        return host != DOWN

    monkeypatch.setattr(sources, "reachable", reachable)
    return hosts


def built(cat: Catalog, *names: str) -> dict[str, ImageInfo]:
    """An engine store holding ``names`` under the local tags a build gives them."""
    refs = {n: local_ref(cat.resolve(n), P) for n in names}
    return {r: ImageInfo(r, f"sha256:{n}", 1, {}, "") for n, r in refs.items()}


def states(cat: Catalog, store: dict[str, ImageInfo], names: list[str] | None = None,
           ) -> dict[str, tuple[State, str | None]]:
    return {s.name: (s.state, s.blocked_by) for s in state.assess(cat, P, store, names)}


NOTHING_BUILT = {
    "a": (State.TO_BUILD, None),
    "u": (State.UNBUILDABLE, None), "u1": (State.BLOCKED, "u"),
    "u2": (State.BLOCKED, "u"), "u3": (State.BLOCKED, "u"),
    "p": (State.UNBUILDABLE, None), "p1": (State.BLOCKED, "p"), "p2": (State.BLOCKED, "p"),
    "b": (State.TO_BUILD, None), "b1": (State.TO_BUILD, None), "b2": (State.TO_BUILD, None)}


def test_every_generation_below_an_unbuildable_image_is_blocked_by_it(asked) -> None:
    cat = tree()
    got = state.assess(cat, P, {})
    assert {s.name: (s.state, s.blocked_by) for s in got} == NOTHING_BUILT
    by = {s.name: s for s in got}
    for name in ("u1", "u2", "u3"):  # the cause, not the parent, however deep
        assert by[name].reason == "its ancestor u is unbuildable here"
    assert by["p2"].reason == "its ancestor p is unbuildable here"
    assert by["u"].reason == f"needs {DOWN}, not reachable from here"
    assert by["p"].reason == "no sha256 pinned yet for https://example.org/p.tgz"
    # below an unpinned download nothing can build, so nothing there is asked about
    assert "deep.example.org" not in asked and DOWN in asked


@pytest.mark.parametrize(("target", "want"), [
    ("u3", ["a", "u", "u1", "u2", "u3"]), ("u2", ["a", "u", "u1", "u2"]),
    ("p2", ["a", "p", "p1", "p2"]), ("b2", ["a", "b", "b1", "b2"])])
def test_asked_for_one_deep_image_its_chain_says_the_same(asked, target: str,
                                                          want: list[str]) -> None:
    assert states(tree(), {}, [target]) == {n: NOTHING_BUILT[n] for n in want}


def test_built_ancestors_are_kept_and_what_is_below_a_built_one_builds(asked) -> None:
    cat = tree()
    got = states(cat, built(cat, "a", "u", "p1"))
    assert got["u"] == (State.BUILT, None)  # built before, when its host answered
    assert [got[n] for n in ("u1", "u2", "u3")] == [(State.TO_BUILD, None)] * 3
    assert got["p"] == (State.UNBUILDABLE, None)
    assert got["p1"] == (State.BUILT, None)  # in the store: whatever is above it
    assert got["p2"] == (State.TO_BUILD, None)  # built on p1, which is there


def test_plan_says_it_for_the_whole_tree(asked) -> None:
    m = machine.choose(tree(), P, "registry", None, {})
    p = state.plan(m)
    assert [line.split()[1] for line in p.lines()] == tree().order()  # parents first
    rows = {line.split()[1]: line for line in p.lines()}
    for name in ("u1", "u2", "u3", "p1", "p2"):
        assert " blocked " in rows[name] and "its ancestor " + name[0] + " is unbuildable" in rows[name]
    assert p.summary() == ("linux/amd64 on the registry root: 4 to build; 2 unbuildable here: "
                           "u, p; 5 blocked by those")
    data = p.to_json()["states"]
    assert {n: (data[n]["state"], data[n].get("blocked_by")) for n in TREE} == {
        n: (s.value, by) for n, (s, by) in NOTHING_BUILT.items()}


def test_images_shows_every_generation_blocked(tmp_path: Path) -> None:
    """`nbpipe images`, as a user runs it, on a catalog module of its own (no host is asked:
    the unbuildable image is the one without a sha256)."""
    (tmp_path / "treecat.py").write_text(textwrap.dedent(f"""
        from nbpipe.recipe.catalog import Catalog
        from nbpipe.recipe.image import BaseRef

        def family():
            cat = Catalog()
            cat.add("a", BaseRef("example.org/root", {{"{P}": "sha256:" + "1" * 64}}),
                    lambda img: img.with_env("IMG", "a"))
            cat.add("p", "a", lambda img: img.with_download("https://example.org/p.tgz", None,
                                                            "/opt/p.tgz"))
            for child, parent in (("p1", "p"), ("p2", "p1"), ("p3", "p2"), ("b", "a")):
                cat.add(child, parent, lambda img, n=child: img.with_env("IMG", n))
            return cat
    """))
    env = {**os.environ, "PYTHONPATH": f"{tmp_path}{os.pathsep}{os.environ.get('PYTHONPATH', '')}",
           "COLUMNS": "200"}
    r = subprocess.run([sys.executable, "-m", "nbpipe", "images", "--catalog", "treecat:family",
                        "--root", "registry", "--platform", P], capture_output=True, text=True,
                       env=env, timeout=120)
    assert r.returncode == 0, r.stderr
    rows = [[c.strip() for c in line.strip("│").split("│")] for line in r.stdout.splitlines()
            if line.startswith("│")]
    assert {row[0]: row[-1] for row in rows} == {
        "a": "to build", "p": "unbuildable", "p1": "blocked", "p2": "blocked", "p3": "blocked",
        "b": "to build"}


# -- the run does what the plan said -------------------------------------------------------


class Engine:
    """Builds nothing: records each build; ``fail`` names the images whose build fails."""
    kind = "podman"  # what the pipeline names in its events

    def __init__(self, store: dict[str, ImageInfo], fail: tuple[str, ...] = ()) -> None:
        self.store, self.fail, self.builds = dict(store), fail, []

    def images(self) -> dict[str, ImageInfo]:
        return dict(self.store)

    def build(self, rendered, ref, platform, options, log, *, no_cache=False, cache=None) -> ImageInfo:
        name = ref.split("/")[-1].split(":")[0]
        assert not rendered.from_ref.startswith("localhost/") or rendered.from_ref in self.store
        self.builds.append(name)
        if name in self.fail:
            raise BuildError(f"{ref}: step failed")
        self.store[ref] = ImageInfo(ref, f"sha256:{name}-new", 1, {}, "")
        return self.store[ref]


def run(cat: Catalog, engine: Engine, tmp: Path, **kw) -> dict[str, tuple[str, str]]:
    results = anyio.run(Pipeline.local(cat, engine, P, state_dir=tmp, probe=False, **kw).run, None)
    return {r.name: (str(r.status), r.message) for r in results}


PROMISE = {State.TO_BUILD: "built", State.BUILT: "cached", State.UNBUILDABLE: "unbuildable",
           State.BLOCKED: "blocked"}


def test_the_run_does_what_the_plan_said_for_the_whole_tree(asked, tmp_path: Path) -> None:
    cat = tree()
    engine = Engine(built(cat, "a"))
    planned = states(cat, engine.store)
    got = run(cat, engine, tmp_path)
    assert {n: status for n, (status, _) in got.items()} == {
        n: PROMISE[s] for n, (s, _) in planned.items()}
    assert sorted(engine.builds) == ["b", "b1", "b2"]


def test_the_run_builds_below_a_built_image_whose_ancestor_is_unbuildable(asked,
                                                                         tmp_path: Path) -> None:
    cat = tree()
    engine = Engine(built(cat, "a", "u1"))
    planned = states(cat, engine.store, ["u3"])
    assert planned["u1"] == (State.BUILT, None) and planned["u3"] == (State.TO_BUILD, None)
    got = run(cat, engine, tmp_path)
    assert {n: got[n][0] for n in planned} == {n: PROMISE[s] for n, (s, _) in planned.items()}


def test_a_failed_build_blocks_every_generation_below_it_and_nothing_else(asked,
                                                                          tmp_path: Path) -> None:
    cat = tree()
    engine = Engine({}, fail=("b",))
    got = run(cat, engine, tmp_path)
    assert got["b"][0] == "failed"
    assert {n: got[n] for n in ("b1", "b2")} == {
        "b1": ("blocked", "not built: its parent b failed"),
        "b2": ("blocked", "not built: its parent b1 blocked")}
    assert "b1" not in engine.builds and "b2" not in engine.builds
    assert [got[n][0] for n in ("u1", "u2", "u3", "p1", "p2")] == ["blocked"] * 5
    assert got["a"][0] == "built"
    # the plan after that run still has the failed one and all below it to build
    after = states(cat, engine.store)
    assert [after[n] for n in ("b", "b1", "b2")] == [(State.TO_BUILD, None)] * 3


def test_a_failed_probe_blocks_every_generation_below_it(asked, tmp_path: Path,
                                                         monkeypatch) -> None:
    from nbpipe.probing import prober
    from nbpipe.probes.result import ProbeResult, Status

    def probe(engine, ref, **kw):
        verdict = Status.FAILED if "/b:" in ref else Status.PASSED
        return [ProbeResult("cors", verdict, "msg", 0.1)], "log"

    monkeypatch.setattr(prober, "probe", probe)
    cat = tree()
    engine = Engine(built(cat, "a", "b", "b1", "b2"))  # all cached: only the probe fails
    results = anyio.run(Pipeline.local(cat, engine, P, state_dir=tmp_path).run, ["b2"])
    assert {r.name: str(r.status) for r in results} == {
        "a": "cached", "b": "failed", "b1": "blocked", "b2": "blocked"}
    assert engine.builds == []


# -- published: what a registry already holds ---------------------------------------------


class Registry:
    """What `plan --registry` asks of a registry: which content tags are there."""

    address = "registry.example.org/acme"

    def __init__(self, cat: Catalog, published: tuple[str, ...]) -> None:
        self.refs = {f"{self.repo(n)}:{content_tag(cat.resolve(n))}" for n in published}

    def repo(self, name: str) -> str:
        return f"{self.address}/{name}"

    @contextmanager
    def authfile(self) -> Iterator[None]:
        yield None

    def digest(self, ref: str, auth) -> str | None:
        return "sha256:" + "f" * 64 if ref in self.refs else None


def published_plan(cat: Catalog, *names: str) -> dict[str, tuple[State, str | None]]:
    m = machine.choose(cat, P, "registry", None, {})
    p = state.plan(m, registry=Registry(cat, names))  # type: ignore[arg-type]
    return {s.name: (s.state, s.blocked_by if s.state is State.BLOCKED else s.tag) for s in p.images}


def test_below_a_published_image_the_rest_is_still_to_build(asked) -> None:
    cat = tree()
    got = published_plan(cat, "a", "b")
    tag = lambda n: f"{Registry.address}/{n}:{content_tag(cat.resolve(n))}"  # noqa: E731
    assert got["a"] == (State.PUBLISHED, tag("a")) and got["b"] == (State.PUBLISHED, tag("b"))
    assert [got[n] for n in ("b1", "b2")] == [(State.TO_BUILD, None)] * 2
    assert got == {**NOTHING_BUILT, "a": got["a"], "b": got["b"]}


def test_published_below_an_unbuildable_image_and_blocked_below_that(asked) -> None:
    """u cannot be built here but is in the registry (built where its host answers), u1 too:
    both are published. u2 is not, and a local build never pulls a parent, so it stays
    blocked by u, and u3 with it."""
    cat = tree()
    got = published_plan(cat, "a", "u", "u1", "p", "p1", "p2")
    assert [got[n][0] for n in ("u", "u1")] == [State.PUBLISHED] * 2
    assert [got[n] for n in ("u2", "u3")] == [(State.BLOCKED, "u")] * 2
    assert [got[n][0] for n in ("p", "p1", "p2")] == [State.PUBLISHED] * 3
