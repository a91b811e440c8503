"""nbpipe: notebook-server images as data.

The SDK other teams import. ``__all__`` below is the stable API, the one place it is
listed (the README's "Team API" says what each name is and how changes are announced;
CHANGELOG.md records them). Everything else (engines, pipeline, cli, ...) may change in
any release. Importing ``nbpipe`` needs only the standard library: ``family``, ``spec``
and ``probes`` load on first use, engines, the CLI and the Dagger module when used.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

from nbpipe.errors import NbpipeError
from nbpipe.recipe import contract, platforms
from nbpipe.recipe.catalog import Catalog
from nbpipe.recipe.image import BaseRef, Image
from nbpipe.recipe.options import BuildOptions

if TYPE_CHECKING:
    from nbpipe import family, probes
    from nbpipe.inputs import spec

__version__ = "0.1.0"

__all__ = [
    "BaseRef",  # a digest-pinned root image (a parent that is not ours)
    "BuildOptions",  # how to build (CA bundle, wheelhouse, epoch, labels), never what
    "Catalog",  # named images and their DAG: add yours to ours
    "Image",  # an immutable recipe with a content digest; with_* adds a step
    "NbpipeError",  # every error nbpipe raises on bad input: one line, no traceback
    "contract",  # the notebook-server contract as constants (uid, port, paths, labels)
    "family",  # our images: nbpipe.family.family() -> Catalog
    "platforms",  # linux/amd64, linux/arm64 and the host's
    "probes",  # probe results (ProbeResult, Status), standard library only
    "spec",  # YAML specs: spec.load(path) -> Spec, Spec.register(catalog)
]

# public name -> the module it is, loaded on first use
_LAZY = {"family": "nbpipe.family", "probes": "nbpipe.probes", "spec": "nbpipe.inputs.spec"}


def __getattr__(name: str):
    """``nbpipe.family`` and friends on first use, so ``import nbpipe`` stays light."""
    if name in _LAZY:
        return importlib.import_module(_LAZY[name])
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
