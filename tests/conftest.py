"""Shared fixtures. Real-engine fixtures live in tests/engine/conftest.py."""

from __future__ import annotations

import pytest

from nbpipe import family as images
from nbpipe.catalog import Catalog


@pytest.fixture()
def family() -> Catalog:
    return images.family()


@pytest.fixture(scope="session")
def live_dagger():
    """A `dagger` CLI that really reaches a running engine, asked once per session with a
    bounded query (nbpipe.engines.dagger_reach); otherwise every live Dagger test is
    SKIPPED with the reason (no CLI, no engine behind it, no answer in time)."""
    from nbpipe.engines.dagger_reach import reach

    found = reach()
    if not found.ok:
        pytest.skip(f"no live Dagger engine: {found.reason}")
    return found
