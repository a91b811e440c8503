"""The TensorFlow images: CPU and CUDA (tensorflow[and-cuda], amd64 only), each with a
"full" edition."""

from __future__ import annotations

from nbpipe.recipe import platforms as plat
from nbpipe.recipe.catalog import Catalog
from nbpipe.recipe.image import Image

from . import pins
from .jupyter import full
from .pytorch import full_cuda, nvidia


def tensorflow(image: Image) -> Image:
    """TensorFlow, CPU."""
    return image.with_pip(pins.TENSORFLOW_CPU).with_probes(imports=("tensorflow",))


def tensorflow_cuda(image: Image) -> Image:
    """TensorFlow with CUDA from PyPI's wheels; amd64 only (no CUDA wheels for arm64)."""
    return (
        image.with_platforms(plat.AMD64)
        .with_(nvidia("cuda>=12.5"))
        .with_pip(pins.TENSORFLOW_CUDA)
        .with_probes(imports=("tensorflow",))
    )


def register(catalog: Catalog) -> None:
    catalog.add("jupyter-tensorflow", "jupyter", tensorflow)
    catalog.add("jupyter-tensorflow-full", "jupyter-tensorflow", full)
    catalog.add("jupyter-tensorflow-cuda", "jupyter", tensorflow_cuda)
    catalog.add("jupyter-tensorflow-cuda-full", "jupyter-tensorflow-cuda", full_cuda)
