"""Find the catalog to work on: ours (nbpipe.family) or a team's own ("module:function")."""

from __future__ import annotations

import importlib
import os

from .catalog import Catalog
from .errors import NbpipeError

DEFAULT = "nbpipe.family:family"


def load(spec: str | None = None) -> Catalog:
    spec = spec or os.environ.get("NBPIPE_CATALOG") or DEFAULT
    module_name, _, attr = spec.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise NbpipeError(f"catalog {spec!r}: cannot import {module_name!r} ({exc})") from None
    fn = getattr(module, attr or "family", None)
    if fn is None:
        raise NbpipeError(f"catalog {spec!r}: {module_name} has no {attr or 'family'}()")
    catalog = fn() if callable(fn) else fn
    if not isinstance(catalog, Catalog):
        raise NbpipeError(f"catalog {spec!r} did not give a Catalog")
    catalog.validate()
    return catalog
