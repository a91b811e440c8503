"""bench/fs_compare.py on small tars made here: what counts as a difference, and what not."""

from __future__ import annotations

import io
import sys
import tarfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench"))

import fs_compare  # noqa: E402


def make_tar(path: Path, entries: list[tuple]) -> Path:
    """entries: (name, kind, mode, uid, gid, data-or-linkname, mtime)."""
    with tarfile.open(path, "w") as t:
        for name, kind, mode, uid, gid, data, mtime in entries:
            info = tarfile.TarInfo(name)
            info.mode, info.uid, info.gid, info.mtime = mode, uid, gid, mtime
            if kind == "file":
                info.size = len(data)
                t.addfile(info, io.BytesIO(data))
                continue
            info.type = {"dir": tarfile.DIRTYPE, "symlink": tarfile.SYMTYPE}[kind]
            if kind == "symlink":
                info.linkname = data
            t.addfile(info)
    return path


BASE = [("./", "dir", 0o755, 0, 0, b"", 0),
        ("./etc", "dir", 0o755, 0, 0, b"", 0),
        ("./etc/passwd", "file", 0o644, 0, 0, b"root:x:0:0\n", 0),
        ("./home/jovyan", "dir", 0o2775, 1000, 100, b"", 0),
        ("./bin", "symlink", 0o777, 0, 0, "usr/bin", 0),
        ("./.dockerenv", "file", 0o644, 0, 0, b"", 0)]


def test_same_files_with_other_times_are_the_same(tmp_path) -> None:
    a = make_tar(tmp_path / "a.tar", BASE)
    b = make_tar(tmp_path / "b.tar", [(*e[:6], 1234567) for e in BASE])
    la, lb = fs_compare.listing(a), fs_compare.listing(b)
    assert set(la) == {"etc", "etc/passwd", "home/jovyan", "bin", ".dockerenv"}
    assert fs_compare.compare(la, lb) == []
    assert fs_compare.main([str(a), str(b)]) == 0


def test_every_field_but_time_counts(tmp_path, capsys) -> None:
    changed = [("./", "dir", 0o755, 0, 0, b"", 0),
               ("./etc", "dir", 0o700, 0, 0, b"", 0),                      # mode
               ("./etc/passwd", "file", 0o644, 0, 0, b"root:x:0:1\n", 0),  # content
               ("./home/jovyan", "dir", 0o2775, 1000, 0, b"", 0),          # gid
               ("./bin", "symlink", 0o777, 0, 0, "usr/sbin", 0),           # target
               ("./extra", "file", 0o600, 0, 0, b"x", 0),                  # only in B
               ("./.dockerenv", "file", 0o644, 0, 0, b"", 0)]
    a = make_tar(tmp_path / "a.tar", BASE)
    b = make_tar(tmp_path / "b.tar", changed)
    diffs = {d.path: d.what for d in fs_compare.compare(fs_compare.listing(a),
                                                         fs_compare.listing(b))}
    assert diffs == {"etc": "mode", "etc/passwd": "content", "home/jovyan": "gid",
                     "bin": "content", "extra": "only in B"}
    assert fs_compare.main([str(b), str(a)]) == 1
    out = capsys.readouterr().out
    assert "5 differ" in out and "only in A" in out


def test_a_missing_tar_is_one_line(tmp_path, capsys) -> None:
    assert fs_compare.main([str(tmp_path / "nope.tar"), str(tmp_path / "nope.tar")]) == 2
    assert capsys.readouterr().err.strip() == f"fs_compare: {tmp_path / 'nope.tar'}: no such file"
