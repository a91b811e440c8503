"""Which files of a repository ship in its image, read safely.

What git would commit: every file except ``.git`` and what the repository's
``.gitignore`` files exclude, found by git itself (its own ignore rules, nested files
included) against an empty scratch repository, so neither this machine's git settings
nor an enclosing checkout change the answer. Symlinks are followed only to files inside
the repository; anything else is refused with one line naming it.

Before git runs, one walk of the tree (links never followed) refuses what would make git
block or run for minutes: FIFOs, sockets and devices anywhere (git opens ``.gitignore``
and nested ``.git/HEAD`` files, and a FIFO there never answers), too many entries,
``.gitignore`` files past a stated size, pattern count or wildcard count (git's matching
grows as a name's length to the power of a pattern's ``*`` runs), and too many nested
checkouts. Every git process has a time limit, and hitting it is one line.
"""

from __future__ import annotations

import os
import re
import shutil
import stat
import subprocess
import tempfile
from pathlib import Path

from nbpipe.errors import SpecError
from nbpipe.inputs import safe_io

MAX_FILES = 10_000  # files shipped
MAX_TOTAL = 256 << 20  # bytes over all files: a repository, not a data set
MAX_ENTRIES = 250_000  # files and folders walked, ignored ones included (.git's inside not)
MAX_CHECKOUTS = 100  # nested git checkouts (each is listed by its own git process)
MAX_IGNORE_BYTES = 256 << 10  # all .gitignore files together
MAX_IGNORE_PATTERNS = 2_000  # patterns in all .gitignore files together
MAX_STARS = 2  # runs of '*' in one pattern ('**' counts once)
GIT_TIMEOUT = 30.0  # seconds for one git process

File = tuple[str, bytes, int]  # path relative to the repository, content, mode
_KIND = {
    stat.S_IFIFO: "a FIFO (named pipe)",
    stat.S_IFSOCK: "a socket",
    stat.S_IFCHR: "a character device",
    stat.S_IFBLK: "a block device",
}


def collect(repo: Path, *, executables: tuple[str, ...] = ()) -> tuple[File, ...]:
    """The repository's files, sorted by path; modes are group-writable (0664, or 0775
    for files that are executable, or named in ``executables``)."""
    repo = Path(repo)
    survey(repo)
    out: list[File] = []
    total = 0
    for rel in _listed(repo):
        path = safe_io.inside(repo, rel, f"{repo}/{rel}", error=SpecError)
        if not path.is_file():
            raise SpecError(
                f"{repo}/{rel}: not a regular file (a link to a folder, a pipe?): "
                "remove it or list it in .gitignore"
            )
        total += path.stat().st_size
        if total > MAX_TOTAL:
            raise SpecError(
                f"{repo}: more than {MAX_TOTAL >> 20} MiB to ship (at {rel}); list "
                "data and build outputs in .gitignore"
            )
        data = safe_io.read_bytes(path, f"{repo}/{rel}", limit=MAX_TOTAL, error=SpecError)
        run = path.stat().st_mode & stat.S_IXUSR or rel in executables
        out.append((rel, data, 0o775 if run else 0o664))
        if len(out) > MAX_FILES:
            raise SpecError(
                f"{repo}: more than {MAX_FILES:,} files to ship; list data and "
                "build outputs in .gitignore"
            )
    return tuple(out)


def survey(repo: Path) -> None:
    """One walk of the tree before any tool opens a file of it (see the module's
    docstring); raises SpecError naming the first thing refused."""
    entries = patterns = ignore_bytes = 0
    stack = [Path(repo)]
    while stack:
        folder = stack.pop()
        try:
            with os.scandir(folder) as it:
                listing = sorted(it, key=lambda e: e.name)
        except OSError as exc:
            raise SpecError(f"{folder}: cannot list: {exc.strerror or exc}") from None
        for entry in listing:
            entries += 1
            if entries > MAX_ENTRIES:
                raise SpecError(
                    f"{repo}: more than {MAX_ENTRIES:,} files and folders (ignored "
                    "ones included); nbpipe refuses bigger trees"
                )
            path = Path(entry.path)
            mode = entry.stat(follow_symlinks=False).st_mode
            _refuse_special(path, mode)
            if stat.S_ISLNK(mode):
                try:  # what a link leads to is checked too: git may open it
                    _refuse_special(path, os.stat(path).st_mode, "a link to ")
                except OSError:
                    pass  # dangling or a loop: nothing to open
            elif entry.name == ".git":  # the top one is never read (git runs on a scratch)
                if folder != Path(repo):
                    _check_checkout(path, mode)
            elif stat.S_ISDIR(mode):
                stack.append(path)
            elif entry.name == ".gitignore" and stat.S_ISREG(mode):
                n, size = _check_ignore(path)
                patterns, ignore_bytes = patterns + n, ignore_bytes + size
                if ignore_bytes > MAX_IGNORE_BYTES:
                    raise SpecError(
                        f"{path}: the .gitignore files hold more than "
                        f"{MAX_IGNORE_BYTES >> 10} KiB together; nbpipe refuses more"
                    )
                if patterns > MAX_IGNORE_PATTERNS:
                    raise SpecError(
                        f"{path}: the .gitignore files hold more than "
                        f"{MAX_IGNORE_PATTERNS:,} patterns together; nbpipe "
                        "refuses more (git tries each against every name)"
                    )


def _refuse_special(path: Path, mode: int, via: str = "") -> None:
    kind = _KIND.get(stat.S_IFMT(mode))
    if kind:
        raise SpecError(
            f"{path}: {via}{kind}; a repository holds only files, folders and "
            "links (git would wait on it forever): remove it"
        )


def _check_checkout(git: Path, mode: int) -> None:
    """A nested checkout's .git: git opens its HEAD (or that of the folder a .git file
    names, as submodules and worktrees have), which must not be a FIFO or device."""
    if stat.S_ISREG(mode):  # "gitdir: PATH"
        text = safe_io.read_text(git, limit=4096, error=SpecError).strip()
        if not text.startswith("gitdir:") or not text.removeprefix("gitdir:").strip():
            return  # git ignores it
        git = git.parent / text.removeprefix("gitdir:").strip()
    elif not stat.S_ISDIR(mode):
        return
    head = git / "HEAD"
    try:
        _refuse_special(head, os.lstat(head).st_mode)
    except OSError:
        pass  # no HEAD: not a checkout, git opens nothing


def _check_ignore(path: Path) -> tuple[int, int]:
    """A .gitignore's pattern count and size; a pattern with too many wildcards is
    refused naming its line."""
    data = safe_io.read_bytes(path, limit=MAX_IGNORE_BYTES, error=SpecError)
    n = 0
    for i, raw in enumerate(data.decode("utf-8", "replace").splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        n += 1
        stars = len(re.findall(r"\*+", line))
        if stars > MAX_STARS:
            raise SpecError(
                f"{path}:{i}: a pattern with {stars} wildcards (*); nbpipe allows "
                f"{MAX_STARS} per pattern (git's matching time grows as a name's "
                "length to that power): simplify it"
            )
    return n, len(data)


def _listed(repo: Path) -> list[str]:
    """Paths git would add (untracked + not ignored), nested checkouts by their own rules
    (at most MAX_CHECKOUTS of them), each git process within GIT_TIMEOUT."""
    git = shutil.which("git")
    if git is None:
        raise SpecError(
            f"{repo}: git is needed to apply the repository's .gitignore; "
            "install git (apt-get install git)"
        )
    out: list[str] = []
    with tempfile.TemporaryDirectory(prefix="nbpipe-git-") as scratch:
        env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "HOME": scratch,
            "GIT_CONFIG_GLOBAL": os.devnull,
            "GIT_CONFIG_NOSYSTEM": "1",
        }
        _git(repo, [git, "init", "-q", "--bare", scratch], env, repo)
        todo, checkouts = [(repo, "")], 0
        while todo:
            top, prefix = todo.pop()
            tree = {"GIT_DIR": scratch, "GIT_WORK_TREE": str(top.resolve())}
            listing = _git(
                repo,
                [git, "-c", "core.bare=false", "ls-files", "-z", "--others", "--exclude-standard"],
                {**env, **tree},
                top,
            )
            for raw in sorted(listing.split(b"\0")):
                if not raw:
                    continue
                try:
                    rel = raw.decode()
                except UnicodeDecodeError:
                    raise SpecError(
                        f"{repo}: a file name is not UTF-8 ({raw!r}); rename it"
                    ) from None
                if any(c in rel for c in "\n\r"):
                    raise SpecError(f"{repo}: the file name {rel!r} holds a line break; rename it")
                if rel.endswith("/"):  # a nested git checkout: its own files, by its own rules
                    checkouts += 1
                    if checkouts > MAX_CHECKOUTS:
                        raise SpecError(
                            f"{repo}: more than {MAX_CHECKOUTS} nested git "
                            "checkouts; remove them or list them in .gitignore"
                        )
                    todo.append((top / rel, prefix + rel))
                else:
                    out.append(prefix + rel)
    return sorted(out)


def _git(repo: Path, argv: list[str], env: dict[str, str], cwd: Path) -> bytes:
    """One git process, bounded in time; its failure or time-out is one line."""
    try:
        r = subprocess.run(
            argv,
            capture_output=True,
            cwd=cwd,
            env=env,
            timeout=GIT_TIMEOUT,
            stdin=subprocess.DEVNULL,
        )
    except subprocess.TimeoutExpired:
        raise SpecError(
            f"{repo}: git {argv[1] if argv[1] != '-c' else argv[3]} ran longer "
            f"than {GIT_TIMEOUT:g} s listing the files and was stopped (a huge "
            "tree, or a .gitignore git is slow on?)"
        ) from None
    if r.returncode != 0:
        why = r.stderr.decode(errors="replace").strip().splitlines()[-1:] or ["git failed"]
        raise SpecError(f"{repo}: cannot list its files: {why[0]}")
    return r.stdout
