"""The PyTorch images: CPU (CPU wheel index), CUDA (CUDA comes inside PyPI's wheels, no
nvidia/cuda base) and Gaudi (Habana's wheels), each with a "full" edition."""

from __future__ import annotations

from nbpipe.recipe import platforms as plat
from nbpipe.recipe.catalog import Catalog
from nbpipe.recipe.image import Image

from . import pins
from .jupyter import full


def pytorch(image: Image) -> Image:
    """PyTorch, CPU build, from PyTorch's CPU wheel index."""
    return image.with_pip(
        *pins.TORCH, index_url=pins.TORCH_CPU_INDEX, extra_index_urls=(pins.PYPI_SIMPLE,)
    ).with_probes(imports=("torch", "torchvision", "torchaudio"))


def nvidia(require_cuda: str):
    """What the NVIDIA container runtime reads, and the `cuda` runner tag (a fragment)."""

    def fragment(image: Image) -> Image:
        return (
            image.with_env("NVIDIA_VISIBLE_DEVICES", "all")
            .with_env("NVIDIA_DRIVER_CAPABILITIES", "compute,utility")
            .with_env("NVIDIA_REQUIRE_CUDA", require_cuda)
            .with_runner_tags("cuda")
        )

    return fragment


def pytorch_cuda(image: Image) -> Image:
    """PyTorch with CUDA from PyPI's wheels; the smoke test needs a `cuda` runner."""
    return (
        image.with_(nvidia("cuda>=12.6"))
        .with_pip(*pins.TORCH)
        .with_probes(imports=("torch", "torchvision", "torchaudio"))
    )


def pytorch_gaudi(image: Image) -> Image:
    """PyTorch for Intel Gaudi (HPU) from Habana's vault; amd64 only, `gaudi` runners."""
    return (
        image.with_platforms(plat.AMD64)
        .with_env("HABANA_VISIBLE_DEVICES", "all")
        .with_env("PT_HPU_LAZY_MODE", "0")
        .with_download(
            pins.HABANA_MODULES_URL, pins.HABANA_MODULES_SHA256, "/tmp/habana", extract=True
        )
        .with_run(
            f"cd /tmp/habana && ./install.sh {pins.HABANA_VERSION} {pins.HABANA_REVISION}"
            " && rm -rf /tmp/habana",
            user="1000",
            network=True,
        )
        .with_probes(imports=("torch", "habana_frameworks.torch"))
        .with_runner_tags("gaudi")
    )


def full_cuda(image: Image) -> Image:
    return full(image, xgboost=pins.XGBOOST_CUDA)


def register(catalog: Catalog) -> None:
    catalog.add("jupyter-pytorch", "jupyter", pytorch)
    catalog.add("jupyter-pytorch-full", "jupyter-pytorch", full)
    catalog.add("jupyter-pytorch-cuda", "jupyter", pytorch_cuda)
    catalog.add("jupyter-pytorch-cuda-full", "jupyter-pytorch-cuda", full_cuda)
    catalog.add("jupyter-pytorch-gaudi", "jupyter", pytorch_gaudi)
    catalog.add("jupyter-pytorch-gaudi-full", "jupyter-pytorch-gaudi", full)
