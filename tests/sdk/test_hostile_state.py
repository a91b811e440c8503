"""State nbpipe writes (probe records, reports, the lock file): whole or not at all, and a
damaged record is a warning and gets rebuilt, never a failed build (issue 11)."""

from __future__ import annotations

import json
from pathlib import Path

import anyio
import pytest

from nbpipe.locks import lock as locks
from nbpipe.probing import prober
from nbpipe.run import report
from nbpipe.recipe.catalog import Catalog
from nbpipe.errors import NbpipeError
from nbpipe.run.backends import Built
from nbpipe.run.pipeline import Pipeline
from nbpipe.probes.result import ProbeResult, Status
from nbpipe.run.report import ImageResult

IMAGE_ID = "sha256:" + "b" * 64
GOOD = [ProbeResult("http", Status.PASSED, "200", 0.5)]


def pipeline(tmp_path: Path, events: list[str]) -> Pipeline:
    return Pipeline.local(Catalog(), None, "linux/amd64", state_dir=tmp_path,  # type: ignore[arg-type]
                    on_event=lambda name, what: events.append(what))


@pytest.mark.parametrize("damage", ['[{"name": "http", "sta', '{"not": "a list"}',
                                    '[{"name": "http", "status": "failed", "message": "",'
                                    ' "seconds": 1}]', "\udcff", "[" * 5000])
def test_a_damaged_probe_record_is_a_warning_and_is_rebuilt(tmp_path: Path, monkeypatch,
                                                            damage: str) -> None:
    record = tmp_path / "probes" / f"{'b' * 64}.json"
    record.parent.mkdir()
    record.write_text(damage, errors="surrogateescape")
    runs: list[str] = []
    monkeypatch.setattr(prober, "probe", lambda engine, ref, **kw: (runs.append(ref) or GOOD, ""))
    events: list[str] = []
    res = ImageResult("team", "linux/amd64", "sha256:" + "c" * 64, "localhost/nbpipe/team:1")
    anyio.run(pipeline(tmp_path, events)._probe, res, Built(IMAGE_ID))
    assert runs == ["localhost/nbpipe/team:1"]  # probed again, not failed
    assert any(e.startswith("warning: ignoring the damaged record") for e in events), events
    assert json.loads(record.read_text())[0]["status"] == "passed"  # rebuilt, whole
    assert [p.name for p in record.parent.iterdir()] == [record.name]  # no temp files left
    runs.clear()
    anyio.run(pipeline(tmp_path, events)._probe, res, Built(IMAGE_ID))  # and now it is trusted
    assert runs == [] and res.probes == GOOD


def test_reports_replace_the_old_ones_whole(tmp_path: Path, monkeypatch) -> None:
    results = [ImageResult("team", "linux/amd64", "sha256:" + "c" * 64)]
    js, md = report.write(results, tmp_path)
    before = js.read_text()

    def broken(*a, **kw):
        raise OSError("disk full")

    monkeypatch.setattr(report, "markdown", broken)
    with pytest.raises(OSError):
        report.write(results * 2, tmp_path)
    assert js.read_text() != "" and json.loads(js.read_text())  # old or new, never cut
    assert sorted(p.name for p in tmp_path.iterdir()) == ["nbpipe-report.json", "nbpipe-report.md"]
    assert before


@pytest.mark.parametrize("body", ["[1, 2]", '{"locks": []}', '{"locks": {"a/0/x": "lines"}}',
                                  '{"locks": {"a/0/x": {"linux/amd64": 3}}}', "{"])
def test_a_lock_file_of_the_wrong_shape_is_one_line(tmp_path: Path, body: str) -> None:
    path = tmp_path / "lock.json"
    path.write_text(body)
    with pytest.raises(NbpipeError) as exc:
        locks.load(path)
    assert str(exc.value).startswith(str(path)) and "\n" not in str(exc.value)


def test_lock_file_is_saved_whole(tmp_path: Path) -> None:
    path = tmp_path / "lock.json"
    locks.save(path, {"a/0/x": {"linux/amd64": "vim=1\n"}})
    assert locks.load(path) == {"a/0/x": {"linux/amd64": "vim=1\n"}}
    assert [p.name for p in tmp_path.iterdir()] == ["lock.json"]


def test_probes_never_follow_a_link_the_container_left_in_its_home(tmp_path: Path) -> None:
    """The image under test writes into the home volume, which is a folder of this
    machine: a symlink it leaves there must not make the prober read (and report) a
    file of this machine."""
    from nbpipe.probes import checks
    from nbpipe.probes.result import ProbeFailure

    secret = tmp_path / "shadow"
    secret.write_text("root:hunter2\n")
    home = tmp_path / "home"
    home.mkdir()
    (home / checks.INIT_MARKER).symlink_to(secret)
    (home / ".bashrc").write_text("kept\n")
    assert checks.home_text(home, ".bashrc") == "kept\n"
    assert checks.home_text(home, "missing") is None
    with pytest.raises(ProbeFailure) as exc:
        checks.home_text(home, checks.INIT_MARKER)
    assert "leads outside" in str(exc.value) and "hunter2" not in str(exc.value)
