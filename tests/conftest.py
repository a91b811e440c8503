"""Shared fixtures, and the Hypothesis profile the whole suite runs under.

Real-engine fixtures live in tests/engine/conftest.py.

Why profiles: property tests explore at random where someone works (a new draw each run
finds new bugs), but CI must give the same verdict on the same code. So with ``CI`` set
(GitHub Actions sets ``CI=true``; ``.ci/run`` sets it too) every property test is
derandomized (its seed comes from the test itself) and reads and writes no example
database: a failure saved in a checkout's ``.hypothesis/`` can never fail a later CI run
of code that is right. ``pytest --hypothesis-profile=NAME`` picks one by hand;
``--hypothesis-seed=N`` replays a local draw. The profile is loaded here, before any test
module is imported, because ``@settings(...)`` takes its defaults when it decorates.
"""

from __future__ import annotations

import os
from collections.abc import Mapping

import pytest
from hypothesis import settings

from nbpipe import family as images
from nbpipe.recipe.catalog import Catalog

_FALSE = {"", "0", "false", "no", "off"}

# Both start from Hypothesis' own defaults, never from the profile loaded at import:
# recent Hypothesis (6.170 here) loads a built-in "ci" profile by itself wherever CI is in
# the environment, even CI=false, and a profile built on it would inherit its choices unseen.
# No deadline in either: a per-example time limit fails on a busy machine, not on a bug.
# (database=None is what Hypothesis makes of derandomize=True anyway; written for the reader.)
_DEFAULTS = settings.get_profile("default")
settings.register_profile(
    "ci", _DEFAULTS, derandomize=True, database=None, deadline=None, print_blob=True
)
# Locally: a fresh random draw each run, failures replayed from the checkout's .hypothesis/
# until they pass (Hypothesis' default database).
settings.register_profile("dev", _DEFAULTS, derandomize=False, deadline=None, print_blob=True)


def hypothesis_profile(environ: Mapping[str, str]) -> str:
    """The profile for an environment: ``ci`` wherever ``CI`` is set to a true value."""
    return "ci" if environ.get("CI", "").strip().lower() not in _FALSE else "dev"


settings.load_profile(hypothesis_profile(os.environ))


@pytest.fixture()
def family() -> Catalog:
    return images.family()


@pytest.fixture(scope="session")
def live_dagger():
    """A `dagger` CLI that really reaches a running engine, asked once per session with a
    bounded query (nbpipe.engines.dagger_session); otherwise every live Dagger test is
    SKIPPED with the reason (no CLI, no engine behind it, no answer in time)."""
    from nbpipe.engines.dagger_session import reach

    found = reach()
    if not found.ok:
        pytest.skip(f"no live Dagger engine: {found.reason}")
    return found
