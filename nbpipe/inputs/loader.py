"""Find the catalog to work on: ours (nbpipe.family) or a team's own ("module:function",
imported from the installed packages or else the current directory)."""

from __future__ import annotations

import importlib
import os
import sys

from nbpipe.errors import NbpipeError
from nbpipe.recipe.catalog import Catalog

DEFAULT = "nbpipe.family:family"


def load(spec: str | None = None) -> Catalog:
    spec = spec or DEFAULT
    module_name, _, attr = spec.partition(":")
    if os.getcwd() not in sys.path:  # a team's module in its repository, as `python -m` finds it
        sys.path.append(os.getcwd())
    try:
        module = importlib.import_module(module_name)
    except Exception as exc:  # ImportError, or the module itself failing as it loads
        raise NbpipeError(
            f"catalog {spec!r}: cannot import {module_name!r} ({type(exc).__name__}: {exc})"
        ) from None
    fn = getattr(module, attr or "family", None)
    if fn is None:
        raise NbpipeError(f"catalog {spec!r}: {module_name} has no {attr or 'family'}()")
    try:
        catalog = fn() if callable(fn) else fn
    except NbpipeError:
        raise
    except Exception as exc:  # someone else's code: one line saying where it failed
        raise NbpipeError(
            f"catalog {spec!r}: {module_name}.{attr or 'family'}() failed: "
            f"{type(exc).__name__}: {exc}"
        ) from None
    if not isinstance(catalog, Catalog):
        raise NbpipeError(f"catalog {spec!r} did not give a Catalog")
    catalog.validate()
    return catalog
