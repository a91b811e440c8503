"""Everything a run is told, in one frozen value: made once (by the CLI from its flags and
the environment variables below, by the Dagger module from its arguments) and passed down.
Below the CLI nothing reads the environment for settings, so what a run did is what this
value says. Secrets (registry password, signing passphrase) are never kept in it: they are
read where they are used, and never printed (README, "Environment variables")."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Mapping

# Every environment variable nbpipe reads, and what for. The README's table is this one
# (tests/sdk/test_settings.py keeps the two the same).
ENV: dict[str, str] = {
    "NBPIPE_STATE_DIR": "the state folder: probe records, build logs, SBOMs and the run lock "
    "(default .nbpipe in the current folder)",
    "NBPIPE_WORKDIR": "scratch space for probes' empty homes and debootstrap "
    "(default /var/tmp/nbpipe)",
    "NBPIPE_RUNTIME": "the OCI runtime podman runs containers with, e.g. runc "
    "(default: podman's own)",
    "NBPIPE_ASSUME_REACHABLE": "hosts taken as reachable without asking, comma-separated, "
    "or * (for machines whose proxy answers only builds)",
    "NBPIPE_DAGGER_ROOT": "NAME@sha256:DIGEST of a Debian bookworm root that Dagger builds "
    "start from instead of docker.io's (a registry without Docker Hub)",
    "NBPIPE_CATALOG": "module:function giving the catalog, as --catalog (default: our family)",
    "NBPIPE_CACHE_REGISTRY": "HOST[:PORT]/NAMESPACE whose <image>-cache repositories podman "
    "builds pull cached layers from and push new ones to, as --cache-registry (default: none)",
    "NBPIPE_PREFETCH": "0: each build step fetches its own files when it runs (default: a "
    "podman run fetches every locked file of the images it builds at once, parents' first)",
    "NBPIPE_DEBUG": "1: an unexpected error prints its traceback (always one line otherwise)",
    "NBPIPE_REGISTRY_USER": "registry user for publish (with NBPIPE_REGISTRY_PASSWORD)",
    "NBPIPE_REGISTRY_PASSWORD": "registry password or token; read when pushing, never stored",
    "NBPIPE_SIGN_PASSPHRASE": "the passphrase of --sign-key's encrypted cosign key "
    "(COSIGN_PASSWORD too, as cosign reads it)",
    "REGISTRY_AUTH_FILE": "registry credentials file, as podman reads it (else DOCKER_CONFIG's "
    "config.json, else ~/.docker/config.json)",
    "DAGGER_SESSION_PORT": "set by `dagger run`: builds go through that Dagger session",
}


@dataclass(frozen=True)
class Settings:
    state_dir: Path = Path(".nbpipe")
    workdir: Path = Path("/var/tmp/nbpipe")
    runtime: str | None = None
    assume_reachable: frozenset[str] = field(default_factory=frozenset)
    dagger_root: str = ""
    dagger_session: bool = False  # inside `dagger run`
    catalog: str | None = None  # module:function (--catalog wins)
    # host[:port]/namespace of the shared layer cache (--cache-registry wins); "" none
    cache_registry: str = ""
    # fetch every locked file at the run's start (run/prefetch.py): on for the command line
    # (NBPIPE_PREFETCH), off for a Pipeline made in code unless asked for
    prefetch: bool = False
    debug: bool = False

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> "Settings":
        env = os.environ if env is None else env
        return cls(
            state_dir=Path(env.get("NBPIPE_STATE_DIR") or ".nbpipe"),
            workdir=Path(env.get("NBPIPE_WORKDIR") or "/var/tmp/nbpipe"),
            runtime=env.get("NBPIPE_RUNTIME") or None,
            assume_reachable=frozenset(
                h.strip() for h in env.get("NBPIPE_ASSUME_REACHABLE", "").split(",") if h.strip()
            ),
            dagger_root=env.get("NBPIPE_DAGGER_ROOT", ""),
            dagger_session=bool(env.get("DAGGER_SESSION_PORT")),
            catalog=env.get("NBPIPE_CATALOG") or None,
            cache_registry=env.get("NBPIPE_CACHE_REGISTRY", "").strip().rstrip("/"),
            prefetch=env.get("NBPIPE_PREFETCH", "1").strip() != "0",
            debug=bool(env.get("NBPIPE_DEBUG")),
        )

    def logs(self) -> Path:
        return self.state_dir / "logs"
