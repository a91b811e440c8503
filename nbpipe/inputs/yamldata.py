"""YAML nodes to plain data, every conversion guarded.

PyYAML's own constructor turns ``2024-02-30`` or a 5,000-digit integer into a bare
``ValueError`` (no file, no line) and dumps its node objects when a merge key (``<<``)
meets a reader that walks nodes. Here each scalar is converted by its resolved tag inside
a guard, so a value that cannot be converted is refused naming the file, the line and the
field; merge keys merge as YAML 1.1 says (explicit keys win, then the first mapping
listed); tags beyond plain text, numbers, booleans, dates, lists and mappings are refused.
Shared nodes (aliases) are converted once; their expanded size was bounded before
(``safe_io.check_yaml``).
"""

from __future__ import annotations

import datetime
from typing import Any

import yaml
from yaml.constructor import SafeConstructor

from nbpipe.errors import NbpipeError

MAX_INT_DIGITS = 100  # an integer longer than this is no count, port or version anyone means
TAG = "tag:yaml.org,2002:"
MERGE = TAG + "merge"
Error = type[NbpipeError]
Pairs = list[tuple[yaml.Node, yaml.Node]]


def pairs(
    node: yaml.MappingNode, where: str, field: str = "", *, error: Error = NbpipeError
) -> Pairs:
    """A mapping's (key, value) nodes with its merge keys (``<<: *base`` or
    ``<<: [*a, *b]``) applied as YAML does: a key written in the mapping wins over a
    merged one, and among merged mappings the first listed wins. Keys written twice are
    both kept, for the caller to refuse."""
    explicit: Pairs = []
    merged: Pairs = []
    for k, v in node.value:
        if k.tag != MERGE:
            explicit.append((k, v))
            continue
        if isinstance(v, yaml.MappingNode):
            sources = [v]
        elif isinstance(v, yaml.SequenceNode) and all(
            isinstance(x, yaml.MappingNode) for x in v.value
        ):
            sources = list(v.value)
        else:
            raise error(
                f"{where}:{k.start_mark.line + 1}: {field or 'top level'}: a merge "
                "key (<<) takes a mapping or a list of mappings, e.g. <<: *defaults"
            )
        for src in sources:
            merged += pairs(src, where, field, error=error)
    # YAML's merge key: the first mapping listed wins, and a key written in the mapping
    # itself wins over all; a key keeps the place it was first merged at (PyYAML's order).
    out: Pairs = []
    place: dict[Any, int] = {}
    for k, v in merged:
        key = _key(k)
        if key not in place:
            place[key] = len(out)
            out.append((k, v))
    for k, v in explicit:
        key = _key(k)
        if key in place:
            out[place.pop(key)] = (k, v)
        else:
            out.append((k, v))  # a key written twice stays twice, for the caller to refuse
    return out


def _key(node: yaml.Node) -> Any:
    return (node.tag, node.value) if isinstance(node, yaml.ScalarNode) else id(node)


def plain(root: yaml.Node, where: str, *, error: Error = NbpipeError) -> Any:
    """Dicts, lists, str, int, float, bool, None and dates from a composed tree."""
    memo: dict[int, Any] = {}
    return _plain(root, where, "", memo, error)


def _plain(node: yaml.Node, where: str, field: str, memo: dict[int, Any], error: Error) -> Any:
    if id(node) in memo:
        return memo[id(node)]
    if isinstance(node, (yaml.SequenceNode, yaml.MappingNode)) and node.tag not in (
        TAG + "seq",
        TAG + "map",
    ):  # !!set, !!omap, !!pairs, !custom: not plain data
        raise _fail(
            node,
            where,
            field,
            f"the YAML type {shown(node.tag.replace(TAG, '!!'))} "
            "is not accepted here; write text, numbers, true/false, lists and "
            "mappings",
            error,
        )
    if isinstance(node, yaml.SequenceNode):
        out: Any = [
            _plain(c, where, f"{field}[{i}]", memo, error) for i, c in enumerate(node.value)
        ]
    elif isinstance(node, yaml.MappingNode):
        out = {}
        for k, v in pairs(node, where, field, error=error):
            if not isinstance(k, yaml.ScalarNode):
                raise _fail(
                    k, where, field, "a key must be plain text, not a list or mapping", error
                )
            key = scalar(k, where, field, error=error)
            name = f"{field}.{shown(key)}" if field else shown(key)
            if key in out:
                raise _fail(k, where, name, "given twice", error)
            out[key] = _plain(v, where, name, memo, error)
    else:
        assert isinstance(node, yaml.ScalarNode)  # the one other kind of node
        out = scalar(node, where, field, error=error)
    memo[id(node)] = out
    return out


_CONVERT = SafeConstructor()


def scalar(node: yaml.ScalarNode, where: str, field: str, *, error: Error = NbpipeError) -> Any:
    """One scalar by its resolved tag, converted inside a guard."""
    tag = node.tag
    if tag == TAG + "str":
        return node.value
    if tag == TAG + "null":
        return None
    if tag == TAG + "bool":
        return _CONVERT.construct_yaml_bool(node)
    try:
        if tag == TAG + "int":
            digits = sum(c.isalnum() for c in node.value)
            if digits > MAX_INT_DIGITS:
                raise _fail(
                    node,
                    where,
                    field,
                    f"a number of {digits:,} digits; nbpipe reads "
                    f"numbers up to {MAX_INT_DIGITS} digits (quote it if it is text)",
                    error,
                )
            return _CONVERT.construct_yaml_int(node)
        if tag == TAG + "float":
            if len(node.value) > MAX_INT_DIGITS:
                raise _fail(
                    node,
                    where,
                    field,
                    f"a number of {len(node.value):,} characters; quote it if it is text",
                    error,
                )
            return _CONVERT.construct_yaml_float(node)
        if tag == TAG + "timestamp":
            value: datetime.date = _CONVERT.construct_yaml_timestamp(node)
            return value
    except (ValueError, OverflowError, TypeError):
        raise _fail(
            node,
            where,
            field,
            f"{shown(node.value)} is not a valid "
            f"{tag[len(TAG) :] if tag.startswith(TAG) else tag} (a date that does not "
            "exist?); quote it to make it text",
            error,
        ) from None
    name = "!!" + tag[len(TAG) :] if tag.startswith(TAG) else tag
    raise _fail(
        node,
        where,
        field,
        f"the YAML type {shown(name)} is not accepted here; "
        "write text, numbers, true/false, lists and mappings",
        error,
    )


def _fail(node: yaml.Node, where: str, field: str, problem: str, error: Error) -> NbpipeError:
    return error(f"{where}:{node.start_mark.line + 1}: {field or 'top level'}: {problem}")


def shown(value: Any) -> str:
    """A value in a one-line message: printable as is, else escaped, and never long."""
    text = str(value)
    text = text if text.isprintable() else repr(text)
    return text if len(text) <= 60 else text[:57] + "..."
