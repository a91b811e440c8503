"""Our image family, written with the nbpipe SDK: one module per family."""

from __future__ import annotations

from nbpipe.catalog import Catalog

from . import base, codeserver, jupyter, pytorch, rstudio, tensorflow


def family() -> Catalog:
    """A fresh catalog of all 17 images (build it once per command; it is cheap)."""
    catalog = Catalog()
    for module in (base, jupyter, codeserver, rstudio, pytorch, tensorflow):
        module.register(catalog)
    return catalog
