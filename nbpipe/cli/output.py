"""Where the command line's output goes, and in which shape.

On a terminal: rich tables and colour. In a pipe or a CI log: the same text, never
wrapped, coloured or cut short, so a URL, a digest or a command stays whole on one line
(a CI log that splits `...-am` / `d64.deb` cannot be pasted back). `--json` output goes
through `emit_json`: one document on stdout, keys documented in the README ("JSON output").
"""

from __future__ import annotations

import json
import sys
from typing import Any

from rich.console import Console

# rich needs some width; in a pipe it is wider than any line we print, so nothing wraps
# and no table column is cut to "46e10e0d28…".
PIPED_WIDTH = 1 << 16


def console(*, stderr: bool = False, markup: bool = True) -> Console:
    """A console for stdout or stderr: rich on a terminal, plain and unwrapped in a pipe."""
    stream = sys.stderr if stderr else sys.stdout
    tty = stream.isatty()
    return Console(
        stderr=stderr,
        width=None if tty else PIPED_WIDTH,
        soft_wrap=not tty,
        no_color=not tty,
        markup=markup,
        highlight=False,
    )


def emit_json(data: Any) -> None:
    """One JSON document on stdout (indented, keys in a fixed order, a final newline)."""
    sys.stdout.write(json.dumps(data, indent=2) + "\n")
    sys.stdout.flush()
