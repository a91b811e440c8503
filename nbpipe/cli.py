"""`nbpipe`: the command line. Thin: every command calls the SDK and prints the result."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Optional

import typer
from rich.console import Console
from rich.table import Table

from . import contract
from . import graph as graphs
from . import platforms as plat
from .catalog import Catalog
from .engines import dockerfile
from .errors import NbpipeError
from .image import short
from .loader import load

app = typer.Typer(no_args_is_help=True, add_completion=False,
                  help="Build, test and publish the notebook-server image family.")
console = Console(width=None if sys.stdout.isatty() else 160)
err = Console(stderr=True)

CatalogOpt = typer.Option(None, "--catalog", help="module:function giving the Catalog "
                          "(default: images:family, or $NBPIPE_CATALOG)")


def _catalog(spec: str | None) -> Catalog:
    return load(spec)


@app.command()
def images(catalog: Optional[str] = CatalogOpt) -> None:
    """List every image: parent, platforms, runner tags, digest."""
    cat = _catalog(catalog)
    table = Table("name", "parent", "platforms", "runner tags", "digest")
    for name in cat.order():
        img = cat.resolve(name)
        parent = cat.parent_name(name) or cat.entry(name).parent.ref  # type: ignore[union-attr]
        tags = img.config().label_dict().get(contract.LABEL_RUNNER_TAGS, "")
        arches = ",".join(p.split("/")[1] for p in img.platforms)
        table.add_row(name, parent, arches, tags or "-", short(img.digest()))
    console.print(table)


@app.command()
def graph(fmt: str = typer.Option("text", "--format", help="text | mermaid | dot"),
          catalog: Optional[str] = CatalogOpt) -> None:
    """Print the image family as a tree, Mermaid chart or Graphviz dot."""
    renderers = {"text": graphs.text, "mermaid": graphs.mermaid, "dot": graphs.dot}
    if fmt not in renderers:
        raise NbpipeError(f"--format {fmt!r}: use one of {', '.join(renderers)}")
    print(renderers[fmt](_catalog(catalog)))


@app.command()
def plan(names: list[str] = typer.Argument(None, help="images to build (default: all)"),
         since: Optional[Path] = typer.Option(None, help="a plan JSON from before: list only "
                                              "the images whose digest changed since"),
         as_json: bool = typer.Option(False, "--json", help="print the plan as JSON"),
         catalog: Optional[str] = CatalogOpt) -> None:
    """What would be built, parents first."""
    cat = _catalog(catalog)
    order = cat.order(names or None)
    if since is not None:
        try:
            previous = json.loads(since.read_text())["digests"]
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise NbpipeError(f"--since {since}: not a plan file written by "
                              f"`nbpipe plan --json` ({exc})") from None
        changed = set(cat.affected(previous))
        order = [n for n in order if n in changed]
    digests = {n: cat.resolve(n).digest() for n in order}
    if as_json:
        print(json.dumps({"order": order, "digests": digests}, indent=2))
        return
    for i, name in enumerate(order, 1):
        print(f"{i:2}. {name:32} {short(digests[name])}")
    if not order:
        print("nothing to build")


@app.command()
def export(name: str, platform: str = typer.Option(plat.AMD64, help="linux/amd64 | linux/arm64"),
           out: Optional[Path] = typer.Option(None, help="write Dockerfile + files/ here"),
           catalog: Optional[str] = CatalogOpt) -> None:
    """The Dockerfile that builds IMAGE from its parent (same steps, same order)."""
    img = _catalog(catalog).resolve(name)
    rendered = dockerfile.render(img, plat.check(platform))
    if out is None:
        sys.stdout.write(rendered.text)
    else:
        path = rendered.write(out)
        err.print(f"wrote {path} and {len(rendered.files)} file(s) under {out / 'files'}")


def main() -> None:
    try:
        app(standalone_mode=False)
    except NbpipeError as exc:
        err.print(f"[red]nbpipe: error:[/red] {exc}", highlight=False, soft_wrap=True)
        sys.exit(1)
    except (typer.Abort, KeyboardInterrupt):
        err.print("nbpipe: interrupted")
        sys.exit(130)
    except typer.Exit as exc:
        sys.exit(exc.exit_code)
    except Exception as exc:  # click usage errors arrive here in non-standalone mode
        import click

        if isinstance(exc, click.ClickException):
            exc.show()
            sys.exit(exc.exit_code)
        raise


if __name__ == "__main__":
    main()
