"""nbpipe as a Dagger module: `dagger call build --image jupyter-scipy`.

The main object lowers the very same Image values the CLI builds with podman (through
nbpipe.engines.dagger); every function is small and returns Dagger objects, so calls
chain: `build --image jupyter-scipy export --path x.tar`,
`build --image jupyter as-service --use-entrypoint up --ports 8888:8888`.
"""

from .main import Nbpipe

__all__ = ["Nbpipe"]
