"""Break an image on purpose: the right probe fails with a message that says what is
wrong; a failed step names itself, leaves no tag, blocks descendants only."""

from __future__ import annotations

import pytest

from nbpipe.family.base import FILES
from nbpipe.probes.result import Status
from nbpipe.recipe import naming
from nbpipe.recipe.catalog import Catalog

from .conftest import run_pipeline

pytestmark = pytest.mark.engine

CONFIG = "/opt/venv/etc/jupyter/jupyter_server_config.py"
GOOD_CONFIG = (FILES / "jupyter_server_config.py").read_text()


def variant(catalog: Catalog, name: str, recipe) -> Catalog:
    catalog.add(name, "jupyter", recipe)
    return catalog


BROKEN = {
    # name: (recipe on top of jupyter, probe that must fail, words its message must hold)
    "broken-root": (lambda i: i.with_user("0"), "process-user", "runs as root"),
    "broken-cors": (
        lambda i: i.with_file(CONFIG, GOOD_CONFIG.replace('c.ServerApp.allow_origin = "*"', "")),
        "cors",
        "Access-Control-Allow-Origin",
    ),
    "broken-frame": (
        lambda i: i.with_file(
            CONFIG, GOOD_CONFIG.replace("frame-ancestors 'self' *", "frame-ancestors 'self'")
        ),
        "frameable",
        "frame-ancestors",
    ),
    "broken-prefix": (
        lambda i: i.with_file(
            CONFIG, GOOD_CONFIG.replace('os.environ.get("NB_PREFIX") or "/"', '"/"')
        ),
        "served-under-prefix",
        "NB_PREFIX",
    ),
    "broken-home": (
        lambda i: i.with_init_script("00-clobber", "#!/bin/sh\necho clobbered > $HOME/.bashrc\n"),
        "existing-kept",
        "overwritten",
    ),
}


@pytest.fixture(scope="module")
def broken(local_family, engine, platform, options, state_dir, chain):
    cat = local_family
    for name, (recipe, _, _) in BROKEN.items():
        cat.add(name, "jupyter", recipe)
    cat.add(
        "broken-build",
        "jupyter",
        lambda i: i.with_env("A", "1").with_run("echo about to fail; exit 3"),
    )
    cat.add("broken-build-child", "broken-build", lambda i: i.with_env("B", "1"))
    cat.add("fine-sibling", "jupyter", lambda i: i.with_env("FINE", "1"))
    names = [*BROKEN, "broken-build-child", "fine-sibling"]
    try:
        yield (
            cat,
            run_pipeline(
                cat, engine, platform, options, state_dir, names, force_probe=True, ready_timeout=30
            ),
        )
    finally:
        for n in [*names, "broken-build"]:
            engine.remove(naming.local_ref(cat.resolve(n), platform))


@pytest.mark.parametrize("name", list(BROKEN))
def test_probe_catches_the_breakage(broken, name: str) -> None:
    _, results = broken
    _, probe, words = BROKEN[name]
    res = results[name]
    assert res.status == "failed"
    got = {p.name: p for p in res.probes}[probe]
    assert got.status is Status.FAILED, got
    assert words in got.message
    others = [p.name for p in res.probes if p.status is Status.FAILED and p.name != probe]
    if name in ("broken-cors", "broken-frame", "broken-home"):  # a clean break: one probe
        assert not others, others


def test_failed_step_is_named_and_leaves_no_tag(broken, engine, platform) -> None:
    cat, results = broken
    res = results["broken-build"]
    assert res.status == "failed"
    assert "step failed: run echo about to fail; exit 3" in res.message
    assert "about to fail" in res.message  # the last lines of the log come along
    assert not engine.exists(naming.local_ref(cat.resolve("broken-build"), platform))


def test_descendants_blocked_unrelated_branches_finish(broken) -> None:
    _, results = broken
    assert results["broken-build-child"].status == "blocked"
    assert "broken-build" in results["broken-build-child"].message
    assert results["fine-sibling"].status == "built" and results["fine-sibling"].ok


def test_unreachable_or_unpinned_sources_are_unbuildable_not_failures(
    local_family, engine, platform, options, state_dir, chain
) -> None:
    results = run_pipeline(local_family, engine, platform, options, state_dir, ["rstudio"])
    res = results["rstudio"]
    assert res.status == "unbuildable"
    assert "download2.rstudio.org" in res.message and "no sha256 pinned" in res.message
    assert results["base"].status == "cached"
