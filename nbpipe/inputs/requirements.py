"""Requirement files, one entry a line: pip's requirements.txt and Binder's apt.txt.

Shared by YAML specs and Binder repositories, so both accept (and refuse) the same lines.
Every line is checked by the step it becomes; an error names the file and the line.
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable

from nbpipe.errors import NbpipeError, SpecError
from nbpipe.inputs import safe_io
from nbpipe.recipe import steps as s


def check_pip(line: str) -> None:
    """One requirement like ``name==1.2``; pip options (``-r``, ``--index-url``) are
    refused. Shared by requirements.txt and environment.yml's pip section."""
    if line.startswith("-"):
        raise NbpipeError(
            f"pip options like {line.split()[0]} are not supported; list one requirement per line"
        )
    s.Pip(packages=(line,))


def pip(file: Path) -> list[str]:
    """Requirements like ``name==1.2``; pip options (``-r``, ``--index-url``) are refused."""
    return [line for _, line in pip_lines(file)]


def pip_lines(file: Path) -> list[tuple[int, str]]:
    """The same requirements with the line each is on (for warnings that point at it)."""
    return _numbered(file, check_pip)


def apt(file: Path) -> list[str]:
    """Debian package names (or name=version)."""
    return _lines(file, lambda line: s.Apt(packages=(line,)))


def _lines(file: Path, check: Callable[[str], object]) -> list[str]:
    return [line for _, line in _numbered(file, check)]


def _numbered(file: Path, check: Callable[[str], object]) -> list[tuple[int, str]]:
    text = safe_io.read_text(Path(file), error=SpecError)  # bounded, UTF-8 or a clear line
    text = text.removeprefix("\ufeff")  # a UTF-8 BOM, which pip (and Notepad) accept
    out = []
    for n, line in enumerate(text.splitlines(), 1):
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        try:
            check(line)
        except NbpipeError as exc:
            raise SpecError(f"{file}:{n}: {exc}") from None
        out.append((n, line))
    return out
