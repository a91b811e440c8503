"""What `plan` promises is what `build` does: the same digests, tags and FROM lines, on
the local root and on the registry root (the lowering alone: a recording engine)."""

from __future__ import annotations

from pathlib import Path

import anyio
import pytest

from nbpipe.run import machine, state
from nbpipe.engines import rootfs, sources
from nbpipe.recipe import platforms as plat
from nbpipe.recipe.catalog import Catalog
from nbpipe.engines.oci import ImageInfo
from nbpipe.recipe.image import short
from nbpipe.run.pipeline import Pipeline

P = plat.AMD64
LOCAL_ROOT = {rootfs.local_ref(P): ImageInfo(rootfs.local_ref(P), "sha256:" + "ab" * 32, 1, {}, "")}


class Recorder:
    """An engine that builds nothing: it records what it was asked to build, as what."""
    kind = "podman"  # what the pipeline names in its events

    def __init__(self, store: dict[str, ImageInfo]):
        self.store, self.built = dict(store), []

    def images(self) -> dict[str, ImageInfo]:
        return dict(self.store)

    def build(self, rendered, ref, platform, options, log, *, no_cache=False, cache=None) -> ImageInfo:
        self.built.append((rendered, ref))
        self.store[ref] = ImageInfo(ref, "sha256:" + str(len(self.built)).zfill(64), 1, {}, "")
        return self.store[ref]


@pytest.fixture(autouse=True)
def everything_reachable(monkeypatch) -> None:
    monkeypatch.setattr(sources, "reachable", lambda host, assume=frozenset(): True)


@pytest.mark.parametrize("store, root", [(LOCAL_ROOT, "local"), ({}, "registry")])
def test_plan_digests_are_the_ones_build_tags(family: Catalog, tmp_path: Path, store,
                                              root: str) -> None:
    m = machine.choose(family, P, "auto", None, store)
    assert m.root_name == root
    planned = {s.name: s for s in state.plan(m, ["jupyter-scipy"]).images}
    assert {s.state for s in planned.values()} == {state.State.TO_BUILD}
    engine = Recorder(m.store)
    pipe = Pipeline.local(m.catalog, engine, P, probe=False, state_dir=tmp_path, store=m.store)
    results = anyio.run(pipe.run, ["jupyter-scipy"])
    assert [r.name for r in results] == list(planned) == ["base", "jupyter", "jupyter-scipy"]
    for r, (rendered, ref) in zip(results, engine.built):
        want = planned[r.name]
        assert r.status == "built" and r.digest == want.digest and r.ref == want.ref == ref
        assert ref == f"localhost/nbpipe/{r.name}:{short(want.digest, 16)}"
        assert f"# digest: {want.digest}\n" in rendered.text
        parent = m.catalog.parent_name(r.name)
        root_ref = (m.local_root.pinned(P) if root == "local"
                    else family.resolve("base").root.pinned(P))
        assert rendered.from_ref == (planned[parent].ref if parent else root_ref)
    # and afterwards the plan says they are built, under the same digests
    again = machine.choose(family, P, "auto", None, engine.images())
    assert {s.name: (s.state, s.digest) for s in state.plan(again, ["jupyter-scipy"]).images} == {
        n: (state.State.BUILT, s.digest) for n, s in planned.items()}


def test_the_two_roots_give_different_digests(family: Catalog) -> None:
    local = state.plan(machine.choose(family, P, "auto", None, LOCAL_ROOT), ["base"]).images[0]
    registry = state.plan(machine.choose(family, P, "registry", None, LOCAL_ROOT), ["base"]).images[0]
    assert local.digest != registry.digest


def test_unbuildable_and_blocked_are_said_before_building(family: Catalog, monkeypatch) -> None:
    monkeypatch.setattr(sources, "reachable", lambda host, assume=frozenset(): host != "download2.rstudio.org")
    p = state.plan(machine.choose(family, P, "registry", None, {}), ["rstudio-tidyverse"])
    by = {s.name: s for s in p.images}
    assert by["rstudio"].state is state.State.UNBUILDABLE
    assert "needs download2.rstudio.org, not reachable from here" in by["rstudio"].reason
    assert by["rstudio-tidyverse"].state is state.State.BLOCKED
    assert by["rstudio-tidyverse"].blocked_by == "rstudio"
    assert p.summary() == ("linux/amd64 on the registry root: 1 to build; 1 unbuildable here: "
                           "rstudio; 1 blocked by those")


def test_local_root_asked_for_but_missing_is_one_clear_error(family: Catalog) -> None:
    with pytest.raises(Exception, match="no local root for linux/amd64: run `nbpipe base bootstrap"):
        machine.choose(family, P, "local", None, {})
