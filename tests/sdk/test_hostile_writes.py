"""What nbpipe writes never follows a link it did not make (issue 21, kind 1), and an
output folder it cannot use is one sentence (kind 6): export, reports, probe records,
the lock file, SBOMs, scaffolds, build logs and the state lock all go through
safe_io.OutDir / atomic_write / out_dir."""

from __future__ import annotations

import hashlib
import os
import string
import tempfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from nbpipe.locks import lock as locks
from nbpipe.run import report
from nbpipe.inputs import safe_io
from nbpipe.cli import scaffold
from nbpipe.engines.dockerfile import Rendered
from nbpipe.errors import NbpipeError
from nbpipe.run.report import ImageResult
from tests.sdk import bounded


def snapshot(folder: Path) -> dict[str, str]:
    """Every entry under ``folder`` (links as their text, files by hash): to prove that
    nothing outside the output folder changed."""
    out: dict[str, str] = {}
    for dirpath, dirnames, filenames in os.walk(folder):
        for name in dirnames + filenames:
            p = Path(dirpath) / name
            rel = str(p.relative_to(folder))
            if p.is_symlink():
                out[rel] = "-> " + os.readlink(p)
            elif p.is_file():
                out[rel] = hashlib.sha256(p.read_bytes()).hexdigest()
            else:
                out[rel] = "dir"
    return out


@pytest.fixture()
def planted(tmp_path: Path) -> tuple[Path, Path]:
    """A cloned repository that ignores build/ but commits links inside it (the issue's
    example), and the outside folder the links point at."""
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "victim").write_text("keep me\n")
    repo = tmp_path / "repo"
    (repo / "build").mkdir(parents=True)
    (repo / ".gitignore").write_text("build/\n")
    (repo / "requirements.txt").write_text("numpy==2.1.0\n")
    (repo / "notes.md").write_text("hello\n")
    (repo / "build" / "Dockerfile").symlink_to(outside / "victim")
    (repo / "build" / "trees").symlink_to(outside)
    return repo, outside


def test_export_refuses_a_planted_folder_link_and_writes_nothing_outside(planted) -> None:
    repo, outside = planted
    before = snapshot(outside)
    run = bounded.nbpipe("export", "--from-repo", str(repo), "--out", str(repo / "build"),
                         cwd=repo.parent, timeout=30)
    run.one_line_error(f"{repo / 'build' / 'trees'}: is a symbolic link where nbpipe writes a "
                       "folder")
    assert snapshot(outside) == before


def test_export_replaces_a_planted_file_link_never_writes_through_it(planted) -> None:
    repo, outside = planted
    (repo / "build" / "trees").unlink()
    before = snapshot(outside)
    run = bounded.nbpipe("export", "--from-repo", str(repo), "--out", str(repo / "build"),
                         cwd=repo.parent, timeout=30)
    assert run.rc == 0, run.err
    assert snapshot(outside) == before  # the victim is intact
    dockerfile = repo / "build" / "Dockerfile"
    assert not dockerfile.is_symlink() and dockerfile.read_text().startswith("# nbpipe: repo")


def test_export_refuses_a_link_below_a_folder_it_makes(tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    spec = tmp_path / "team.yaml"
    spec.write_text("name: team\nparent: jupyter\nfiles: [{path: /etc/x, content: hi}]\n")
    out = tmp_path / "out"
    out.mkdir()
    (out / "files").symlink_to(outside)  # where the COPY sources go
    run = bounded.nbpipe("export", "-f", str(spec), "--out", str(out), cwd=tmp_path)
    run.one_line_error(f"{out / 'files'}: is a symbolic link")
    assert list(outside.iterdir()) == []


@pytest.mark.parametrize("target", ["missing/nowhere", "real"])
def test_an_output_folder_that_is_a_link_is_one_sentence(tmp_path: Path, target: str) -> None:
    (tmp_path / "real").mkdir()
    (tmp_path / "out").symlink_to(tmp_path / target)
    spec = tmp_path / "team.yaml"
    spec.write_text("name: team\nparent: jupyter\n")
    run = bounded.nbpipe("export", "-f", str(spec), "--out", "out", cwd=tmp_path)
    line = run.one_line_error("--out out: is a symbolic link", "remove the link")
    assert ("does not exist" in line) == (target != "real")
    assert list((tmp_path / "real").iterdir()) == []
    assert not (tmp_path / "missing").exists()


def test_an_output_folder_in_a_read_only_folder_is_one_sentence(tmp_path: Path,
                                                                monkeypatch) -> None:
    def denied(self, *a, **kw):
        raise PermissionError(13, "Permission denied", str(self))

    monkeypatch.setattr(Path, "mkdir", denied)  # what a read-only parent does to a non-root user
    with pytest.raises(NbpipeError) as exc:
        safe_io.out_dir(tmp_path / "ro" / "out", "--out")
    assert str(exc.value) == f"--out {tmp_path / 'ro' / 'out'}: cannot make this folder: " \
                             "Permission denied"


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes through folder permissions; the "
                    "monkeypatched test above covers the message")
def test_a_read_only_parent_for_real(tmp_path: Path) -> None:
    ro = tmp_path / "ro"
    ro.mkdir(mode=0o555)
    spec = tmp_path / "team.yaml"
    spec.write_text("name: team\nparent: jupyter\n")
    run = bounded.nbpipe("export", "-f", str(spec), "--out", str(ro / "out"), cwd=tmp_path)
    run.one_line_error("cannot make this folder")


def test_an_output_path_that_is_a_file_is_one_sentence(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("x")
    with pytest.raises(NbpipeError, match="exists and is not a folder"):
        safe_io.out_dir(tmp_path / "file")
    with pytest.raises(NbpipeError, match="cannot make this folder"):
        safe_io.out_dir(tmp_path / "file" / "below")


def test_reports_replace_planted_links_and_refuse_a_linked_folder(tmp_path: Path) -> None:
    victim = tmp_path / "victim"
    victim.write_text("keep me\n")
    folder = tmp_path / "reports"
    folder.mkdir()
    (folder / "nbpipe-report.json").symlink_to(victim)
    (folder / "nbpipe-report.md").symlink_to(tmp_path / "dangling")
    results = [ImageResult("team", "linux/amd64", "sha256:" + "c" * 64)]
    js, md = report.write(results, folder)
    assert victim.read_text() == "keep me\n" and not (tmp_path / "dangling").exists()
    assert not js.is_symlink() and not md.is_symlink() and js.read_text().startswith("[")
    (tmp_path / "linked").symlink_to(folder)
    with pytest.raises(NbpipeError, match="is a symbolic link"):
        report.write(results, tmp_path / "linked")


def test_the_lock_file_is_replaced_not_written_through(tmp_path: Path) -> None:
    victim = tmp_path / "victim"
    victim.write_text("keep me\n")
    (tmp_path / "images").mkdir()
    path = tmp_path / "images" / "lock.json"
    path.symlink_to(victim)
    locks.save(path, {"a/0/x": {"linux/amd64": "vim=1\n"}})
    assert victim.read_text() == "keep me\n"
    assert not path.is_symlink() and locks.load(path) == {"a/0/x": {"linux/amd64": "vim=1\n"}}


def test_the_state_lock_never_truncates_what_a_planted_link_points_at(tmp_path: Path) -> None:
    victim = tmp_path / "victim"
    victim.write_text("keep me\n")
    state = tmp_path / ".nbpipe"
    state.mkdir()
    (state / "lock").symlink_to(victim)
    with pytest.raises(NbpipeError, match="cannot open the lock file"):
        with safe_io.locked(state, wait=0):
            pass
    assert victim.read_text() == "keep me\n"
    (state / "lock").unlink()
    os.mkfifo(state / "lock")  # a FIFO there: refused, never a hang
    with pytest.raises(NbpipeError, match="not a regular file"):
        with safe_io.locked(state, wait=0):
            pass
    linked = tmp_path / "linked-state"
    linked.symlink_to(tmp_path / "elsewhere")
    with pytest.raises(NbpipeError, match="is a symbolic link"):
        with safe_io.locked(linked, wait=0):
            pass
    assert not (tmp_path / "elsewhere").exists()


def test_scaffolds_never_write_through_links(tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    repo = tmp_path / "team"
    repo.mkdir()
    (repo / ".github").symlink_to(outside)
    with pytest.raises(NbpipeError, match=r"\.github: is a symbolic link"):
        scaffold.write_repo("team-x", "jupyter", repo)
    assert list(outside.iterdir()) == []
    assert sorted(p.name for p in repo.iterdir()) == [".github"]  # all or nothing
    (repo / ".github").unlink()
    (repo / "README.md").symlink_to(tmp_path / "nowhere")  # dangling: still "exists"
    with pytest.raises(NbpipeError, match="README.md exists; not overwriting it"):
        scaffold.write_repo("team-x", "jupyter", repo)
    assert not (tmp_path / "nowhere").exists()


def test_sbom_probe_record_and_log_writers_replace_links(tmp_path: Path) -> None:
    victim = tmp_path / "victim"
    victim.write_text("keep me\n")
    state = tmp_path / "state"
    (state / "probes").mkdir(parents=True)
    (state / "logs").mkdir()
    (state / "probes" / "x.json").symlink_to(victim)
    (state / "logs" / "team-amd64.log").symlink_to(victim)
    safe_io.atomic_write(state / "probes" / "x.json", "[]", root=state)  # a probe record / SBOM
    with safe_io.new_file(state / "logs" / "team-amd64.log") as log:  # a build log
        log.write("building\n")
    assert victim.read_text() == "keep me\n"
    assert (state / "probes" / "x.json").read_text() == "[]"
    assert (state / "logs" / "team-amd64.log").read_text() == "building\n"
    (state / "sbom").symlink_to(tmp_path / "elsewhere")
    with pytest.raises(NbpipeError, match="is a symbolic link"):
        safe_io.atomic_write(state / "sbom" / "team-amd64.cdx.json", "{}", root=state)
    assert not (tmp_path / "elsewhere").exists()


# -- property: any tree of links, files and folders in the output folder --------------

NAMES = st.text(alphabet=string.ascii_letters + " -_.\x1bé", min_size=1, max_size=6).filter(
    lambda n: n not in (".", ".."))
KINDS = st.sampled_from(["file", "dir", "link-out-file", "link-out-dir", "link-dangling",
                         "link-in", "fifo"])
RELS = ["Dockerfile", "files", "trees", "trees/t1", "trees/t1/a", "trees/t1/sub",
        "trees/t1/sub/b"]


@settings(max_examples=40, deadline=None,
          suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.tuples(st.sampled_from(RELS) | NAMES, KINDS), max_size=8))
def test_writing_a_context_over_any_planted_tree_stays_inside(entries) -> None:
    """Rendered.write over an output folder holding anything at the paths it writes:
    it finishes or refuses in one line, quickly, and nothing outside changes."""
    import time
    import tracemalloc

    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        outside = root / "outside"
        (outside / "d").mkdir(parents=True)
        (outside / "f").write_text("keep\n")
        out = root / "out"
        out.mkdir()
        for rel, kind in entries:
            p = out / rel
            if os.path.lexists(p) or not p.parent.is_dir() or p.parent.is_symlink():
                continue
            {"file": lambda: p.write_text("old"), "dir": lambda: p.mkdir(),
             "link-out-file": lambda: p.symlink_to(outside / "f"),
             "link-out-dir": lambda: p.symlink_to(outside / "d"),
             "link-dangling": lambda: p.symlink_to(root / "nowhere"),
             "link-in": lambda: p.symlink_to(out), "fifo": lambda: os.mkfifo(p)}[kind]()
        before = snapshot(outside)
        rendered = Rendered("FROM x\n", "x", files={"files/abc": b"1", "trees/t1/a": b"2",
                                                    "trees/t1/sub/b": b"3"},
                            modes={"trees/t1": 0o775, "trees/t1/sub": 0o775,
                                   "trees/t1/a": 0o664, "trees/t1/sub/b": 0o775})
        tracemalloc.start()
        start = time.monotonic()
        try:
            rendered.write(out)
            ok = True
        except NbpipeError as exc:
            assert "\n" not in str(exc)
            ok = False
        finally:
            seconds = time.monotonic() - start
            peak = tracemalloc.get_traced_memory()[1]
            tracemalloc.stop()
        assert seconds < 5 and peak < 50 << 20
        assert snapshot(outside) == before
        assert not (root / "nowhere").exists()
        if ok:
            for rel, data in rendered.files.items():
                p = out / rel
                assert p.is_file() and not p.is_symlink() and p.read_bytes() == data
                assert all(not q.is_symlink() for q in [p, *p.parents] if q != root and
                           q.is_relative_to(out))
