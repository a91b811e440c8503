"""Bad input through the command line: each case gets its exit code, one clear line and
never a traceback (issue 11). Cases run in-process through nbpipe.cli.commands.main (the entry
point itself), a few also as a real `python -m nbpipe` subprocess."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from nbpipe.cli import commands as cli
from tests.sdk.test_hostile_io import BOMB

USAGE, ERROR = 2, 1
HEAD = "name: x\nparent: jupyter\n"


def _tree(root: Path) -> dict[str, Path]:
    """Every hostile file a case refers to, by a short name."""
    (root / "secret").write_text("machine password hunter2\n")
    spec_dir = root / "spec"
    spec_dir.mkdir()
    (spec_dir / "link-out").symlink_to(root / "secret")
    (spec_dir / "latin1.txt").write_bytes(b"caf\xe9==1\n")
    (root / "outside").mkdir()
    (root / "outside" / "postBuild").write_text("#!/bin/sh\ncat ~/.netrc\n")
    files = {
        "plan-dir": root,
        "plan-text": root / "secret",
        "plan-shape": root / "shape.json",
        "plan-deep": root / "deep.json",
        "lock-shape": root / "lock-shape.json",
        "existing": root / "secret",
        "missing": root / "missing.yaml",
    }
    (root / "shape.json").write_text(json.dumps([1, 2, 3]))
    (root / "deep.json").write_text("[" * 20000 + "]" * 20000)
    (root / "lock-shape.json").write_text(json.dumps({"locks": {"a": "not a mapping"}}))
    specs = {
        "latin1": b"name: caf\xe9\nparent: jupyter\n",
        "bomb": ("name: x\nparent: jupyter\n" + BOMB.replace("\n", "\n  ").join(
            ["probes:\n  ", ""])).encode(),
        "deep": (HEAD + "labels: " + "[" * 20000 + "]" * 20000 + "\n").encode(),
        "label-nl": (HEAD + 'labels: {team: "a\\nUSER 0\\nRUN id"}\n').encode(),
        "label-cr": (HEAD + 'labels: {team: "a\\rRUN id"}\n').encode(),
        "label-key": (HEAD + 'labels: {"a b": x}\n').encode(),
        "env-key-nl": (HEAD + 'env: {"A\\n": "1"}\n').encode(),
        "env-esc": (HEAD + 'env: {A: "\\e[31mred"}\n').encode(),
        "owner-nl": (HEAD + 'files: [{path: /a, content: x, owner: "0:0\\n"}]\n').encode(),
        "path-dollar": (HEAD + "files: [{path: /$HOME/x, content: x}]\n").encode(),
        "path-space": (HEAD + 'files: [{path: "/a b", content: x}]\n').encode(),
        "src-abs": (HEAD + "files: [{path: /a, source: /etc/shadow}]\n").encode(),
        "src-up": (HEAD + "files: [{path: /a, source: ../secret}]\n").encode(),
        "src-link": (HEAD + "files: [{path: /a, source: link-out}]\n").encode(),
        "req-up": (HEAD + "pip: {requirements: ../secret}\n").encode(),
        "req-latin1": (HEAD + "pip: {requirements: latin1.txt}\n").encode(),
        "name-nl": b'name: "x\\n"\nparent: jupyter\n',
        "parent-nl": ('name: x\nparent: "ghcr.io/a/b@sha256:' + "a" * 64 + '\\n"\n').encode(),
        "imports": (HEAD + 'probes: {imports: ["os; import x"]}\n').encode(),
        "r-libs": (HEAD + 'probes: {r_libraries: ["a,b"]}\n').encode(),
        "command-nl": (HEAD + 'probes: {commands: ["true\\nfalse"]}\n').encode(),
        "init-name": (HEAD + 'init_scripts: {"$HOME": "#!/bin/sh\\n"}\n').encode(),
        "service-name": (HEAD + 'services: {"a b": {run: "#!/bin/sh\\n"}}\n').encode(),
        "apt-nl": (HEAD + 'apt: ["vim\\n"]\n').encode(),
        "pip-nl": (HEAD + 'pip: ["numpy==2\\n"]\n').encode(),
        "mode": (HEAD + 'files: [{path: /a, content: x, mode: "77777"}]\n').encode(),
        "markup": b"name: x\nparent: jupyter\napt: ['[red]x[/red]']\n",
    }
    for name, data in specs.items():
        (spec_dir / f"{name}.yaml").write_bytes(data)
        files[name] = spec_dir / f"{name}.yaml"
    for name, setup in {
        "repo-link": lambda r: (r / "postBuild").symlink_to(root / "secret"),
        "repo-start-link": lambda r: (r / "start").symlink_to(root / "secret"),
        "repo-binder-link": lambda r: (r / "binder").symlink_to(root / "outside"),
        "repo-bomb": lambda r: (r / "environment.yml").write_text(BOMB),
        "repo-env-shape": lambda r: (r / "environment.yml").write_text("dependencies: 3\n"),
        "repo-latin1": lambda r: (r / "apt.txt").write_bytes(b"vim\ncaf\xe9\n"),
        "repo-req-option": lambda r: (r / "requirements.txt").write_text("-e .\n"),
    }.items():
        repo = root / name
        repo.mkdir()
        setup(repo)
        files[name] = repo
    return files


# (case id, argv with {file} names, exit code, a fragment of the message)
CASES: list[tuple[str, list[str], int, str]] = [
    ("unknown command", ["nosuch"], USAGE, "No such command 'nosuch'"),
    ("unknown sub-command", ["spec", "nosuch"], USAGE, "No such command"),
    ("unknown option", ["plan", "--bogus"], USAGE, "No such option: --bogus"),
    ("jobs not a number", ["build", "--jobs", "abc"], USAGE, "Invalid value for '--jobs'"),
    ("option without value", ["plan", "--since"], USAGE, "requires an argument"),
    ("format without value", ["graph", "--format"], USAGE, "requires an argument"),
    ("export names no image", ["export"], ERROR, "name the image to export"),
    ("validate without files", ["spec", "validate"], USAGE, "Missing argument"),
    ("new without name", ["new"], USAGE, "Missing argument"),
    ("unknown image", ["plan", "jupyter-scpiy"], ERROR, "unknown image 'jupyter-scpiy'"),
    ("bad graph format", ["graph", "--format", "svg"], USAGE,
     "Invalid value for '--format': 'svg': use one of text, mermaid, dot"),
    ("registry with scheme (markup-like hint)", ["plan", "--registry", "https://ghcr.io/acme"],
     USAGE, "give host[:port][/namespace], no scheme"),
    ("catalog that is not one", ["plan", "--catalog", "json:dumps"], ERROR, "json.dumps() failed"),
    ("catalog module missing", ["plan", "--catalog", "no_such_mod:x"], ERROR, "cannot import"),
    ("--since a folder", ["plan", "--since", "{plan-dir}"], ERROR, "a folder; give a file"),
    ("--since not JSON", ["plan", "--since", "{plan-text}"], ERROR, "not valid JSON"),
    ("--since wrong shape", ["plan", "--since", "{plan-shape}"], ERROR, "not a plan file"),
    ("--since 20000 deep", ["plan", "--since", "{plan-deep}"], ERROR, "nested too deeply"),
    ("--since missing", ["plan", "--since", "{missing}"], ERROR, "cannot read"),
    ("--lock-file a folder", ["lock", "--check", "--lock-file", "{plan-dir}"], ERROR, "a folder"),
    ("--lock-file wrong shape", ["lock", "--check", "--lock-file", "{lock-shape}"], ERROR,
     "not a lock file"),
    ("--out an existing file", ["export", "jupyter", "--out", "{existing}"], ERROR,
     "exists and is not a folder"),
    ("bad platform", ["export", "jupyter", "--platform", "linux/s390x"], USAGE, "linux/s390x"),
    ("test without names", ["test"], ERROR, "name the images to test"),
    ("publish registry with scheme", ["publish", "jupyter", "--registry", "https://x.io"], USAGE,
     "no scheme"),
    ("spec missing", ["spec", "validate", "{missing}"], ERROR, "cannot read"),
    ("spec a folder", ["spec", "validate", "{plan-dir}"], ERROR, "a folder"),
    ("spec not UTF-8", ["spec", "validate", "{latin1}"], ERROR, ":1: not UTF-8 text"),
    ("spec alias bomb", ["spec", "validate", "{bomb}"], ERROR, "aliases"),
    ("spec 20000 deep", ["spec", "validate", "{deep}"], ERROR, "nested too deeply"),
    ("label value with newlines", ["spec", "validate", "{label-nl}"], ERROR, "labels.team"),
    ("label value with CR", ["spec", "validate", "{label-cr}"], ERROR, "labels.team"),
    ("label key with space", ["spec", "validate", "{label-key}"], ERROR, "key 'a b'"),
    ("env key with final newline", ["spec", "validate", "{env-key-nl}"], ERROR,
     "not a valid variable name"),
    ("env value with escape", ["spec", "validate", "{env-esc}"], ERROR, "printable"),
    ("owner with final newline", ["spec", "validate", "{owner-nl}"], ERROR, "give uid:gid"),
    ("file path with $", ["spec", "validate", "{path-dollar}"], ERROR, "may use only"),
    ("file path with space", ["spec", "validate", "{path-space}"], ERROR, "may use only"),
    ("source absolute", ["spec", "validate", "{src-abs}"], ERROR, "is absolute"),
    ("source ../", ["spec", "validate", "{src-up}"], ERROR, "leads outside"),
    ("source symlink out", ["spec", "validate", "{src-link}"], ERROR, "leads outside"),
    ("requirements ../", ["spec", "validate", "{req-up}"], ERROR, "leads outside"),
    ("requirements not UTF-8", ["spec", "validate", "{req-latin1}"], ERROR, ":1: not UTF-8"),
    ("name with final newline", ["spec", "validate", "{name-nl}"], ERROR, "not an image name"),
    ("parent with final newline", ["spec", "validate", "{parent-nl}"], ERROR, "digest-pinned"),
    ("probe import with code", ["spec", "validate", "{imports}"], ERROR, "probes.imports"),
    ("r library with comma", ["spec", "validate", "{r-libs}"], ERROR, "probes.r_libraries"),
    ("probe command with newline", ["spec", "validate", "{command-nl}"], ERROR,
     "probes.commands"),
    ("init script named $HOME", ["spec", "validate", "{init-name}"], ERROR, "plain file name"),
    ("service name with space", ["spec", "validate", "{service-name}"], ERROR, "plain name"),
    ("apt name with final newline", ["spec", "validate", "{apt-nl}"], ERROR, "Debian package"),
    ("pip with final newline", ["spec", "validate", "{pip-nl}"], ERROR, "not a requirement"),
    ("mode out of range", ["spec", "validate", "{mode}"], ERROR, "not a file mode"),
    ("markup in a message", ["spec", "validate", "{markup}"], ERROR, "'[red]x[/red]'"),
    ("repo postBuild symlink out", ["export", "--from-repo", "{repo-link}", "x"], ERROR,
     "postBuild' leads outside"),
    ("repo start symlink out", ["plan", "--from-repo", "{repo-start-link}"], ERROR,
     "leads outside"),
    ("repo binder/ symlink out", ["plan", "--from-repo", "{repo-binder-link}"], ERROR,
     "leads outside"),
    ("repo environment.yml bomb", ["plan", "--from-repo", "{repo-bomb}"], ERROR, "aliases"),
    ("repo environment.yml shape", ["plan", "--from-repo", "{repo-env-shape}"], ERROR,
     "dependencies: must be a list"),
    ("repo apt.txt not UTF-8", ["plan", "--from-repo", "{repo-latin1}"], ERROR, ":2: not UTF-8"),
    ("repo pip option", ["plan", "--from-repo", "{repo-req-option}"], ERROR, "pip options"),
    ("repo not a folder", ["plan", "--from-repo", "{missing}"], ERROR, "not a directory"),
    ("new name starting with a digit", ["new", "1team", "--python", "--out", "{plan-dir}"], ERROR,
     "start it with a letter"),
    ("new name a keyword", ["new", "import", "--python", "--out", "{plan-dir}"], ERROR,
     "Python cannot import"),
    ("new name with space", ["new", "a b", "--out", "{plan-dir}"], ERROR, "not an image name"),
    ("new unknown parent", ["new", "team-z", "--parent", "nope", "--out", "{plan-dir}"], ERROR,
     "unknown image 'nope'"),
]


@pytest.fixture(scope="module")
def hostile(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    return _tree(tmp_path_factory.mktemp("hostile"))


def _argv(args: list[str], files: dict[str, Path]) -> list[str]:
    return [str(files[a[1:-1]]) if a.startswith("{") else a for a in args]


def _check(code: int, stderr: str, want_code: int, fragment: str) -> None:
    assert "Traceback" not in stderr and "internal error" not in stderr, stderr
    assert code == want_code, stderr
    assert fragment in stderr, stderr
    assert "hunter2" not in stderr  # never the content of a file outside
    if want_code == USAGE:  # the usual usage text (where click has it), then one Error: line
        last = stderr.rstrip("\n").splitlines()[-1]
        assert last.startswith("Error: ") and fragment in last, stderr
        assert stderr.startswith(("Usage: ", "Error: ")), stderr
    else:
        assert stderr.count("\n") == 1 and stderr.startswith("nbpipe: error: "), stderr


@pytest.mark.parametrize("case,args,code,fragment", CASES, ids=[c[0] for c in CASES])
def test_bad_input_is_one_line(case: str, args: list[str], code: int, fragment: str,
                               hostile: dict[str, Path], capsys, monkeypatch) -> None:
    monkeypatch.setattr(sys, "argv", ["nbpipe", *_argv(args, hostile)])
    monkeypatch.setattr(cli.err, "width", 10_000)  # one message, one line
    with pytest.raises(SystemExit) as exc:
        cli.main()
    _check(exc.value.code, capsys.readouterr().err, code, fragment)


def test_at_least_40_cases() -> None:
    assert len(CASES) >= 40


@pytest.mark.parametrize("case", ["unknown command", "jobs not a number", "unknown image",
                                  "registry with scheme (markup-like hint)"])
def test_the_installed_entry_point_too(case: str, hostile: dict[str, Path]) -> None:
    """A real process: on a fresh install there is no `click` to import."""
    _, args, code, fragment = next(c for c in CASES if c[0] == case)
    r = subprocess.run([sys.executable, "-m", "nbpipe", *_argv(args, hostile)],
                       capture_output=True, text=True, timeout=120,
                       env={**os.environ, "COLUMNS": "10000"})
    _check(r.returncode, r.stderr, code, fragment)


def test_nothing_half_written(hostile: dict[str, Path], tmp_path: Path) -> None:
    """A refused `nbpipe new` leaves no file behind."""
    r = subprocess.run([sys.executable, "-m", "nbpipe", "new", "1team", "--python", "--out",
                        str(tmp_path)], capture_output=True, text=True, timeout=120)
    assert r.returncode == 1 and list(tmp_path.iterdir()) == []


def test_a_bug_is_one_line_too(capsys, monkeypatch) -> None:
    """Not bad input but a bug: still no traceback (NBPIPE_DEBUG=1 shows it)."""

    def boom(catalog, fmt):
        raise ValueError("[bold]x[/bold]")

    monkeypatch.setattr(cli.graphs, "render", boom)
    monkeypatch.setattr(sys, "argv", ["nbpipe", "graph"])
    monkeypatch.setattr(cli.err, "width", 10_000)
    monkeypatch.delenv("NBPIPE_DEBUG", raising=False)
    with pytest.raises(SystemExit) as exc:
        cli.main()
    stderr = capsys.readouterr().err
    assert exc.value.code == 70 and stderr.count("\n") == 1
    assert "internal error: ValueError: [bold]x[/bold]" in stderr and "NBPIPE_DEBUG=1" in stderr
    monkeypatch.setenv("NBPIPE_DEBUG", "1")
    with pytest.raises(ValueError):
        cli.main()


def test_nbpipe_never_imports_click() -> None:
    """typer vendors its own click: `import click` fails on a fresh install."""
    import re

    root = Path(cli.__file__).parent
    offenders = [str(p.relative_to(root)) for p in root.rglob("*.py")
                 if re.search(r"^\s*(import click|from click\b)", p.read_text(), re.M)]
    assert offenders == []
