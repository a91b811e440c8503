"""bench/bench.py's commit floor (`commit_once`) on a small tree, with the real buildah:
the tree is committed as a layer holding exactly its files, comes back where it was,
and the scratch store is gone afterwards."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench"))

import bench  # noqa: E402

pytestmark = pytest.mark.skipif(
    shutil.which("buildah") is None or os.geteuid() != 0,
    reason="needs buildah as root (the bench's commit runs in a store of its own)",
)


def test_commit_once_times_a_real_commit_and_puts_the_tree_back(tmp_path, monkeypatch) -> None:
    tree = tmp_path / "tree"
    (tree / "usr/lib").mkdir(parents=True)
    (tree / "usr/lib/blob").write_bytes(os.urandom(2_000_000))
    (tree / "usr/lib/link").symlink_to("blob")
    before = sorted(p.relative_to(tree) for p in tree.rglob("*"))
    seen: list[list[str]] = []
    real_run = subprocess.run

    def spy(argv, *a, **kw):  # the commit's layer, listed before the store is removed
        if argv[:1] == ["buildah"] and "rm" in argv and "--all" in argv:
            store = argv[argv.index("--root") + 1]
            image = real_run(
                ["buildah", "--root", store, "--runroot", f"{store}-run", "from", "limit-commit"],
                capture_output=True,
                text=True,
                check=True,
            ).stdout.strip()
            mnt = real_run(
                ["buildah", "--root", store, "--runroot", f"{store}-run", "mount", image],
                capture_output=True,
                text=True,
                check=True,
            ).stdout.strip()
            seen.append(
                sorted(str(p.relative_to(mnt)) for p in Path(mnt, "limit").rglob("*"))
                + [Path(mnt, "limit/usr/lib/blob").read_bytes() == blob]
            )
        return real_run(argv, *a, **kw)

    blob = (tree / "usr/lib/blob").read_bytes()
    monkeypatch.setattr(bench.subprocess, "run", spy)
    seconds = bench.commit_once(tmp_path, tree)

    assert seconds > 0
    assert sorted(p.relative_to(tree) for p in tree.rglob("*")) == before  # back in place
    assert (tree / "usr/lib/blob").read_bytes() == blob
    assert seen == [
        ["limit/usr", "limit/usr/lib", "limit/usr/lib/blob", "limit/usr/lib/link", True]
    ]
    assert not (tmp_path / "commit-store").exists()
    assert not (tmp_path / "commit-store-run").exists()
    assert not (tmp_path / "commit-tmp").exists()
