"""The notebook-server contract probes and smoke tests.

Standard library only, so they run anywhere: on the host against a podman container,
inside a Dagger probe container, or on a GPU runner. Each check returns a ProbeResult
whose message tells a user what is wrong, not just that something is.
"""

from nbpipe.probes.result import ProbeResult, Status

__all__ = ["ProbeResult", "Status"]
