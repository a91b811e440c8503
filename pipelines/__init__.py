"""nbpipe as a Dagger module: `dagger call build --image jupyter-scipy`.

The main object lowers the very same Image values the CLI builds with podman (through
nbpipe.engines.dagger); every function is small and returns Dagger objects, so calls
chain: `build --image jupyter-scipy export --path x.tar`,
`build --image jupyter as-service --use-entrypoint up --ports 8888:8888`.
"""

if __name__ != "nbpipe.pipelines":  # one module object per file: never a second copy as `pipelines`
    raise ImportError(
        "pipelines/ is installed as nbpipe.pipelines: import nbpipe.pipelines "
        "(`pip install -e .` in the checkout installs it)"
    )

from .main import Nbpipe

__all__ = ["Nbpipe"]
