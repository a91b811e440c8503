"""The bounded engine check the live Dagger tests skip on, and the root off Docker Hub.

Fake `dagger` CLIs (shell scripts) stand for an engine that answers, one that is stopped and
one that never answers; no engine is needed."""

from __future__ import annotations

import re
import time
from pathlib import Path

import pytest

from nbpipe.recipe import platforms as plat
from nbpipe.engines import dagger as lowering
from nbpipe.run import pipeline
from nbpipe.run.machine import Machine
from nbpipe.run.settings import Settings
from nbpipe.engines.dagger_session import parse, reach
from nbpipe.errors import NbpipeError

DIGEST = "sha256:" + "ab" * 32


def fake_cli(tmp_path: Path, body: str) -> str:
    cli = tmp_path / "dagger"
    cli.write_text("#!/bin/sh\n" + body + "\n")
    cli.chmod(0o755)
    return str(cli)


def test_an_engine_that_answers_gives_its_version(tmp_path) -> None:
    cli = fake_cli(tmp_path, 'read q; [ "$1 $2 $3 $4" = "query -M --progress plain" ] && '
                             '[ "$q" = "{version}" ] && echo \'{"version": "v0.21.8"}\'')
    r = reach(cli)
    assert (r.ok, r.version, r.cli) == (True, "v0.21.8", cli)


def test_a_stopped_engine_is_a_reason_naming_the_cli_and_its_last_line(tmp_path) -> None:
    cli = fake_cli(tmp_path, "echo 'connect' >&2; echo 'Error: container state improper' >&2; "
                             "exit 1")
    r = reach(cli)
    assert not r.ok and r.version is None
    assert r.reason == f"{cli} reached no engine (exit 1): Error: container state improper"


def test_an_engine_that_never_answers_is_cut_off_with_what_it_started(tmp_path) -> None:
    # the CLI starts a child (as provisioning an engine does) and both hang
    cli = fake_cli(tmp_path, "(sleep 30; true) & sleep 30")
    t0 = time.monotonic()
    r = reach(cli, timeout=0.5)
    # a bound, not a measurement: a child left alive holds the pipes for its 30 s
    assert time.monotonic() - t0 < 15
    assert not r.ok and "reached no engine within 0.5 s" in r.reason
    # the whole process group was killed, the child too (polled: reaping is asynchronous)
    for _ in range(50):
        left = [p for p in Path("/proc").iterdir() if p.name.isdigit() and cli in _cmdline(p)]
        if not left:
            break
        time.sleep(0.1)
    assert not left


def _cmdline(p: Path) -> str:
    try:
        return (p / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


def test_no_cli_and_a_cli_that_does_not_run(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    assert reach().reason == "no dagger CLI on PATH"
    broken = tmp_path / "dagger"
    broken.write_text("not a program")
    broken.chmod(0o755)
    r = reach(str(broken))
    assert not r.ok and r.reason.startswith(f"{broken} does not run:")


@pytest.mark.parametrize("out", ['{"version": ""}', '{"other": 1}', "not json", '[1]'])
def test_an_answer_without_a_version_is_not_an_engine(out: str) -> None:
    r = parse("dagger", 0, out, "")
    assert not r.ok and r.reason.startswith("dagger query answered no version")


def test_root_ref_needs_a_digest_pinned_reference() -> None:
    ref = lowering.root_ref(f"localhost:5000/nbpipe/root@{DIGEST}")
    assert ref.ref == "localhost:5000/nbpipe/root"
    assert {p: ref.digest(p) for p in plat.ALL} == {p: DIGEST for p in plat.ALL}
    assert ref.pinned(plat.AMD64) == f"localhost:5000/nbpipe/root@{DIGEST}"
    for bad in ("localhost:5000/nbpipe/root:bookworm", f"root@{DIGEST}\nRUN x",
                "root@sha256:abc", f"ROOT@{DIGEST}", ""):
        with pytest.raises(NbpipeError, match="pinned by digest"):
            lowering.root_ref(bad)


def test_rooted_family_builds_on_that_root_with_other_digests(family) -> None:
    other = lowering.rooted(family, f"mirror.example/debian@{DIGEST}")
    assert lowering.rooted(family, "") is family
    assert other.order() == family.order()
    for name in ("base", "jupyter"):
        a, b = family.resolve(name), other.resolve(name)
        assert a.digest(plat.AMD64) != b.digest(plat.AMD64)
        assert b.root.pinned(plat.AMD64) == f"mirror.example/debian@{DIGEST}"
    first = list(lowering.lower(other.resolve("base"), plat.AMD64)._ctx.selections)
    assert (first[1].name, first[1].args) == ("from", {"address": f"mirror.example/debian@{DIGEST}"})


def test_engine_dagger_takes_its_root_from_the_environment(family, monkeypatch) -> None:
    """`nbpipe build --engine dagger` with NBPIPE_DAGGER_ROOT lowers every image on it."""
    from nbpipe.recipe.options import BuildOptions

    seen: list[str] = []

    class Built:
        async def sync(self) -> None:
            return None

    def fake_lower(image, platform, options, **how):
        seen.append(image.root.pinned(platform))
        return Built()

    def build(root: str):
        env = {"DAGGER_SESSION_PORT": "1", "NBPIPE_DAGGER_ROOT": root}
        settings = Settings.from_env(env)
        machine = Machine(family, plat.AMD64, None, dagger="a session", settings=settings)
        return pipeline.build(machine, ["base"], BuildOptions(), settings, probe=False)

    monkeypatch.setattr(lowering, "lower", fake_lower)
    monkeypatch.setattr("dagger.connection", _NoConnection)
    results = build(f"localhost:5000/nbpipe/root@{DIGEST}")
    assert [(r.name, r.status.value) for r in results] == [("base", "built")]
    assert results[0].digest == lowering.rooted(family, f"localhost:5000/nbpipe/root@{DIGEST}"
                                                ).resolve("base").digest(plat.AMD64)
    assert seen == [f"localhost:5000/nbpipe/root@{DIGEST}"]
    with pytest.raises(NbpipeError, match=r"^\$NBPIPE_DAGGER_ROOT 'debian:bookworm': give a "
                                          "registry reference pinned by digest"):
        build("debian:bookworm")


class _NoConnection:
    def __init__(self, *a, **k) -> None:
        pass

    async def __aenter__(self):
        return None

    async def __aexit__(self, *exc) -> None:
        return None


def test_the_live_tests_skip_on_the_bounded_check(tmp_path) -> None:
    """tests/conftest.py's live_dagger fixture asks reach(), never shutil.which alone."""
    text = (Path(__file__).parents[1] / "conftest.py").read_text()
    assert "reach(" in text and "pytest.skip(" in text
    for path in Path(__file__).parents[1].rglob("test_*.py"):
        src = path.read_text()
        if "@pytest.mark.dagger" in src and path.resolve() != Path(__file__).resolve():
            assert 'shutil.which("dagger") is None' not in src, f"{path}: use live_dagger"


def test_env_names_and_version_are_the_ones_the_setup_script_uses() -> None:
    import json

    repo = Path(__file__).parents[2]
    script = (repo / ".ci" / "setup-dagger.sh").read_text()
    assert "export NBPIPE_DAGGER_ROOT=" in script
    built = re.search(r"VERSION=\$\{NBPIPE_DAGGER_VERSION:-(v[0-9.]+)\}", script)
    assert built and json.loads((repo / "dagger.json").read_text())["engineVersion"] == built[1]
