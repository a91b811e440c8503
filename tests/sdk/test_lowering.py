"""A pip step beside an apt step (recipe/lowering.py): one RUN running both at once, each as
its own user, failing if either fails; refused where it cannot hold."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from nbpipe.errors import NbpipeError
from nbpipe.family import family
from nbpipe.locks import lock
from nbpipe.recipe import steps as s
from nbpipe.recipe.lowering import at_once, lowered
from nbpipe.recipe.ops import CacheMount, Exec

APT = s.Apt(packages=("ffmpeg",))
PIP = s.Pip(packages=("numpy==2.0",), beside=True)


def test_a_pip_step_beside_an_apt_step_is_one_exec_with_both_at_once() -> None:
    [(what, op)] = lowered([APT, PIP])
    assert what == "apt ffmpeg + pip numpy==2.0 (at once)"
    [apt] = APT.lower()
    assert isinstance(op, Exec) and op.user == "root"
    assert (op.network, op.pip, op.apt) == (True, True, apt.apt)
    # the apt cache keeps its lock; pip's is shared (Buildah 1.28: one locked cache a RUN)
    assert op.mounts == (
        s.APT_ARCHIVES,
        CacheMount("/var/cache/nbpipe/pip", "nbpipe-pip", owner="1000:0", shared=True),
    )
    assert op.env == ()  # pip's environment is its own, inside its half
    lines = op.script.splitlines()
    assert lines[:2] == ["set -eu", "("] and f"\n{apt.script}\n) &\nfirst=$!" in op.script
    assert "setpriv --reuid=1000 --regid=0 --clear-groups -- /bin/sh -c " in op.script
    assert "export UV_CACHE_DIR=/var/cache/nbpipe/pip/uv" in op.script
    assert lines[-2:] == ['wait "$first"', 'wait "$second"']


def test_steps_not_beside_lower_one_by_one_and_keep_their_digests() -> None:
    plain = s.Pip(packages=("numpy==2.0",))
    assert [op for _, op in lowered([APT, plain])] == [*APT.lower(), *plain.lower()]
    assert "beside" not in plain.canonical() and PIP.canonical()["beside"] is True
    # the resolution is the same: the lock keeps its entry
    assert lock.key("i", 1, plain) == lock.key("i", 1, PIP)


def test_beside_is_refused_where_it_cannot_hold() -> None:
    with pytest.raises(NbpipeError, match="the step before it is nothing"):
        lowered([PIP])
    with pytest.raises(NbpipeError, match="the step before it is pip x==1"):
        lowered([s.Pip(packages=("x==1",)), PIP])
    with pytest.raises(NbpipeError, match="pip: beside 'yes' is not true or false"):
        s.Pip(packages=("x==1",), beside="yes")  # type: ignore[arg-type]
    with pytest.raises(NbpipeError, match="runs as a numeric uid:gid, not 'jovyan'"):
        s.Pip(packages=("x==1",), user="jovyan", beside=True)
    base = family().resolve("base")
    with pytest.raises(NbpipeError, match="pip x==1: beside=True needs an apt step just before"):
        base.with_env("A", "b").with_pip("x==1", beside=True)
    with pytest.raises(NbpipeError, match="for the same platforms"):
        base.with_apt("ffmpeg", platforms=("linux/amd64",)).with_pip("x==1", beside=True)
    assert base.with_apt("ffmpeg").with_pip("x==1", beside=True).steps[-1].beside


def test_jupyter_scipy_installs_its_first_pip_step_beside_its_apt_step() -> None:
    img = family().resolve("jupyter-scipy")
    for platform in img.platforms:  # the lock splits each step by platform: still adjacent
        steps = img.steps_for(platform)
        apt, full, extra = [st for st in steps if isinstance(st, (s.Apt, s.Pip))]
        assert isinstance(apt, s.Apt) and full.beside and not extra.beside
        runs = [op for op in img.ops(platform) if isinstance(op, Exec)]
        assert len(runs) == 2  # apt + pip at once, then the scipy extras


needs_root = pytest.mark.skipif(
    os.geteuid() != 0 or not shutil.which("setpriv"),
    reason="setpriv --clear-groups needs root (the CI runs as root)",
)


def run(op: Exec, tmp: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["dash" if shutil.which("dash") else "sh", "-c", op.script],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=tmp,
    )


@needs_root
def test_both_halves_really_run_at_the_same_time_each_with_its_own_env(tmp_path: Path) -> None:
    # each half waits for the other's mark: run one after the other, both would time out
    wait = "n=0; while [ ! -e {f} ]; do sleep 0.1; n=$((n+1)); [ $n -lt 100 ] || exit 7; done"
    first = Exec(f'set -eu\ntouch a\n{wait.format(f="b")}\necho "${{MARK:-unset}}" > first')
    me = f"{os.getuid()}:{os.getgid()}"
    second = Exec(
        f'set -eu\ntouch b\n{wait.format(f="a")}\necho "$MARK" > second',
        user=me,
        env=(("MARK", "second's own"),),
    )
    r = run(at_once(first, second), tmp_path)
    assert r.returncode == 0, r.stderr
    assert (tmp_path / "first").read_text() == "unset\n"
    assert (tmp_path / "second").read_text() == "second's own\n"


@needs_root
@pytest.mark.parametrize("failing", ["first", "second"])
def test_the_run_fails_when_either_half_fails(tmp_path: Path, failing: str) -> None:
    me = f"{os.getuid()}:{os.getgid()}"
    first = Exec("set -eu\nexit 3" if failing == "first" else "set -eu\ntrue")
    second = Exec("set -eu\nexit 4" if failing == "second" else "set -eu\ntrue", user=me)
    r = run(at_once(first, second), tmp_path)
    assert r.returncode == (3 if failing == "first" else 4)
