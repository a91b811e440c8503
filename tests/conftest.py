"""Shared fixtures. Real-engine fixtures live in tests/engine/conftest.py."""

from __future__ import annotations

import pytest

from nbpipe import family as images
from nbpipe.catalog import Catalog


@pytest.fixture()
def family() -> Catalog:
    return images.family()
