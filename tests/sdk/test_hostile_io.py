"""nbpipe.inputs.safe_io: bounded reads, files kept inside their folder, atomic state, the lock."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from nbpipe.inputs import safe_io
from nbpipe.errors import NbpipeError, SpecError

BOMB = "a: &a [x, x, x, x, x, x, x, x, x]\n" + "".join(
    f"{c}: &{c} [*{p}, *{p}, *{p}, *{p}, *{p}, *{p}, *{p}, *{p}, *{p}]\n"
    for p, c in zip("abcdefgh", "bcdefghi"))


def test_non_utf8_names_file_and_line(tmp_path: Path) -> None:
    f = tmp_path / "requirements.txt"
    f.write_bytes(b"numpy==2\n\xff\xfe\n")
    with pytest.raises(SpecError, match=r"requirements.txt:2: not UTF-8 text"):
        safe_io.read_text(f, error=SpecError)


def test_reads_are_bounded_and_regular_files_only(tmp_path: Path) -> None:
    big = tmp_path / "big"
    big.write_bytes(b"x" * 2000)
    with pytest.raises(NbpipeError, match="larger than 1,000 bytes"):
        safe_io.read_bytes(big, limit=1000)
    with pytest.raises(NbpipeError, match="a folder"):
        safe_io.read_text(tmp_path)
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    with pytest.raises(NbpipeError, match="not a regular file"):
        safe_io.read_text(fifo)  # would block forever if opened for a plain read
    with pytest.raises(NbpipeError, match="cannot read"):
        safe_io.read_text(tmp_path / "missing")


def test_inside_refuses_every_way_out(tmp_path: Path) -> None:
    root = tmp_path / "spec"
    (root / "sub").mkdir(parents=True)
    (root / "ok.cfg").write_text("ok")
    (tmp_path / "secret").write_text("password")
    (root / "link-out").symlink_to(tmp_path / "secret")
    (root / "sub" / "link-in").symlink_to(root / "ok.cfg")
    assert safe_io.inside(root, "sub/link-in", "files[0].source") == (root / "ok.cfg").resolve()
    for bad in ("/etc/shadow", "../secret", "sub/../../secret", "link-out", ""):
        with pytest.raises(SpecError) as exc:
            safe_io.inside(root, bad, "files[0].source", error=SpecError)
        assert "password" not in str(exc.value)


def test_alias_bomb_is_refused_quickly() -> None:
    start = time.monotonic()
    with pytest.raises(NbpipeError, match="too large once its aliases"):
        safe_io.compose_yaml(BOMB, "environment.yml")
    assert time.monotonic() - start < 2


def test_deep_nesting_is_refused_not_a_recursion_error(tmp_path: Path) -> None:
    for text in ("[" * 20000 + "]" * 20000, "a:\n" + "".join(" " * i + "b:\n" for i in range(1, 80))):
        with pytest.raises(NbpipeError, match="nested too deeply"):
            safe_io.compose_yaml(text, "x.yml")
    deep = tmp_path / "plan.json"
    deep.write_text("[" * 20000 + "]" * 20000)
    with pytest.raises(NbpipeError, match="nested too deeply"):
        safe_io.load_json(deep)


def test_load_yaml_gives_plain_data(tmp_path: Path) -> None:
    f = tmp_path / "environment.yml"
    f.write_text("a: &x [1, two]\nb: *x\n")
    assert safe_io.load_yaml(f) == {"a": [1, "two"], "b": [1, "two"]}
    f.write_text("a: [\n")
    with pytest.raises(NbpipeError, match=r"environment.yml:2: not valid YAML"):
        safe_io.load_yaml(f)


def test_atomic_write_leaves_old_or_new_never_part(tmp_path: Path) -> None:
    f = tmp_path / "state" / "record.json"
    safe_io.atomic_write(f, "old")


    real = os.fsync
    try:
        os.fsync = lambda fd: (_ for _ in ()).throw(OSError("disk full"))  # type: ignore[assignment]
        with pytest.raises(OSError):
            safe_io.atomic_write(f, "new and longer")
    finally:
        os.fsync = real  # type: ignore[assignment]
    assert f.read_text() == "old"
    assert sorted(p.name for p in f.parent.iterdir()) == ["record.json"]  # no temp left


def test_damaged_record_is_a_warning(tmp_path: Path) -> None:
    f = tmp_path / "r.json"
    warned: list[str] = []
    f.write_text('[{"name": "http", "stat')  # cut short
    assert safe_io.read_record(f, lambda d: isinstance(d, list), warned.append) is None
    f.write_text('{"x": 1}')
    assert safe_io.read_record(f, lambda d: isinstance(d, list), warned.append) is None
    assert len(warned) == 2 and all("damaged record" in w for w in warned)
    f.write_text("[]")
    assert safe_io.read_record(f, lambda d: isinstance(d, list), warned.append) == []


def test_second_run_waits_then_names_the_holder(tmp_path: Path) -> None:
    holder = subprocess.Popen(
        [sys.executable, "-c", "import sys, time; from pathlib import Path; "
         "from nbpipe.inputs.safe_io import locked\n"
         "with locked(Path(sys.argv[1])):\n    print('held', flush=True); time.sleep(30)",
         str(tmp_path)], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        heard: list[str] = []
        with pytest.raises(NbpipeError, match=f"in use by process {holder.pid}"):
            with safe_io.locked(tmp_path, wait=0.5, on_wait=heard.append):
                pass
        assert heard == [f"waiting: {tmp_path} is in use by process {holder.pid}"]
    finally:
        holder.kill()
        holder.wait()
    with safe_io.locked(tmp_path, wait=1):  # free again once the holder is gone
        with safe_io.locked(tmp_path, wait=0):  # and reentrant in one process
            pass


AUTH_HOLDER = """
import signal, sys, threading, time
# As started from a terminal, whoever started the suite: a background job (`pytest &`)
# or nohup hands its children SIGINT/SIGHUP ignored, and an ignored signal ends nothing.
signal.signal(signal.SIGINT, signal.default_int_handler)
for sig in (signal.SIGTERM, signal.SIGHUP):
    signal.signal(sig, signal.SIG_DFL)
from nbpipe.engines.registry import Registry
from nbpipe.inputs.safe_io import exit_on_signals

def hold():
    with Registry.parse("127.0.0.1:5000").authfile() as auth:
        print(auth, flush=True)
        time.sleep(60)

if sys.argv[1] == "thread":  # as publish does: the file is held by a worker thread
    exit_on_signals()  # what nbpipe.cli.commands.main does first
    t = threading.Thread(target=hold, daemon=True)
    t.start()
    t.join()
else:
    hold()
"""


@pytest.mark.parametrize("where,sig,code", [("main", "SIGTERM", 143), ("thread", "SIGTERM", 143),
                                            ("thread", "SIGHUP", 129), ("main", "SIGINT", -2)])
def test_registry_auth_file_goes_on_any_exit(where: str, sig: str, code: int) -> None:
    import signal

    env = {**os.environ, "NBPIPE_REGISTRY_USER": "u", "NBPIPE_REGISTRY_PASSWORD": "hunter2"}
    p = subprocess.Popen([sys.executable, "-c", AUTH_HOLDER, where], stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, text=True, env=env)
    try:
        auth = Path(p.stdout.readline().strip())
        assert "hunter2" not in auth.read_text() and auth.stat().st_mode & 0o077 == 0
        p.send_signal(getattr(signal, sig))
        assert p.wait(timeout=30) == code
    finally:
        p.kill()
    assert not auth.exists() and not auth.parent.exists()
