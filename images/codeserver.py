"""codeserver and codeserver-python: VS Code in the browser. code-server comes from the
npm registry, on Node 24 that also comes from the npm registry (checked by sha256), its
native modules built against that Node's own headers, the compilers gone afterwards."""

from __future__ import annotations

from nbpipe.recipe import contract
from nbpipe.recipe.catalog import Catalog
from nbpipe.recipe.image import Image

from . import pins
from .base import FILES, PATH
from .jupyter import python_venv

NODE_HOME = "/opt/node"
NPM_HOME = "/opt/npm"
EXTENSIONS = "/opt/code-server/extensions"

LINK_NPM = f"""
ln -sf {NPM_HOME}/bin/npm-cli.js /usr/local/bin/npm
ln -sf {NPM_HOME}/bin/npx-cli.js /usr/local/bin/npx
rm -rf {NODE_HOME}/share/doc {NODE_HOME}/share/man {NODE_HOME}/README.md {NODE_HOME}/CHANGELOG.md
install -d -o {contract.NB_UID} -g {contract.NB_GID} -m 2775 {EXTENSIONS}
"""

# Open VSX (VS Code Marketplace terms forbid other clients). Unreachable from where this
# was written: no sha256 recorded yet, so the step refuses to build until one is.
PYTHON_EXTENSION = (
    "https://open-vsx.org/api/ms-python/python/2025.0.0/file/ms-python.python-2025.0.0.vsix",
    None,
)


def codeserver(image: Image) -> Image:
    """code-server on 8888 (--auth none, trusted origins *), supervised by s6."""
    img = image
    for platform, (url, sha256) in pins.NODE.items():
        img = img.with_download(
            url, sha256, NODE_HOME, extract=True, strip_components=1, platforms=(platform,)
        )
    return (
        img.with_download(pins.NPM[0], pins.NPM[1], NPM_HOME, extract=True, strip_components=1)
        .with_run(LINK_NPM, user="root")
        .with_env("PATH", f"{NODE_HOME}/bin:{PATH}")
        .with_npm(pins.CODE_SERVER, nodedir=NODE_HOME, build_deps=pins.CODE_SERVER_BUILD_DEPS)
        .with_service("code-server", (FILES / "code-server.run").read_text())
        .with_label(contract.LABEL_SERVER, "codeserver")
        .with_label(contract.LABEL_SERVICE, "code-server")
        .with_probes(commands=("code-server --version",))
    )


def codeserver_python(image: Image) -> Image:
    """code-server with a Python venv, ipykernel, kfp and the Python extension."""
    url, sha256 = PYTHON_EXTENSION
    return (
        image.with_(python_venv(f"{NODE_HOME}/bin:{PATH}"))
        .with_pip("ipykernel==7.4.0", "kfp==2.17.3", "kubeflow==0.5.0")
        .with_download(url, sha256, "/tmp/nbpipe-ms-python.vsix")
        .with_run(
            f"code-server --extensions-dir {EXTENSIONS} --install-extension "
            "/tmp/nbpipe-ms-python.vsix"
            " && rm -rf /tmp/nbpipe-ms-python.vsix /tmp/node-compile-cache",
            user=str(contract.NB_UID),
        )
        .with_probes(imports=("ipykernel", "kfp", "kubeflow"))
        .with_label(contract.LABEL_PYTHON, pins.PYTHON)
    )


def register(catalog: Catalog) -> None:
    catalog.add("codeserver", "base", codeserver)
    catalog.add("codeserver-python", "codeserver", codeserver_python)
