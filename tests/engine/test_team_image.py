"""A team's image from a YAML spec, on our jupyter: built, then held to the whole
contract plus its own probes, like any image of the family."""

from __future__ import annotations

from pathlib import Path

import pytest

from nbpipe.inputs import spec
from nbpipe.probes.result import Status

from .conftest import run_pipeline
from .test_chain import JUPYTER

pytestmark = pytest.mark.engine

SPEC = Path(__file__).parents[2] / "examples" / "team-astro" / "team-astro.yaml"


def test_team_spec_builds_and_passes_contract_and_own_probes(
    local_family, engine, platform, options, state_dir, chain
) -> None:
    cat = spec.load(SPEC).register(local_family)
    results = run_pipeline(
        cat, engine, platform, options, state_dir, ["team-astro"], force_probe=True
    )
    assert results["jupyter"].status == "cached"  # the family's jupyter, reused as is
    res = results["team-astro"]
    assert res.status in ("built", "cached"), res.message
    probes = {p.name: p for p in res.probes}
    failed = {n: p.message for n, p in probes.items() if p.status is Status.FAILED}
    assert not failed, failed
    assert JUPYTER <= {n for n, p in probes.items() if p.status is Status.PASSED}
    assert "astropy.units" in probes["imports"].message
    assert "test -d" in probes["commands"].message  # the init script made the data folder
    info = engine.inspect(res.ref)
    assert info.labels["org.example.team"] == "astro"
    assert info.labels["io.nbpipe.image"] == "team-astro"
