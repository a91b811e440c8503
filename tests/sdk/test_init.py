"""base's /init run on this machine (sh, as the container runs it): the home skeleton
reaches an empty home, never overwrites the user's files, and a skeleton the user cannot
read stops the start with a message instead of a server with an empty home."""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest

INIT = Path(__file__).parents[2] / "images" / "files" / "init"
NOBODY = 1000


def run_init(tmp: Path, *, uid: int | None = None) -> subprocess.CompletedProcess[str]:
    env = {"PATH": os.environ["PATH"], "HOME": str(tmp / "home"),
           "NBPIPE_SKEL": str(tmp / "skel"), "NBPIPE_SCANDIR": str(tmp / "scan")}
    cmd = ["sh", str(INIT), "true"]
    if uid is not None:
        cmd = ["setpriv", f"--reuid={uid}", f"--regid={uid}", "--clear-groups", *cmd]
    return subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=30)


@pytest.fixture()
def tree(tmp_path: Path) -> Path:
    (tmp_path / "skel" / ".jupyter").mkdir(parents=True)
    (tmp_path / "skel" / ".jupyter" / "lab.json").write_text("{}\n")
    (tmp_path / "skel" / ".bashrc").write_text("# skeleton\n")
    (tmp_path / "home").mkdir()
    return tmp_path


def test_an_empty_home_receives_the_skeleton(tree: Path) -> None:
    r = run_init(tree)
    assert r.returncode == 0, r.stdout + r.stderr
    assert (tree / "home" / ".jupyter" / "lab.json").read_text() == "{}\n"
    assert (tree / "home" / ".bashrc").read_text() == "# skeleton\n"


def test_the_users_own_files_are_kept(tree: Path) -> None:
    (tree / "home" / ".bashrc").write_text("# mine\n")
    r = run_init(tree)
    assert r.returncode == 0, r.stdout + r.stderr
    assert (tree / "home" / ".bashrc").read_text() == "# mine\n"
    assert (tree / "home" / ".jupyter" / "lab.json").exists()


@pytest.mark.skipif(os.geteuid() != 0 or shutil.which("setpriv") is None,
                    reason="needs root and setpriv to run /init as another uid")
def test_an_unreadable_skeleton_stops_the_start(tree: Path) -> None:
    # pytest's own tmp folders are root's only: the other uid needs a way in
    shared = Path(tempfile.mkdtemp(prefix="nbpipe-init-"))
    shared.chmod(0o755)
    tree = Path(shutil.copytree(tree, shared / "t", symlinks=True))
    tree.chmod(0o755)
    os.chown(tree / "home", NOBODY, NOBODY)
    os.chmod(tree / "skel", 0o700)  # root's only, as a random OpenShift uid would find it
    r = run_init(tree, uid=NOBODY)
    assert r.returncode == 1, r.stdout + r.stderr
    assert "cannot read the home skeleton" in r.stdout
    assert not (tree / "home" / ".bashrc").exists()
    shutil.rmtree(shared)
