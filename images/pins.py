"""Every version and checksum the family depends on, in one place.

Change a pin here and exactly the images that use it (and their children) get a new
digest: that is the whole "what does this change affect" story.
"""

from __future__ import annotations

from nbpipe import platforms as plat
from nbpipe.image import BaseRef

# The root every image builds on: Debian bookworm-slim, pinned per platform by manifest
# digest. Without registry access, `nbpipe base bootstrap` makes an equivalent local root
# with debootstrap and the same recipe is built on top of it (see nbpipe/rootfs.py).
DEBIAN_ROOT = BaseRef(
    ref="docker.io/library/debian:bookworm-slim",
    digests={
        plat.AMD64: "sha256:aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
        plat.ARM64: "sha256:bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb",
    },
)

PYTHON_VENV_PIP = "pip==25.3"

JUPYTER = ("jupyterlab==4.5.6", "notebook==7.5.5", "ipykernel==6.31.0")

# Kubeflow's "full" set; CPU images take xgboost-cpu (5.6 MB) rather than xgboost
# (131.7 MB plus 479 MB of NVIDIA NCCL) - measured, see the README.
FULL_COMMON = (
    "bokeh==3.8.0", "cloudpickle==3.1.2", "dill==0.4.0", "ipympl==0.9.8",
    "matplotlib==3.10.7", "numpy==2.3.5", "pandas==2.3.3", "scikit-image==0.25.2",
    "scikit-learn==1.7.2", "scipy==1.16.3", "seaborn==0.13.2",
    "kfp==2.14.6", "kubeflow==0.1.0", "jupyterlab-git==0.51.2",
)
XGBOOST_CPU = "xgboost-cpu==3.1.1"
XGBOOST_CUDA = "xgboost==3.1.1"

SCIPY_APT = ("cm-super", "dvipng", "ffmpeg")
SCIPY_EXTRA = (
    "dask[distributed]==2025.11.0", "numba==0.62.1", "h5py==3.15.1", "statsmodels==0.14.5",
    "sympy==1.14.0", "sqlalchemy==2.0.44", "tables==3.10.2", "beautifulsoup4==4.14.2",
    "altair==5.5.0",
)

PYPI_SIMPLE = "https://pypi.org/simple"
TORCH_CPU_INDEX = "https://download.pytorch.org/whl/cpu"
TORCH_CPU = ("torch==2.9.1", "torchvision==0.24.1", "torchaudio==2.9.1")
TORCH_CUDA = ("torch==2.9.1", "torchvision==0.24.1", "torchaudio==2.9.1")
TORCH_GAUDI_BASE = ("torch==2.9.1",)
HABANA_INDEX = "https://vault.habana.ai/artifactory/api/pypi/gaudi-python/simple"
HABANA_PIP = ("habana-torch-plugin==1.22.0",)
TENSORFLOW_CPU = "tensorflow==2.20.0"
TENSORFLOW_CUDA = "tensorflow[and-cuda]==2.20.0"
