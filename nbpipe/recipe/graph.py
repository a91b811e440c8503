"""Render the catalog DAG as text, Mermaid or Graphviz dot."""

from __future__ import annotations

from nbpipe.errors import NbpipeError
from nbpipe.recipe.catalog import Catalog
from nbpipe.recipe.image import BaseRef


def _roots(catalog: Catalog) -> list[str]:
    return [n for n in catalog.order() if catalog.parent_name(n) is None]


def text(catalog: Catalog) -> str:
    lines: list[str] = []

    def walk(name: str, prefix: str, last: bool, top: bool) -> None:
        branch = "" if top else ("└── " if last else "├── ")
        lines.append(f"{prefix}{branch}{name}")
        kids = catalog.children(name)
        for i, kid in enumerate(kids):
            walk(
                kid,
                prefix + ("" if top else ("    " if last else "│   ")),
                i == len(kids) - 1,
                False,
            )

    for root in _roots(catalog):
        parent = catalog.entry(root).parent
        if isinstance(parent, BaseRef):
            lines.append(f"({parent.ref})")
        walk(root, "", True, True)
    return "\n".join(lines)


def _node_id(name: str) -> str:
    return name.replace("-", "_").replace(".", "_")


def mermaid(catalog: Catalog) -> str:
    lines = ["graph TD"]
    for n in catalog.order():
        lines.append(f"    {_node_id(n)}[{n}]")
    for n in catalog.order():
        p = catalog.parent_name(n)
        if p:
            lines.append(f"    {_node_id(p)} --> {_node_id(n)}")
    return "\n".join(lines)


def dot(catalog: Catalog) -> str:
    lines = ["digraph nbpipe {", "  rankdir=TB;", "  node [shape=box];"]
    for n in catalog.order():
        lines.append(f'  "{n}";')
    for n in catalog.order():
        p = catalog.parent_name(n)
        if p:
            lines.append(f'  "{p}" -> "{n}";')
    lines.append("}")
    return "\n".join(lines)


def as_json(catalog: Catalog) -> str:
    """{"images": [{"name", "parent"}]}, parents first; a root's parent is its ref."""
    import json

    def parent(name: str) -> str:
        p = catalog.entry(name).parent
        return p if isinstance(p, str) else p.ref

    rows = [{"name": n, "parent": parent(n)} for n in catalog.order()]
    return json.dumps({"images": rows}, indent=2)


FORMATS = {"text": text, "mermaid": mermaid, "dot": dot, "json": as_json}


def render(catalog: Catalog, fmt: str = "text") -> str:
    """The family in one of FORMATS (the CLI and the Dagger module both ask here)."""
    if fmt not in FORMATS:
        raise NbpipeError(f"--format {fmt!r}: use one of {', '.join(FORMATS)}")
    return FORMATS[fmt](catalog)
