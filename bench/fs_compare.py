"""Two engines, one image: compare the file systems of two images, entry by entry (a script,
not a test; the README's "With Dagger" quotes its summary):

    .venv/bin/python bench/fs_compare.py A.tar B.tar [--show 40]

A and B are flat file-system tars (`podman export` of a container of each image: the same
tool for both sides, so the comparison sees the images, not two exporters). Each entry is
compared by type, mode, owner (uid:gid), size and content (sha256) or link target; file times
are left out (Dagger and Buildah clamp them differently unless --reproducible). Differences
are grouped by top folder so their causes can be named.
"""

from __future__ import annotations

import argparse
import hashlib
import sys
import tarfile
from collections import Counter
from dataclasses import dataclass
from functools import partial
from pathlib import Path


@dataclass(frozen=True)
class Entry:
    """What an image holds at one path, everything but its time."""

    kind: str  # file, dir, symlink, hardlink, char, block, fifo
    mode: int
    uid: int
    gid: int
    size: int
    content: str  # sha256 of a file, a link's target, "" otherwise


KINDS = {
    tarfile.REGTYPE: "file",
    tarfile.AREGTYPE: "file",
    tarfile.DIRTYPE: "dir",
    tarfile.SYMTYPE: "symlink",
    tarfile.LNKTYPE: "hardlink",
    tarfile.CHRTYPE: "char",
    tarfile.BLKTYPE: "block",
    tarfile.FIFOTYPE: "fifo",
}


def listing(tar: Path) -> dict[str, Entry]:
    """Every entry of a flat file-system tar, by its path without a leading ./ or /."""
    out: dict[str, Entry] = {}
    with tarfile.open(tar) as t:
        for m in t:
            path = _rel(m.name)
            if not path:
                continue
            kind = KINDS.get(m.type, f"type-{m.type!r}")
            content = ""
            if m.isfile():
                h = hashlib.sha256()
                f = t.extractfile(m)
                assert f is not None
                for chunk in iter(partial(f.read, 1 << 20), b""):
                    h.update(chunk)
                content = h.hexdigest()
            elif m.issym() or m.islnk():
                content = _rel(m.linkname) if m.islnk() else m.linkname
            out[path] = Entry(
                kind, m.mode & 0o7777, m.uid, m.gid, m.size if m.isfile() else 0, content
            )
    return out


def _rel(name: str) -> str:
    """A member's path as `etc/passwd`, whether written `./etc/passwd`, `/etc/passwd` or
    `etc/passwd` (dot files keep their dot)."""
    name = name.removeprefix("./").lstrip("/")
    return "" if name in (".", "") else name


@dataclass(frozen=True)
class Difference:
    path: str
    what: str  # "only in A", "only in B", or the fields that differ
    a: Entry | None
    b: Entry | None


def compare(a: dict[str, Entry], b: dict[str, Entry]) -> list[Difference]:
    """Every path whose entry differs, sorted by path."""
    diffs = []
    for path in sorted(a.keys() | b.keys()):
        ea, eb = a.get(path), b.get(path)
        if ea is None:
            diffs.append(Difference(path, "only in B", None, eb))
        elif eb is None:
            diffs.append(Difference(path, "only in A", ea, None))
        elif ea != eb:
            fields = [
                f
                for f in ("kind", "mode", "uid", "gid", "size", "content")
                if getattr(ea, f) != getattr(eb, f)
            ]
            diffs.append(Difference(path, ",".join(fields), ea, eb))
    return diffs


def summary(diffs: list[Difference], depth: int = 3) -> Counter:
    """How many differences per (top folders, what differs)."""
    return Counter(("/".join(d.path.split("/")[:depth]), d.what) for d in diffs)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("a", type=Path)
    ap.add_argument("b", type=Path)
    ap.add_argument("--show", type=int, default=40, help="differences listed one by one")
    ap.add_argument("--depth", type=int, default=3, help="folder depth of the summary")
    args = ap.parse_args(argv)
    for p in (args.a, args.b):
        if not p.is_file():
            print(f"fs_compare: {p}: no such file", file=sys.stderr)
            return 2
    a, b = listing(args.a), listing(args.b)
    diffs = compare(a, b)
    print(f"A {args.a}: {len(a)} entries; B {args.b}: {len(b)} entries; {len(diffs)} differ")
    for (folder, what), n in sorted(summary(diffs, args.depth).items()):
        print(f"  {n:6}  {what:24} {folder}")
    for d in diffs[: args.show]:
        print(f"  {d.path}: {d.what}: A={d.a} B={d.b}")
    return 0 if not diffs else 1


if __name__ == "__main__":
    sys.exit(main())
