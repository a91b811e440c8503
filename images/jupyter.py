"""jupyter and jupyter-scipy: JupyterLab + Notebook on the distribution's Python, in a venv
that jovyan owns (so `pip install` works at run time, as with Kubeflow's conda)."""

from __future__ import annotations

from typing import Any

from nbpipe.recipe import contract
from nbpipe.recipe.catalog import Catalog
from nbpipe.recipe.image import Image

from . import pins
from .base import FILES, PATH

JUPYTER_CONFIG = f"{contract.VENV}/etc/jupyter/jupyter_server_config.py"

# The venv keeps the pip that Debian's ensurepip bundles: upgrading it in a later layer
# would store two pips (the lower layer keeps the old one).
MAKE_VENV = f"""
install -d -o {contract.NB_UID} -g {contract.NB_GID} -m 2775 {contract.VENV}
runuser -u {contract.NB_USER} -- python3 -m venv {contract.VENV}
"""


def python_venv(path: str = PATH):
    """Debian's Python with a venv jovyan owns, first on PATH (a recipe fragment)."""

    def fragment(image: Image) -> Image:
        return (
            image.with_apt("python3", "python3-venv")
            .with_run(MAKE_VENV, user="root")
            .with_env("PATH", f"{contract.VENV}/bin:{path}")
            .with_env("VIRTUAL_ENV", contract.VENV)
        )

    return fragment


SITE_PACKAGES = f"{contract.VENV}/lib/python{pins.PYTHON}/site-packages"

# What a pip install leaves that no one needs at run time (issue 23), removed in the pip
# step's own layer: the test suites packages ship (`numpy.test()` and the like need them,
# no import does), the source maps of the web bundles (a browser asks for them only with
# its developer tools open) and the C that Cython generated for debugpy's compiled modules.
# Test suites that something outside tests imports are kept: tables and numexpr import
# theirs (`tables.test`, `numexpr.print_versions`), numba's support module is imported by
# numba.cuda.testing and its inspector, and `python -m jupyterlab.browser_check` needs
# jupyterlab's. typeshed's stubs (jedi's completions) are data, never pruned.
TEST_SUITES_KEPT = (
    "jupyterlab/tests",
    "numba/tests",
    "numba/cuda/tests",
    "numexpr/tests",
    "tables/tests",
)
PIP_REMOVE = (
    f"{SITE_PACKAGES}/tornado/test",  # tornado's suite is called test
    f"{SITE_PACKAGES}/debugpy/_vendored/pydevd/*/*.c",
)
PRUNE_TESTS = (
    f"find {SITE_PACKAGES} -type d -name tests ! -path '*/jedi/third_party/*' "
    + " ".join(f"! -path {SITE_PACKAGES}/{k}" for k in TEST_SUITES_KEPT)
    + " -prune -exec rm -rf {} +"
)
PRUNE_SOURCE_MAPS = f"find {contract.VENV} -type f -name '*.js.map' -delete"
# JupyterLab's wheel ships its built app twice, identical: share/jupyter/lab/static (what
# the server serves) and jupyterlab/static (core mode). Hard links keep both paths.
LAB_STATIC_LINKED = (
    f"hardlink -q -t {SITE_PACKAGES}/jupyterlab/static {contract.VENV}/share/jupyter/lab/static"
)

# jupyter-events asks for jsonschema[format-nongpl], which brings rfc3987-syntax: it builds
# a Lark (Earley) grammar when imported, and Jupyter Server imports it at every start.
# Measured in jupyter: 1.05 of the 1.9 cpu-s a start takes (1.75 s of a start at Kubeflow's
# default cpu limit, 0.6). Without it jsonschema only skips the "iri" formats, which no
# schema shipped in these images uses. Run after each pip step that may bring it back (in
# its own layer, so the layer never holds them).
NO_IRI_GRAMMAR = (
    f"{contract.VENV}/bin/pip uninstall --disable-pip-version-check -y -q rfc3987-syntax lark"
)


def slim(*extra: str) -> dict[str, Any]:
    """with_pip's arguments that leave out what no user needs (see PIP_REMOVE)."""
    return {
        "remove": PIP_REMOVE,
        "after": "\n".join((NO_IRI_GRAMMAR, PRUNE_TESTS, PRUNE_SOURCE_MAPS, *extra)),
    }


def jupyter(image: Image) -> Image:
    """JupyterLab and Notebook, served on 8888 under NB_PREFIX, supervised by s6."""
    return (
        image.with_(python_venv())
        .with_pip(*pins.JUPYTER, **slim(LAB_STATIC_LINKED))
        .with_file(JUPYTER_CONFIG, FILES / "jupyter_server_config.py")
        .with_service("jupyterlab", (FILES / "jupyterlab.run").read_text())
        .with_label(contract.LABEL_SERVER, "jupyter")
        .with_label(contract.LABEL_SERVICE, "jupyterlab")
        .with_probes(imports=("jupyterlab", "notebook", "ipykernel"))
        .with_label(contract.LABEL_PYTHON, pins.PYTHON)
    )


def full(image: Image, *, xgboost: str = pins.XGBOOST_CPU, beside: bool = False) -> Image:
    """Kubeflow's "full" package set (data science + kfp + jupyterlab-git). ``beside``:
    at the same time as the apt step before it (all wheels, but kfp-server-api's pure
    Python sdist, built by uv in its own build environment: nothing apt brings is used)."""
    return image.with_pip(*pins.FULL_COMMON, xgboost, beside=beside, **slim()).with_probes(
        imports=(
            "bokeh",
            "cloudpickle",
            "dill",
            "ipympl",
            "matplotlib",
            "numpy",
            "pandas",
            "skimage",
            "sklearn",
            "scipy",
            "seaborn",
            "xgboost",
            "kfp",
            "jupyterlab_git",
        )
    )


def scipy(image: Image) -> Image:
    """The full set plus Kubeflow's scipy extras (LaTeX fonts, ffmpeg, dask, numba, ...)."""
    return (
        image.with_apt(
            *pins.SCIPY_APT,
            remove=pins.SCIPY_APT_REMOVE,
            after=pins.SCIPY_APT_AFTER,
            skip=pins.SCIPY_APT_SKIP,
        )
        .with_(lambda i: full(i, beside=True))  # while dpkg unpacks, uv installs
        .with_pip(*pins.SCIPY_EXTRA, **slim())
        .with_probes(
            imports=(
                "dask",
                "numba",
                "h5py",
                "statsmodels",
                "sympy",
                "sqlalchemy",
                "tables",
                "bs4",
                "altair",
            ),
            commands=(
                "ffmpeg -version",
                "dvipng --version",
                # LaTeX works for jovyan (its format made on first use)
                "cd /tmp && printf '%s\\n' '\\documentclass{article}' "
                "'\\begin{document}$x^2$\\end{document}' > t.tex && "
                "latex -interaction=nonstopmode t.tex >/dev/null && "
                "dvipng -q -o t.png t.dvi && test -s t.png",
            ),
        )
    )


def register(catalog: Catalog) -> None:
    catalog.add("jupyter", "base", jupyter)
    catalog.add("jupyter-scipy", "jupyter", scipy)
