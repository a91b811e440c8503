"""The `nbpipe` command line: flags become one Settings value and one run."""

from nbpipe.cli.commands import app, main

__all__ = ["app", "main"]
