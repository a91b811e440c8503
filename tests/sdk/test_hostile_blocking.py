"""A repository that would make a tool block or run for minutes (issue 21, kind 2 and the
repository half of kind 3): special files are refused before git opens anything, every
git process has a time limit, and .gitignore patterns and nested checkouts are bounded."""

from __future__ import annotations

import os
import socket
import string
import tempfile
import time
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from nbpipe.inputs import repofiles
from nbpipe.errors import SpecError
from tests.sdk import bounded


def repo_with(tmp_path: Path) -> Path:
    repo = tmp_path / "repo"
    repo.mkdir()
    (repo / "requirements.txt").write_text("numpy==2.1.0\n")
    (repo / "notes.md").write_text("hi\n")
    return repo


def checkout(folder: Path) -> Path:
    """A nested git checkout as git recognises one (HEAD, objects/, refs/), made by hand:
    `git init` per folder would cost a process each."""
    git = folder / ".git"
    (git / "objects").mkdir(parents=True)
    (git / "refs").mkdir()
    (git / "HEAD").write_text("ref: refs/heads/main\n")
    (folder / "file.txt").write_text("x\n")
    return git


# -- the CLI, bounded: one line, in seconds, never a hang -------------------------------

def test_a_fifo_named_gitignore_is_refused_before_git_opens_it(tmp_path: Path) -> None:
    repo = repo_with(tmp_path)
    os.mkfifo(repo / ".gitignore")
    run = bounded.nbpipe("export", "--from-repo", str(repo), cwd=tmp_path, timeout=20)
    run.one_line_error(f"{repo / '.gitignore'}: a FIFO (named pipe)", "remove it")


def test_a_fifo_at_a_nested_checkouts_head_is_refused(tmp_path: Path) -> None:
    repo = repo_with(tmp_path)
    head = checkout(repo / "sub") / "HEAD"
    head.unlink()
    os.mkfifo(head)
    run = bounded.nbpipe("plan", "--from-repo", str(repo), cwd=tmp_path, timeout=20)
    run.one_line_error(f"{head}: a FIFO")


def test_a_gitdir_file_leading_to_a_fifo_head_is_refused(tmp_path: Path) -> None:
    repo = repo_with(tmp_path)
    elsewhere = tmp_path / "modules" / "sub"
    elsewhere.mkdir(parents=True)
    os.mkfifo(elsewhere / "HEAD")
    (repo / "sub").mkdir()
    (repo / "sub" / ".git").write_text(f"gitdir: {os.path.relpath(elsewhere, repo / 'sub')}\n")
    run = bounded.nbpipe("export", "--from-repo", str(repo), cwd=tmp_path, timeout=20)
    run.one_line_error("HEAD: a FIFO")


def test_a_link_named_gitignore_to_an_outside_fifo_is_refused(tmp_path: Path) -> None:
    repo = repo_with(tmp_path)
    os.mkfifo(tmp_path / "pipe")
    (repo / "docs").mkdir()
    (repo / "docs" / ".gitignore").symlink_to(tmp_path / "pipe")
    run = bounded.nbpipe("export", "--from-repo", str(repo), cwd=tmp_path, timeout=20)
    run.one_line_error(f"{repo / 'docs' / '.gitignore'}: a link to a FIFO")


def test_sockets_and_fifos_in_ignored_folders_are_refused_too(tmp_path: Path) -> None:
    repo = repo_with(tmp_path)
    (repo / ".gitignore").write_text("run/\n")
    (repo / "run").mkdir()
    with socket.socket(socket.AF_UNIX) as s:
        s.bind(str(repo / "run" / "server.sock"))
        with pytest.raises(SpecError, match=r"server.sock: a socket"):
            repofiles.collect(repo)


def test_a_special_file_name_with_escapes_is_never_printed_raw(tmp_path: Path) -> None:
    repo = repo_with(tmp_path)
    os.mkfifo(repo / "a\x1b[2Jb")
    run = bounded.nbpipe("export", "--from-repo", str(repo), cwd=tmp_path, timeout=20)
    line = run.one_line_error("a FIFO")
    assert "\x1b" not in run.err and "\\x1b[2Jb" in line


def test_a_pathological_gitignore_is_refused_naming_its_line(tmp_path: Path) -> None:
    repo = repo_with(tmp_path)
    for i in range(5000):
        (repo / f"{'a' * 40}{i}").touch()
    (repo / ".gitignore").write_text("*.pyc\n# a comment with * * *\n" + "*a*a*a*a*b\n" * 20000)
    run = bounded.nbpipe("export", "--from-repo", str(repo), cwd=tmp_path, timeout=20)
    run.one_line_error(f"{repo / '.gitignore'}:3: a pattern with 5 wildcards (*)")
    assert run.seconds < 15


@pytest.mark.parametrize("text,words", [
    ("*.log\n" * (repofiles.MAX_IGNORE_PATTERNS + 1), "more than 2,000 patterns"),
    ("#" * (repofiles.MAX_IGNORE_BYTES + 1), "larger than 262,144 bytes"),
    ("**/build/**/*.o\n", "a pattern with 3 wildcards"),
])
def test_gitignore_limits_are_one_line(tmp_path: Path, text: str, words: str) -> None:
    repo = repo_with(tmp_path)
    (repo / ".gitignore").write_text(text)
    with pytest.raises(SpecError, match=words):
        repofiles.collect(repo)


def test_gitignore_limits_hold_across_files(tmp_path: Path) -> None:
    repo = repo_with(tmp_path)
    half = repofiles.MAX_IGNORE_PATTERNS // 2 + 1
    for d in ("a", "b"):
        (repo / d).mkdir()
        (repo / d / ".gitignore").write_text("*.tmp\n" * half)
    with pytest.raises(SpecError, match="more than 2,000 patterns together"):
        repofiles.collect(repo)
    third = repofiles.MAX_IGNORE_BYTES // 3 + 1
    for d in ("a", "b", "c"):
        (repo / d).mkdir(exist_ok=True)
        (repo / d / ".gitignore").write_text("#" * third)
    with pytest.raises(SpecError, match="more than 256 KiB together"):
        repofiles.collect(repo)


def test_ordinary_gitignores_pass(tmp_path: Path) -> None:
    repo = repo_with(tmp_path)
    (repo / ".gitignore").write_text("__pycache__/\n*.py[cod]\n**/build/\n.ipynb_checkpoints\n"
                                     "*.egg-info*\n!keep.pyc\n" * 300)
    (repo / "x.pyc").touch()
    assert [rel for rel, _, _ in repofiles.collect(repo)] == [".gitignore", "notes.md",
                                                              "requirements.txt"]


def test_nested_checkouts_are_bounded(tmp_path: Path, monkeypatch) -> None:
    repo = repo_with(tmp_path)
    for i in range(6):
        checkout(repo / f"sub{i}")
    monkeypatch.setattr(repofiles, "MAX_CHECKOUTS", 6)
    assert len(repofiles.collect(repo)) == 2 + 6  # the limit itself is allowed
    monkeypatch.setattr(repofiles, "MAX_CHECKOUTS", 5)
    with pytest.raises(SpecError, match="more than 5 nested git checkouts"):
        repofiles.collect(repo)


def test_thousands_of_nested_checkouts_are_one_line_in_seconds(tmp_path: Path) -> None:
    repo = repo_with(tmp_path)
    for i in range(2000):
        checkout(repo / f"c{i:04}")
    run = bounded.nbpipe("export", "--from-repo", str(repo), cwd=tmp_path, timeout=60)
    run.one_line_error("more than 100 nested git checkouts")
    assert run.seconds < 30


def test_too_many_entries_is_one_line(tmp_path: Path, monkeypatch) -> None:
    repo = repo_with(tmp_path)
    (repo / ".gitignore").write_text("data/\n")
    (repo / "data").mkdir()
    for i in range(50):
        (repo / "data" / str(i)).touch()
    monkeypatch.setattr(repofiles, "MAX_ENTRIES", 50)
    with pytest.raises(SpecError, match="more than 50 files and folders"):
        repofiles.collect(repo)


def test_every_git_process_has_a_time_limit(tmp_path: Path, monkeypatch) -> None:
    """A git that never answers (what a FIFO the walk cannot see would do) is stopped."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    fake = bin_dir / "git"
    fake.write_text("#!/bin/sh\nexec sleep 60\n")
    fake.chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}:{os.environ['PATH']}")
    monkeypatch.setattr(repofiles, "GIT_TIMEOUT", 1.0)
    repo = repo_with(tmp_path)
    start = time.monotonic()
    with pytest.raises(SpecError) as exc:
        repofiles.collect(repo)
    assert time.monotonic() - start < 10
    assert str(exc.value) == (f"{repo}: git init ran longer than 1 s listing the files and was "
                              "stopped (a huge tree, or a .gitignore git is slow on?)")


# -- property: any tree of files, folders, links, FIFOs and odd names ------------------

NAME = st.text(alphabet=string.ascii_letters + string.digits + " -_.é\x1b\t", min_size=1,
               max_size=5).filter(lambda n: n not in (".", ".."))
KIND = st.sampled_from(["file", "dir", "fifo", "link-in", "link-out", "link-dangling",
                        "link-fifo", "gitignore", "checkout"])


@settings(max_examples=30, deadline=None,
          suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.tuples(st.lists(NAME, min_size=1, max_size=3), KIND), max_size=10))
def test_any_tree_is_listed_or_refused_in_one_line_never_a_hang(entries) -> None:
    import tracemalloc

    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        (root / "outside").write_text("secret\n")
        os.mkfifo(root / "outside-fifo")
        repo = root / "repo"
        repo.mkdir()
        (repo / "README.md").write_text("hi\n")
        fifos = 0
        for parts, kind in entries:
            p = repo.joinpath(*parts)
            try:
                p.parent.mkdir(parents=True, exist_ok=True)
            except OSError:
                continue
            if os.path.lexists(p) or p.parent.is_symlink():
                continue
            if kind == "file":
                p.write_text("x")
            elif kind == "dir":
                p.mkdir()
            elif kind == "fifo":
                os.mkfifo(p)
                fifos += 1
            elif kind == "link-in":
                p.symlink_to(repo / "README.md")
            elif kind == "link-out":
                p.symlink_to(root / "outside")
            elif kind == "link-dangling":
                p.symlink_to(root / "nowhere")
            elif kind == "link-fifo":
                p.symlink_to(root / "outside-fifo")
                fifos += 1
            elif kind == "gitignore":
                p.mkdir()
                (p / ".gitignore").write_text("*.x\n" + parts[-1].replace("\t", "") + "\n")
            else:
                checkout(p)
        tracemalloc.start()
        start = time.monotonic()
        try:
            files = repofiles.collect(repo)
            error = None
        except SpecError as exc:
            error = str(exc)
        finally:
            seconds = time.monotonic() - start
            peak = tracemalloc.get_traced_memory()[1]
            tracemalloc.stop()
        assert seconds < 20 and peak < 100 << 20
        if fifos:
            assert error is not None and "FIFO" in error, error
        if error is not None:
            assert "\n" not in error and "secret" not in error
            return
        for rel, data, mode in files:
            assert (repo / rel).resolve().is_relative_to(repo.resolve())
            assert data != b"secret\n" and mode in (0o664, 0o775)


def test_a_registry_that_never_answers_is_one_line(tmp_path: Path, monkeypatch) -> None:
    """`--registry` is input too: a host that accepts and never answers is stopped."""
    from nbpipe.engines import registry

    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "skopeo").write_text("#!/bin/sh\nexec sleep 60\n")
    (bin_dir / "skopeo").chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}:{os.environ['PATH']}")
    monkeypatch.setattr(registry, "LOOKUP_TIMEOUT", 1.0)
    start = time.monotonic()
    with pytest.raises(registry.NbpipeError) as exc:
        registry.Registry.parse("10.0.0.1:5000/acme").manifest("10.0.0.1:5000/acme/x:1", None)
    assert time.monotonic() - start < 10
    assert str(exc.value) == ("registry 10.0.0.1:5000: no answer within 1 s for "
                              "10.0.0.1:5000/acme/x:1; check the address and the network")


def test_a_build_that_never_ends_is_stopped_naming_its_log(tmp_path: Path, monkeypatch) -> None:
    """A build runs the repository's postBuild: bounded too (a fake podman that hangs)."""
    from nbpipe.recipe import platforms as plat
    from nbpipe.engines import dockerfile, oci
    from nbpipe.errors import BuildError
    from nbpipe.recipe.image import BaseRef, Image
    from nbpipe.recipe.options import BuildOptions

    podman = tmp_path / "podman"
    podman.write_text("#!/bin/sh\nexec sleep 60\n")
    podman.chmod(0o755)
    monkeypatch.setattr(oci, "BUILD_TIMEOUT", 1)
    img = Image.from_base(BaseRef("example.org/root", {plat.AMD64: "sha256:" + "1" * 64}),
                          "t").with_run("sleep infinity")
    log = tmp_path / "logs" / "t.log"
    start = time.monotonic()
    with pytest.raises(BuildError) as exc:
        oci.OciEngine("podman", str(podman), None).build(
            dockerfile.render(img, plat.AMD64), "localhost/nbpipe/t:1", plat.AMD64,
            BuildOptions(), log)
    assert time.monotonic() - start < 10
    assert str(exc.value) == ("localhost/nbpipe/t:1: the build ran longer than 1 s and was "
                              f"stopped; its log: {log}")
