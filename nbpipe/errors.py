"""The one error type users see.

Every failure a user can fix (bad input, unknown image, unreachable source) is raised as
``NbpipeError`` with a message that names the thing at fault and what to do; the CLI prints
it as one line and exits non-zero, never as a traceback.
"""

from __future__ import annotations


class NbpipeError(Exception):
    """A user-facing error: its message is the whole story."""


class CatalogError(NbpipeError):
    """The image catalog is malformed (unknown parent, cycle, duplicate name)."""


class SpecError(NbpipeError):
    """A YAML/recipe input is invalid; the message names file, line and field."""


class BuildError(NbpipeError):
    """A build step failed; the message names the image and the step."""


def printable(text: object) -> str:
    """Text safe to print on one terminal line: control characters (a newline, an ESC
    that starts a terminal escape sequence) shown escaped, never sent raw. File names
    come from someone else's repository or spec."""
    return "".join(c if c.isprintable() else c.encode("unicode_escape").decode() for c in str(text))
