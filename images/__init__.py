"""Our image family, written with the nbpipe SDK: one module per family."""

from __future__ import annotations

if __name__ != "nbpipe.family":  # one module object per file: never a second copy as `images`
    raise ImportError(
        "images/ is installed as nbpipe.family: import nbpipe.family "
        "(`pip install -e .` in the checkout installs it)"
    )

from pathlib import Path

from nbpipe.locks import lock
from nbpipe.recipe.catalog import Catalog

from . import base, codeserver, jupyter, pytorch, rstudio, tensorflow

# Every pip step's resolution, pinned with hashes (`nbpipe lock` refreshes it).
LOCK_FILE = Path(__file__).parent / "lock.json"


def family() -> Catalog:
    """A fresh catalog of all 17 images (build it once per command; it is cheap)."""
    catalog = Catalog()
    for module in (base, jupyter, codeserver, rstudio, pytorch, tensorflow):
        module.register(catalog)
    return lock.apply(catalog, LOCK_FILE)
