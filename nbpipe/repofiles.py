"""Which files of a repository ship in its image, read safely.

What git would commit: every file except ``.git`` and what the repository's
``.gitignore`` files exclude, found by git itself (its own ignore rules, nested files
included) against an empty scratch repository, so neither this machine's git settings
nor an enclosing checkout change the answer. Symlinks are followed only to files inside
the repository; anything else is refused with one line naming it.
"""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
import tempfile
from pathlib import Path

from . import safe_io
from .errors import SpecError

MAX_FILES = 10_000
MAX_TOTAL = 256 << 20  # bytes over all files: a repository, not a data set

File = tuple[str, bytes, int]  # path relative to the repository, content, mode


def collect(repo: Path, *, executables: tuple[str, ...] = ()) -> tuple[File, ...]:
    """The repository's files, sorted by path; modes are group-writable (0664, or 0775
    for files that are executable, or named in ``executables``)."""
    repo = Path(repo)
    out: list[File] = []
    total = 0
    for rel in _listed(repo):
        path = safe_io.inside(repo, rel, f"{repo}/{rel}", error=SpecError)
        if not path.is_file():
            raise SpecError(f"{repo}/{rel}: not a regular file (a link to a folder, a pipe?): "
                            "remove it or list it in .gitignore")
        total += path.stat().st_size
        if total > MAX_TOTAL:
            raise SpecError(f"{repo}: more than {MAX_TOTAL >> 20} MiB to ship (at {rel}); list "
                            "data and build outputs in .gitignore")
        data = safe_io.read_bytes(path, f"{repo}/{rel}", limit=MAX_TOTAL, error=SpecError)
        run = path.stat().st_mode & stat.S_IXUSR or rel in executables
        out.append((rel, data, 0o775 if run else 0o664))
        if len(out) > MAX_FILES:
            raise SpecError(f"{repo}: more than {MAX_FILES:,} files to ship; list data and "
                            "build outputs in .gitignore")
    return tuple(out)


def _listed(repo: Path, prefix: str = "") -> list[str]:
    """Paths git would add (untracked + not ignored), recursing into nested checkouts."""
    git = shutil.which("git")
    if git is None:
        raise SpecError(f"{repo}: git is needed to apply the repository's .gitignore; "
                        "install git (apt-get install git)")
    with tempfile.TemporaryDirectory(prefix="nbpipe-git-") as scratch:
        env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": scratch,
               "GIT_CONFIG_GLOBAL": os.devnull, "GIT_CONFIG_NOSYSTEM": "1"}
        r = subprocess.run([git, "init", "-q", "--bare", scratch], env=env, capture_output=True)
        if r.returncode == 0:
            tree = {"GIT_DIR": scratch, "GIT_WORK_TREE": str(repo.resolve())}
            r = subprocess.run([git, "-c", "core.bare=false", "ls-files", "-z", "--others",
                                "--exclude-standard"], capture_output=True, cwd=repo,
                               env={**env, **tree})
    if r.returncode != 0:
        why = r.stderr.decode(errors="replace").strip().splitlines()[-1:] or ["git failed"]
        raise SpecError(f"{repo}: cannot list its files: {why[0]}")
    out: list[str] = []
    for raw in sorted(r.stdout.split(b"\0")):
        if not raw:
            continue
        try:
            rel = raw.decode()
        except UnicodeDecodeError:
            raise SpecError(f"{repo}: a file name is not UTF-8 ({raw!r}); rename it") from None
        if any(c in rel for c in "\n\r"):
            raise SpecError(f"{repo}: the file name {rel!r} holds a line break; rename it")
        if rel.endswith("/"):  # a nested git checkout: its own files, by its own rules
            out += _listed(repo / rel, prefix + rel)
        else:
            out.append(prefix + rel)
    return out
