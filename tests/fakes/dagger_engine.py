"""A Dagger engine stand-in for offline tests: the pinned engine's API and a session that
checks every request against it.

The schema is rebuilt from the installed dagger-io's generated client (dagger/client/gen.py,
written by Dagger's codegen from that engine release's own API): every object, field,
argument name and type, enum value and ID, read with ``ast`` (nothing is copied). Object
arguments are ``ID!``, as the engine declares them (``ID! @expectedType(name: ...)``).
Where the engine's own ``schema.graphqls`` is present (``$NBPIPE_DAGGER_SCHEMA``, or
``/work/shared/dagger/schema.graphqls`` / ``../shared/dagger/schema.graphqls``) every
request is validated against it too.

``FakeSession`` replaces the transport of dagger-io's shared connection: dagger-io builds
each query with its own code, the session validates it with graphql-core, records it, and
answers it by executing it against the schema with placeholder values (or with what the
test's ``respond`` returns, or an error it raises).
"""

from __future__ import annotations

import ast
import contextlib
import functools
import itertools
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import graphql
from graphql import (
    GraphQLArgument,
    GraphQLBoolean,
    GraphQLEnumType,
    GraphQLEnumValue,
    GraphQLField,
    GraphQLFloat,
    GraphQLID,
    GraphQLInputField,
    GraphQLInputObjectType,
    GraphQLInt,
    GraphQLInterfaceType,
    GraphQLList,
    GraphQLNonNull,
    GraphQLObjectType,
    GraphQLScalarType,
    GraphQLSchema,
    GraphQLString,
)

BUILTIN = {"str": GraphQLString, "int": GraphQLInt, "bool": GraphQLBoolean, "float": GraphQLFloat}
REPO = Path(__file__).resolve().parents[2]


def _bases(node: ast.ClassDef) -> set[str]:
    return {b.id if isinstance(b, ast.Name) else getattr(b, "attr", "") for b in node.bases}


def _graphql_name(node: ast.ClassDef) -> str:
    for item in node.body:
        if isinstance(item, ast.FunctionDef) and item.name == "_graphql_name":
            ret = next(n for n in ast.walk(item) if isinstance(n, ast.Return))
            return ret.value.value  # type: ignore[union-attr]
    return node.name


def _unquote(node: ast.expr) -> ast.expr:
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return ast.parse(node.value, mode="eval").body
    return node


@dataclass
class _Method:
    field: str
    args: list[tuple[str, ast.expr | None, bool]]  # graphql name, annotation, has default
    returns: tuple[str, Any]  # ("object", name) | ("list", name) | ("leaf", ast) | ("id",)


@dataclass
class _Source:
    """What gen.py declares, by kind."""

    scalars: list[str] = field(default_factory=list)
    enums: dict[str, list[str]] = field(default_factory=dict)
    inputs: dict[str, list[tuple[str, ast.expr, bool]]] = field(default_factory=dict)
    objects: dict[str, list[_Method]] = field(default_factory=dict)
    interfaces: set[str] = field(default_factory=set)
    py_to_gql: dict[str, str] = field(default_factory=dict)


def _method(fn: ast.FunctionDef | ast.AsyncFunctionDef, owner: str) -> _Method | None:
    select = None
    for n in ast.walk(fn):
        if isinstance(n, ast.Call) and isinstance(n.func, ast.Attribute):
            if n.func.attr == "_select" and n.args and isinstance(n.args[0], ast.Constant):
                select = ("select", n.args[0].value)
            elif n.func.attr == "execute_sync" and len(n.args) >= 2:
                select = ("sync", n.args[1].value)  # type: ignore[attr-defined]
    if select is None:
        return None
    params = {a.arg: (a.annotation, False) for a in fn.args.args + fn.args.kwonlyargs}
    for a, d in zip(fn.args.kwonlyargs, fn.args.kw_defaults, strict=True):
        if d is not None:
            params[a.arg] = (a.annotation, True)
    args = []
    for n in ast.walk(fn):
        if isinstance(n, ast.Call) and getattr(n.func, "id", None) == "Arg":
            gql_name = n.args[0].value  # type: ignore[attr-defined]
            names = [
                x.id for x in ast.walk(n.args[1]) if isinstance(x, ast.Name) and x.id in params
            ]
            ann, has_default = params[names[0]]
            args.append((gql_name, ann, has_default or len(n.args) > 2))
    ret = next((n.value for n in ast.walk(fn) if isinstance(n, ast.Return) and n.value), None)
    if select[0] == "sync":
        returns: tuple = ("id",)
    elif isinstance(ret, ast.Await):
        call = ret.value
        attr = call.func.attr  # type: ignore[attr-defined]
        if attr == "execute_object_list":
            returns = ("list", call.args[0].id)  # type: ignore[attr-defined]
        elif select[1] == "id":
            returns = ("id",)
        else:
            returns = ("leaf", call.args[0] if call.args else None)  # type: ignore[attr-defined]
    elif isinstance(ret, ast.Call) and isinstance(ret.func, ast.Name):
        returns = ("object", ret.func.id)
    else:
        return None
    return _Method(select[1], args, returns)


def _read(gen: Path) -> _Source:
    src = _Source()
    tree = ast.parse(gen.read_text())
    protocols = {
        n.name for n in tree.body if isinstance(n, ast.ClassDef) and "Protocol" in _bases(n)
    }
    for node in tree.body:
        if not isinstance(node, ast.ClassDef):
            continue
        bases = _bases(node)
        if "Scalar" in bases:
            src.scalars.append(node.name)
        elif "Enum" in bases:
            # every member name is a value of the GraphQL enum (aliases included)
            src.enums[node.name] = [
                t.id
                for a in node.body
                if isinstance(a, ast.Assign)
                for t in a.targets
                if isinstance(t, ast.Name)
            ]
        elif "Input" in bases:
            src.inputs[node.name] = [
                (a.target.id, a.annotation, a.value is not None)  # type: ignore[attr-defined]
                for a in node.body
                if isinstance(a, ast.AnnAssign)
            ]
        elif bases & ({"Type", "Root"} | set(src.py_to_gql)):
            inherited = [src.py_to_gql[b] for b in bases if b in src.py_to_gql]
            name = inherited[0] if inherited else _graphql_name(node)
            src.py_to_gql[node.name] = name
            if name in protocols:
                src.interfaces.add(name)
            methods = src.objects.setdefault(name, [])
            known = {m.field for m in methods}
            for item in node.body:
                if isinstance(item, (ast.FunctionDef, ast.AsyncFunctionDef)):
                    m = _method(item, name)
                    if m and m.field not in known:
                        methods.append(m)
                        known.add(m.field)
    return src


class _Builder:
    """Turns what gen.py declares into graphql-core types."""

    def __init__(self, src: _Source):
        self.src = src
        self.types: dict[str, Any] = {"ID": GraphQLID}
        for s in src.scalars:
            self.types[s] = GraphQLScalarType(s)
        for e, values in src.enums.items():
            self.types[e] = GraphQLEnumType(e, {v: GraphQLEnumValue(v) for v in values})
        for i, fields in src.inputs.items():
            self.types[i] = GraphQLInputObjectType(i, functools.partial(self._input_fields, fields))
        for name in src.interfaces:
            self.types[name] = GraphQLInterfaceType(
                name, functools.partial(self._fields, name), resolve_type=_resolve_type
            )
        for name in src.objects:
            if name not in src.interfaces:
                self.types[name] = GraphQLObjectType(
                    name,
                    functools.partial(self._fields, name),
                    interfaces=functools.partial(self._implements, name),
                )

    def _gql(self, ann: ast.expr | None, owner: str, *, arg: bool, optional: bool = False):
        ann = _unquote(ann) if ann is not None else ast.Constant(None)
        nullable = optional
        if isinstance(ann, ast.BinOp) and isinstance(ann.op, ast.BitOr):
            parts = [
                p
                for p in (ann.left, ann.right)
                if not (isinstance(p, ast.Constant) and p.value is None)
            ]
            nullable, ann = True, _unquote(parts[0])
        if isinstance(ann, ast.Subscript) and getattr(ann.value, "id", "") == "list":
            inner = self._gql(ann.slice, owner, arg=arg)
            t: Any = GraphQLList(inner)
        elif isinstance(ann, ast.Constant) and ann.value is None:
            return self.types["Void"]
        else:
            name = ann.id  # type: ignore[attr-defined]
            if name == "Self":
                name = owner
            name = self.src.py_to_gql.get(name, name)
            if name in BUILTIN:
                t = BUILTIN[name]
            elif name == "Type" or (arg and name in self.src.objects):
                t = GraphQLID  # the engine takes every object as `ID!`
            else:
                t = self.types[name]
        return t if nullable else GraphQLNonNull(t)

    def _input_fields(self, fields):
        return {n: GraphQLInputField(self._gql(a, "", arg=True, optional=d)) for n, a, d in fields}

    def _fields(self, owner: str) -> dict[str, GraphQLField]:
        out = {}
        for m in self.src.objects[owner]:
            kind = m.returns[0]
            if kind == "id":
                ret: Any = GraphQLNonNull(GraphQLID)
            elif kind == "list":
                name = self.src.py_to_gql.get(m.returns[1], m.returns[1])
                ret = GraphQLNonNull(GraphQLList(GraphQLNonNull(self.types[name])))
            elif kind == "object":
                name = self.src.py_to_gql.get(m.returns[1], m.returns[1])
                ret = (
                    self.types[name]
                    if name in self.src.interfaces
                    else GraphQLNonNull(self.types[name])
                )
            else:
                ret = self._gql(m.returns[1], owner, arg=False)
            out[m.field] = GraphQLField(
                ret,
                {
                    n: GraphQLArgument(self._gql(a, owner, arg=True, optional=d))
                    for n, a, d in m.args
                },
            )
        return out

    def _implements(self, owner: str) -> list[GraphQLInterfaceType]:
        """The interfaces whose every field this object has with the same type."""
        mine = self._fields(owner)
        out = []
        for name in sorted(self.src.interfaces):
            theirs = self._fields(name)
            if all(
                f in mine
                and str(mine[f].type) == str(t.type)
                and all(a in mine[f].args for a in t.args)
                for f, t in theirs.items()
            ):
                out.append(self.types[name])
        return out


def _resolve_type(value, info, abstract_type) -> str:
    return value["__typename"]


@functools.cache
def from_sdk() -> GraphQLSchema:
    """The pinned engine's API as the installed dagger-io's generated client declares it."""
    from dagger.client import gen

    src = _read(Path(gen.__file__))
    b = _Builder(src)
    schema = GraphQLSchema(query=b.types["Query"], types=list(b.types.values()))
    errors = graphql.validate_schema(schema)
    assert not errors, errors[:3]
    return schema


def real_schema_path() -> Path | None:
    for p in (
        os.environ.get("NBPIPE_DAGGER_SCHEMA"),
        "/work/shared/dagger/schema.graphqls",
        REPO.parent / "shared/dagger/schema.graphqls",
    ):
        if p and Path(p).is_file():
            return Path(p)
    return None


@functools.cache
def real_schema() -> GraphQLSchema | None:
    """The engine's own schema.graphqls, where one is present (never committed here)."""
    path = real_schema_path()
    return graphql.build_schema(path.read_text()) if path else None


def validate(document: graphql.DocumentNode) -> list[str]:
    """Every error of ``document`` against the SDK's schema and the real one (if present)."""
    errors = [f"sdk schema: {e.message}" for e in graphql.validate(from_sdk(), document)]
    if (real := real_schema()) is not None:
        errors += [f"schema.graphqls: {e.message}" for e in graphql.validate(real, document)]
    return errors


# -- the session ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Call:
    """One field of a request: its GraphQL name, arguments and where it sits."""

    path: tuple[str, ...]
    name: str
    args: dict[str, Any]


Respond = Callable[[Call, tuple[Call, ...]], Any]
NOTHING = object()


@dataclass
class FakeSession:
    """What dagger-io's ClientSession offers its query builder: the schema, and execute()."""

    respond: Respond = lambda call, chain: NOTHING
    labels: dict[str, str] = field(default_factory=dict)  # what Container.labels lists
    queries: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    _ids: itertools.count = field(default_factory=lambda: itertools.count(1))

    async def get_schema(self) -> GraphQLSchema:
        return from_sdk()

    def has_session(self) -> bool:
        return True

    async def close(self) -> None:
        pass

    async def execute(self, request) -> Any:
        from gql.transport.exceptions import TransportQueryError

        doc = request.document
        text = graphql.print_ast(doc)
        self.queries.append(text)
        problems = validate(doc)
        if problems:
            self.errors += [f"{p}\n{text}" for p in problems]
            raise TransportQueryError(problems[0], errors=[{"message": problems[0]}])
        chain: list[Call] = []
        result = graphql.execute_sync(
            from_sdk(), doc, field_resolver=functools.partial(self._resolve, chain)
        )
        if result.errors:
            err = result.errors[0]
            original = err.original_error
            if isinstance(original, EngineError):
                raise TransportQueryError(original.message, errors=[original.as_graphql()])
            raise TransportQueryError(str(err), errors=[{"message": str(err)}])
        return result.data

    def _resolve(self, chain: list[Call], source, info: graphql.GraphQLResolveInfo, /, **args):
        path = tuple(str(k) for k in info.path.as_list() if isinstance(k, str))
        here = Call(path, info.field_name, args)
        parents = (source or {}).get("__chain", ()) if isinstance(source, dict) else ()
        mine = (*parents, here)
        value = self.respond(here, mine)
        if value is not NOTHING:
            return value
        kv = source.get("__kv") if isinstance(source, dict) else None
        if kv is not None and info.field_name in ("id", "name", "value"):
            return {"id": "Label:" + json.dumps(kv), "name": kv[0], "value": kv[1]}[info.field_name]
        if info.field_name == "labels":
            return [
                {"__typename": "Label", "__kv": kv, "__chain": mine} for kv in self.labels.items()
            ]
        if info.field_name == "node" and str(args["id"]).startswith("Label:"):
            return {"__typename": "Label", "__kv": json.loads(args["id"][6:]), "__chain": mine}
        t = graphql.get_nullable_type(info.return_type)
        if isinstance(t, GraphQLList):
            return []
        if isinstance(t, (GraphQLObjectType, GraphQLInterfaceType)):
            name = t.name
            if info.field_name == "node":
                name = str(args["id"]).split(":")[0]
            return {"__typename": name, "__chain": mine}
        if t is GraphQLID:
            return f"{info.parent_type.name}:{next(self._ids)}"
        if isinstance(t, GraphQLEnumType):
            return next(iter(t.values))
        return {
            "String": "",
            "Int": 0,
            "Boolean": False,
            "Float": 0.0,
            "Platform": "linux/amd64",
        }.get(t.name)


@dataclass
class EngineError(Exception):
    """An error the engine answers with (``extensions`` as it sends them)."""

    message: str
    extensions: dict[str, Any]

    def as_graphql(self) -> dict[str, Any]:
        return {"message": self.message, "extensions": self.extensions}


def exec_error(cmd: list[str], exit_code: int, stdout: str, stderr: str) -> EngineError:
    """A failing withExec as the engine reports it (dagger-io turns it into ExecError)."""
    return EngineError(
        f'process "{" ".join(cmd)}" did not complete successfully: exit code: {exit_code}',
        {
            "_type": "EXEC_ERROR",
            "cmd": cmd,
            "exitCode": exit_code,
            "stdout": stdout,
            "stderr": stderr,
        },
    )


@contextlib.contextmanager
def engine(session: FakeSession):
    """dagger-io's shared connection (``dag``, ``dagger.connection()``) talks to ``session``."""
    from dagger.client._session import SharedConnection

    shared = SharedConnection()
    before = shared._session
    SharedConnection._session = session  # type: ignore[assignment]
    try:
        yield session
    finally:
        SharedConnection._session = before
