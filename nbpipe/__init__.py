"""nbpipe: notebook-server images as data.

The SDK other teams import: ``Image`` (an immutable recipe with a content digest),
``Catalog`` (named images and their DAG), ``BaseRef`` (a digest-pinned root), the contract
constants, and ``spec.load`` for YAML. Importing it needs only the standard library;
engines, the CLI and the Dagger module load their dependencies when used.
"""

from . import contract, platforms
from .catalog import Catalog
from .errors import NbpipeError
from .image import BaseRef, Image
from .options import BuildOptions

__all__ = ["BaseRef", "BuildOptions", "Catalog", "Image", "NbpipeError", "contract", "platforms"]
__version__ = "0.1.0"
