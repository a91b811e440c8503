"""Our image family, written with the nbpipe SDK: one module per family."""

from __future__ import annotations

from pathlib import Path

from nbpipe import lock
from nbpipe.catalog import Catalog

from . import base, codeserver, jupyter, pytorch, rstudio, tensorflow

# Every pip step's resolution, pinned with hashes (`nbpipe lock` refreshes it).
LOCK_FILE = Path(__file__).parent / "lock.json"


def family() -> Catalog:
    """A fresh catalog of all 17 images (build it once per command; it is cheap)."""
    catalog = Catalog()
    for module in (base, jupyter, codeserver, rstudio, pytorch, tensorflow):
        module.register(catalog)
    return lock.apply(catalog, LOCK_FILE)
