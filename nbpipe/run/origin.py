"""Where a team's image comes from, for its OCI labels.

Our family's images say `org.opencontainers.image.source` = nbpipe's repository and
`revision` = nbpipe's commit. A team's image built on them must not inherit that claim:
its source and revision are the team's own repository (the git checkout its spec, Binder
repository or catalog module lives in), and `base.name` is the parent it was built FROM.
These are build metadata (BuildOptions labels), never part of the digest.
"""

from __future__ import annotations

import inspect
import re
import subprocess
from dataclasses import dataclass
from pathlib import Path

from nbpipe.recipe.catalog import Catalog


@dataclass(frozen=True)
class Origin:
    """One team image's origin: "" where it is not known (no git checkout, no remote)."""

    name: str
    source: str
    revision: str


def _git(folder: Path, *args: str) -> str:
    try:
        r = subprocess.run(
            ["git", "-C", str(folder), *args], capture_output=True, text=True, timeout=10
        )
    except (OSError, subprocess.SubprocessError):
        return ""
    return r.stdout.strip() if r.returncode == 0 else ""


def public_url(remote: str) -> str:
    """A git remote as a URL fit for a label: scp-style `git@host:org/repo.git` becomes
    https://host/org/repo, and any credentials in it are dropped (a token in a remote
    must never end up in an image)."""
    remote = remote.strip()
    scp = re.fullmatch(r"[\w.-]+@([\w.-]+):(?!//)(.+)", remote)
    if scp:
        remote = f"https://{scp.group(1)}/{scp.group(2)}"
    remote = re.sub(r"^(\w[\w+.-]*://)[^/@]*@", r"\1", remote)
    return remote.removesuffix(".git") if remote.startswith(("https://", "http://")) else remote


def of_folder(name: str, folder: Path) -> Origin:
    """The image ``name`` defined in ``folder``: that checkout's origin and commit."""
    return Origin(
        name,
        public_url(_git(folder, "remote", "get-url", "origin")),
        _git(folder, "rev-parse", "HEAD"),
    )


def team_images(catalog: Catalog, defined_in: dict[str, Path]) -> tuple[Origin, ...]:
    """The origin of every image that is not ours: ``defined_in`` names the folder of a
    spec or Binder repository per image; images from a --catalog module outside nbpipe
    are found through their recipe's source file."""
    ours = Path(__file__).resolve().parents[1]  # the nbpipe package
    found = dict(defined_in)
    for name, entry in catalog.entries.items():
        if name in found:
            continue
        recipe = getattr(entry.recipe, "__wrapped__", entry.recipe)
        try:
            where = Path(inspect.getfile(recipe)).resolve()
        except (TypeError, OSError):
            continue
        from nbpipe import family

        family_dir = Path(family.__file__).resolve().parent
        if not (where.is_relative_to(ours) or where.is_relative_to(family_dir)):
            found[name] = where.parent
    return tuple(of_folder(n, folder) for n, folder in found.items())
