"""base -> jupyter -> jupyter-scipy, really built and probed against the contract."""

from __future__ import annotations

import pytest

from nbpipe.probes.result import Status

from .conftest import run_pipeline

pytestmark = pytest.mark.engine

# What each image must PASS (not skip): the notebook-server contract, inherited.
CONTRACT = {
    "process-user",
    "home-env",
    "skeleton-copied",
    "existing-kept",
    "cont-init-order",
    "service-restarts",
}
JUPYTER = CONTRACT | {
    "http-ready",
    "served-under-prefix",
    "api-kernels",
    "cors",
    "frameable",
    "kernel-runs-code",
    "imports",
    "python-version",
}
EXPECT = {
    "base": {"process-user", "home-env", "skeleton-copied", "existing-kept", "cont-init-order"},
    "jupyter": JUPYTER,
    "jupyter-scipy": JUPYTER | {"commands"},
}


@pytest.mark.parametrize("name", list(EXPECT))
def test_image_builds_and_passes_its_probes(chain, name: str) -> None:
    res = chain[name]
    assert res.status in ("built", "cached"), res.message
    by_name = {p.name: p for p in res.probes}
    failed = {n: p.message for n, p in by_name.items() if p.status is Status.FAILED}
    assert not failed, failed
    passed = {n for n, p in by_name.items() if p.status is Status.PASSED}
    assert EXPECT[name] <= passed, f"not passed: {EXPECT[name] - passed}"
    for p in by_name.values():  # a skip always says why
        assert p.status is not Status.SKIPPED or p.message


def test_gpu_smoke_tests_are_skipped_with_a_reason_here(chain) -> None:
    for name in EXPECT:
        smoke = {p.name: p for p in chain[name].probes}["smoke-cuda"]
        assert smoke.status is Status.SKIPPED and "needs no cuda" in smoke.message


def test_scipy_imports_its_whole_stack(chain) -> None:
    imports = {p.name: p for p in chain["jupyter-scipy"].probes}["imports"]
    for module in ("numpy", "scipy", "pandas", "sklearn", "xgboost", "dask", "numba", "tables"):
        assert module in imports.message


def test_second_build_does_no_work(chain, local_family, engine, platform, options, state_dir):
    again = run_pipeline(local_family, engine, platform, options, state_dir, ["jupyter-scipy"])
    assert {n: r.status for n, r in again.items()} == {n: "cached" for n in again}
    for r in again.values():  # probe results come from the record of this very image id
        assert r.probes and all(p.status is not Status.FAILED for p in r.probes)


def test_content_tags_point_at_labelled_images(chain, engine) -> None:
    for res in chain.values():
        info = engine.inspect(res.ref)
        assert info.labels["io.nbpipe.digest"] == res.digest
        assert info.labels["io.nbpipe.image"] == res.name
