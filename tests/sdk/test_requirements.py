"""Requirement files: YAML specs and Binder repos read them through one parser, so the
same line is accepted (or refused, naming file:line) by both."""

from __future__ import annotations

from pathlib import Path

import pytest

from nbpipe import family as images
from nbpipe.inputs import binder as repo2docker, requirements, spec
from nbpipe.errors import SpecError


def test_comments_and_blank_lines_are_skipped(tmp_path: Path) -> None:
    f = tmp_path / "requirements.txt"
    f.write_text("# tools\nnumpy==2.1.0  # pinned\n\nrequests>=2\n")
    assert requirements.pip(f) == ["numpy==2.1.0", "requests>=2"]


@pytest.mark.parametrize("line, message", [
    ("-r other.txt", "pip options like -r are not supported"),
    ("numpy=1.0", "'numpy=1.0' is not a requirement"),
    ("numpy; rm -rf /", "is not a requirement"),
])
def test_spec_and_binder_refuse_the_same_line_alike(tmp_path: Path, line: str, message: str) -> None:
    (tmp_path / "requirements.txt").write_text(f"scipy\n{line}\n")
    (tmp_path / "team.yaml").write_text("name: t\nparent: jupyter\n"
                                        "pip: {requirements: requirements.txt}\n")
    errors = []
    for load in (lambda: spec.load(tmp_path / "team.yaml").register(images.family()),
                 lambda: repo2docker.from_repo(tmp_path)):
        with pytest.raises(SpecError) as exc:
            load()
        errors.append(str(exc.value))
    want = f"{tmp_path / 'requirements.txt'}:2: "
    assert errors[0] == errors[1] and errors[0].startswith(want) and message in errors[0]


def test_apt_txt_names_the_bad_line(tmp_path: Path) -> None:
    (tmp_path / "apt.txt").write_text("curl\nNot_A_Package\n")
    with pytest.raises(SpecError, match=r"apt.txt:2: apt: 'Not_A_Package'"):
        repo2docker.from_repo(tmp_path)
