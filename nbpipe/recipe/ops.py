"""The primitive operations every engine knows how to perform.

Steps (the user-facing vocabulary) lower to these; engines translate each op one-to-one
(a Dockerfile instruction, a Dagger Container call). Keeping this layer tiny is what makes
"the same recipe means the same image on every engine" true by construction: there is no
step-specific logic in any engine.
"""

from __future__ import annotations

import shlex
from dataclasses import dataclass, field


@dataclass(frozen=True)
class CacheMount:
    """A persistent download cache, mounted only while one command runs (never in a layer)."""

    target: str
    id: str
    owner: str = "0:0"  # uid:gid of the mount point
    # Locked: one command at a time (apt, pip). Shared: for a cache that is safe to write
    # at once (npm's). An Exec has at most one locked cache: Buildah 1.28 (Debian 12's)
    # releases only one of a RUN's locked caches, so the next RUN using another hangs.
    shared: bool = False


@dataclass(frozen=True)
class SecretMount:
    """A file given to one command and never written to a layer (the extra CA bundle)."""

    target: str
    id: str


@dataclass(frozen=True)
class BindMount:
    """A read-only directory from the build context (the wheelhouse, the package store)."""

    target: str
    id: str


Mount = CacheMount | SecretMount | BindMount


@dataclass(frozen=True)
class Exec:
    """Run a POSIX shell script. ``user`` None means "whoever the image's user is now"."""

    script: str
    user: str | None = None
    network: bool = False  # needs the network: gets the CA bundle when one is configured
    pip: bool = False  # runs pip: gets the wheelhouse when one is configured
    apt: bool = False  # installs pinned .debs: gets the package store when one is configured
    mounts: tuple[Mount, ...] = ()
    env: tuple[tuple[str, str], ...] = ()  # for this command only

    def argv(self) -> list[str]:
        """The exact argv both engines execute: per-command env is exported first."""
        lines = [f"export {k}={shlex.quote(v)}" for k, v in self.env]
        return ["/bin/sh", "-c", "\n".join([*lines, self.script])]


@dataclass(frozen=True)
class SetEnv:
    name: str
    value: str  # literal: engines never expand $VARS in it


@dataclass(frozen=True)
class SetUser:
    user: str


@dataclass(frozen=True)
class SetWorkdir:
    path: str


@dataclass(frozen=True)
class WriteFile:
    path: str
    content: bytes = field(repr=False)
    mode: int = 0o644
    owner: str = "0:0"


@dataclass(frozen=True)
class WriteTree:
    """A folder of files in one layer (a repository's contents): ``files`` are
    (relative path, content, mode); folders are made with ``dir_mode``."""

    path: str
    files: tuple[tuple[str, bytes, int], ...] = field(repr=False)
    owner: str = "0:0"
    dir_mode: int = 0o755

    def dirs(self) -> tuple[str, ...]:
        """Every folder the files need, parents first."""
        out: set[str] = set()
        for rel, _, _ in self.files:
            parts = rel.split("/")[:-1]
            out.update("/".join(parts[:i]) for i in range(1, len(parts) + 1))
        return tuple(sorted(out, key=lambda d: (d.count("/"), d)))


@dataclass(frozen=True)
class SetLabel:
    key: str
    value: str


@dataclass(frozen=True)
class Expose:
    port: int


@dataclass(frozen=True)
class SetEntrypoint:
    argv: tuple[str, ...]


@dataclass(frozen=True)
class SetCmd:
    argv: tuple[str, ...]


Op = (
    Exec
    | SetEnv
    | SetUser
    | SetWorkdir
    | WriteFile
    | WriteTree
    | SetLabel
    | Expose
    | SetEntrypoint
    | SetCmd
)
