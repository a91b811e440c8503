"""The image dropdowns of Kubeflow's spawner_ui_config.yaml, from what is published.

Kubeflow's web app reads `spawnerFormDefaults.image` (Jupyter), `imageGroupOne`
(code-server) and `imageGroupTwo` (RStudio), each `{value, options}`. Two things bite:
- YAML keeps the last of two equal keys, so a second top-level `spawnerFormDefaults:`
  appended to a real file silently drops the cpu/memory/... defaults above it. We print
  blocks to paste under the user's own key, or merge into their file (`merge`).
- The dropdown shows a ref split on ':'; a digest-only ref (`repo@sha256:...`) shows
  the digest as the "tag". `repo:tag@sha256:...` shows the tag and still pins the digest.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import yaml

from nbpipe.engines.registry import Registry
from nbpipe.errors import NbpipeError
from nbpipe.recipe.catalog import Catalog
from nbpipe.recipe.naming import content_tag

GROUPS = {"jupyter": "image", "codeserver": "imageGroupOne", "rstudio": "imageGroupTwo"}


@dataclass(frozen=True)
class Group:
    """One dropdown: its key, the preselected ref and every ref offered."""

    key: str
    value: str
    options: tuple[str, ...]


@dataclass(frozen=True)
class Published:
    registry: str
    groups: tuple[Group, ...]
    missing: tuple[str, ...]  # family images of a server kind not published there


def published(catalog: Catalog, registry: Registry, defaults: tuple[str, ...] = ()) -> Published:
    """Every image of the three server kinds published in ``registry`` under its content
    tag, as `repo:sha-<tag>@sha256:<digest>`; ``defaults`` are the preselected images."""
    from nbpipe.recipe import contract

    for name in defaults:
        catalog.entry(name)  # an unknown name is an error
    refs: dict[str, list[tuple[str, str]]] = {k: [] for k in GROUPS.values()}
    missing = []
    with registry.authfile() as auth:
        for name in catalog.order():
            img = catalog.resolve(name)
            server = img.config().label_dict().get(contract.LABEL_SERVER)
            if server not in GROUPS:
                continue
            tagged = f"{registry.repo(name)}:{content_tag(img)}"
            digest = registry.digest(tagged, auth)
            if digest is None:
                missing.append(name)
                continue
            refs[GROUPS[server]].append((name, f"{tagged}@{digest}"))
    if not any(refs.values()):
        raise NbpipeError(
            f"no image of the family is published in {registry.address}: run nbpipe publish first"
        )
    groups = []
    chosen: set[str] = set()
    for key, items in refs.items():
        if not items:
            continue
        mine = [(n, r) for n, r in items if n in defaults]
        if len(mine) > 1:
            raise NbpipeError(
                f"--default: {mine[0][0]} and {mine[1][0]} are in the same "
                f"dropdown ({key}); give one per server kind"
            )
        chosen |= {n for n, _ in mine}
        value = (mine or items)[0][1]
        groups.append(Group(key, value, tuple(r for _, r in items)))
    for name in defaults:
        if name not in chosen:
            raise NbpipeError(
                f"--default {name}: not published in {registry.address} (or "
                "not a Jupyter, code-server or RStudio image)"
            )
    return Published(registry.address, tuple(groups), tuple(missing))


def _block(group: Group, indent: str) -> list[str]:
    return [
        f"{indent}{group.key}:",
        f"{indent}  value: {group.value}",
        f"{indent}  options:",
        *(f"{indent}    - {r}" for r in group.options),
    ]


def blocks(pub: Published) -> str:
    """The dropdowns as blocks indented to paste under your `spawnerFormDefaults:`, in
    place of the keys of the same names. No top-level key of their own, so even appended
    to the file they never replace your whole `spawnerFormDefaults` (cpu, memory, ...)."""
    lines = [
        f"# nbpipe images published in {pub.registry}, as repo:tag@sha256:digest.",
        "# Paste these keys under spawnerFormDefaults: in spawner_ui_config.yaml,",
        "# replacing the ones there (or use --merge-into spawner_ui_config.yaml).",
    ]
    if pub.missing:
        lines.append(f"# not published (left out): {', '.join(pub.missing)}")
    for g in pub.groups:
        lines += _block(g, "  ")
    return "\n".join(lines) + "\n"


def merge(path: Path, pub: Published) -> str:
    """``path`` (a spawner_ui_config.yaml) with its image dropdowns replaced by ``pub``'s,
    every other line, comments included, as it was. The replaced text is found through
    the YAML nodes' positions, so indentation and key order stay the user's."""
    from nbpipe.inputs import safe_io

    text = safe_io.read_text(path)
    root = safe_io.compose_yaml(text, str(path))
    defaults = None
    if isinstance(root, yaml.MappingNode):
        defaults = next(
            (v for k, v in root.value if getattr(k, "value", None) == "spawnerFormDefaults"), None
        )
    if not isinstance(defaults, yaml.MappingNode) or defaults.flow_style:
        raise NbpipeError(
            f"{path}: no block mapping 'spawnerFormDefaults:' at the top; "
            "is it Kubeflow's spawner_ui_config.yaml?"
        )
    keys = {k.value: (k, v) for k, v in defaults.value if isinstance(k, yaml.ScalarNode)}
    indent = " " * defaults.start_mark.column
    edits: list[tuple[int, int, str]] = []  # (start, end, new text), by character index
    for g in pub.groups:
        if g.key in keys:
            k, v = keys[g.key]
            start = text.rfind("\n", 0, k.start_mark.index) + 1
            end = _content_end(text, v.end_mark.index)
            edits.append((start, end, "\n".join(_block(g, indent)) + "\n"))
        else:  # a new key, right after `spawnerFormDefaults:`'s line
            at = text.rfind("\n", 0, defaults.start_mark.index) + 1
            edits.append((at, at, "\n".join(_block(g, indent)) + "\n"))
    for start, end, new in sorted(edits, reverse=True):
        text = text[:start] + new + text[end:]
    return text


def _content_end(text: str, end: int) -> int:
    """Where a block value really ends: pyyaml's end mark lies past the blank and comment
    lines that follow it, which belong to the next key."""
    lines = text[:end].splitlines(keepends=True)
    while lines and (not lines[-1].strip() or lines[-1].lstrip().startswith("#")):
        lines.pop()
    end = sum(len(line) for line in lines)
    if end and text[end - 1] != "\n":  # a value on the key's own line: take its newline
        newline = text.find("\n", end)
        end = len(text) if newline < 0 else newline + 1
    return end
