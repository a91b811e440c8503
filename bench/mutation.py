"""Mutation run: plant one small bug at a time in the core modules and see whether the
offline tests (tests/sdk) notice. Not part of CI: it takes minutes.

    .venv/bin/python bench/mutation.py                  # the reported run: 169 mutants, ~7 min
    .venv/bin/python bench/mutation.py --sample 0       # all ~1,250 mutants (about an hour)
    .venv/bin/python bench/mutation.py nbpipe/locks/lock.py --sample 0  # each mutant of one module
    .venv/bin/python bench/mutation.py --list           # the mutants, not run
    .venv/bin/python bench/mutation.py --report         # mutation.md again from mutation.json

Each mutant is one AST edit (a comparison flipped, and/or swapped, a `not` dropped, a
constant changed, a condition negated, a raise or call statement removed, a return
value replaced by None) written into a scratch copy of the repository; the tests that
cover that module run against it with -x in a forked child (pytest and the heavy
libraries are imported once, nbpipe afresh for every mutant) under a time limit. A
mutant is *killed* when a test fails (or the time limit is hit), *survived* when all
pass. By default a seeded random draw of about 160 of the ~1,250 mutants runs (in
proportion per module, at least 8 each), which keeps a run near 7 minutes on 2 shared
cores. Results go to bench/mutation.json and a summary with every survivor, and the
reason it is harmless (or the test that now kills it) from bench/mutation_notes.py, to
bench/mutation.md.

Not mutated, on purpose: docstrings, type annotations, string constants (commands and
prose: the golden files in tests/golden pin every string a lowering emits, and mutating
message text only tests that tests quote prose), slice bounds that cut log tails, and
timeouts.
"""

from __future__ import annotations

import argparse
import ast
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SCRATCH = Path(os.environ.get("NBPIPE_MUTATION_DIR", "/tmp/nbpipe-mutation"))

# module -> the offline tests that cover it (fastest, most direct first: -x stops early)
T = "tests/sdk/"
TARGETS: dict[str, list[str]] = {
    "nbpipe/recipe/image.py": [
        T + "test_image.py",
        T + "test_digest.py",
        T + "test_catalog.py",
        T + "test_export.py",
        T + "test_identity.py",
    ],
    "nbpipe/recipe/steps.py": [
        T + "test_steps.py",
        T + "test_digest.py",
        T + "test_export.py",
        T + "test_golden.py",
        T + "test_hostile_spec.py",
        T + "test_spec.py",
    ],
    "nbpipe/recipe/catalog.py": [
        T + "test_catalog.py",
        T + "test_identity.py",
        T + "test_digest.py",
    ],
    "nbpipe/locks/lock.py": [T + "test_lock.py", T + "test_golden.py"],
    "nbpipe/run/publish.py": [T + "test_publish.py"],
    "nbpipe/engines/dockerfile.py": [
        T + "test_export.py",
        T + "test_golden.py",
        T + "test_oci.py",
        T + "test_hostile_spec.py",
    ],
    "nbpipe/engines/dagger.py": [T + "test_golden.py", T + "test_dagger.py"],
    "nbpipe/engines/oci.py": [T + "test_oci.py", T + "test_publish.py"],
    "nbpipe/run/backends.py": [
        T + "test_oci.py",
        T + "test_dagger_schema.py",
        T + "test_pipeline.py",
    ],
    "nbpipe/run/pipeline.py": [
        T + "test_pipeline.py",
        T + "test_state_trees.py",
        T + "test_plan_is_build.py",
    ],
    "nbpipe/probes/checks.py": [T + "test_checks.py"],
    "nbpipe/inputs/spec.py": [T + "test_spec.py", T + "test_hostile_spec.py", T + "test_golden.py"],
}

SWAP = {
    ast.Eq: ast.NotEq,
    ast.NotEq: ast.Eq,
    ast.Lt: ast.GtE,
    ast.GtE: ast.Lt,
    ast.Gt: ast.LtE,
    ast.LtE: ast.Gt,
    ast.In: ast.NotIn,
    ast.NotIn: ast.In,
    ast.Is: ast.IsNot,
    ast.IsNot: ast.Is,
}
QUIET_CALLS = {"on_event", "log", "print", "write"}  # progress output, not behaviour
PROSE = {
    "NbpipeError",
    "CatalogError",
    "SpecError",
    "BuildError",
    "ProbeFailure",
    "ProbeSkip",
    "ValueError",
    "TypeError",
}


@dataclass
class Mutant:
    module: str
    index: int
    line: int
    what: str
    status: str = ""  # killed | survived | timeout
    seconds: float = 0.0
    killed_by: str = ""


class Mutator(ast.NodeTransformer):
    """Counts mutation sites in a fixed walk order; with ``target`` set, applies that one."""

    def __init__(self, target: int | None = None) -> None:
        self.target = target
        self.n = 0
        self.found: list[tuple[int, str]] = []
        self.done = False

    def _site(self, node: ast.AST, what: str) -> bool:
        i = self.n
        self.n += 1
        if self.target is None:
            self.found.append((getattr(node, "lineno", 0), what))
        return i == self.target

    # -- things never mutated ----------------------------------------------------------
    def _body(self, node):
        if (
            node.body
            and isinstance(node.body[0], ast.Expr)
            and isinstance(node.body[0].value, ast.Constant)
            and isinstance(node.body[0].value.value, str)
        ):
            node.body = node.body[:1] + [self.visit(x) for x in node.body[1:]]
            node.body = [x for x in node.body if x is not None]
        else:
            node.body = [y for y in (self.visit(x) for x in node.body) if y is not None]
        return node

    def visit_Module(self, node):
        return self._body(node)

    def visit_ClassDef(self, node):
        node.decorator_list = [self.visit(d) for d in node.decorator_list]
        return self._body(node)

    def visit_FunctionDef(self, node):
        node.decorator_list = [self.visit(d) for d in node.decorator_list]
        for a in (*node.args.defaults, *[d for d in node.args.kw_defaults if d]):
            self.visit(a)
        return self._body(node)

    visit_AsyncFunctionDef = visit_FunctionDef

    def visit_AnnAssign(self, node):
        if node.value is not None:
            node.value = self.visit(node.value)
        return node

    def visit_If(self, node):
        if isinstance(node.test, ast.Name) and node.test.id == "TYPE_CHECKING":
            return node
        if not isinstance(node.test, (ast.Compare, ast.BoolOp, ast.UnaryOp)):
            if self._site(node, f"if {ast.unparse(node.test)[:40]} -> if not ..."):
                node.test = ast.UnaryOp(ast.Not(), node.test)
                return node
        self.generic_visit(node)
        return node

    def visit_Slice(self, node):
        return node  # log-tail bounds ([-300:]): cutting one more char is harmless

    def visit_keyword(self, node):
        if node.arg in ("timeout", "ready_timeout"):
            return node
        self.generic_visit(node)
        return node

    def visit_Call(self, node):
        name = (
            node.func.id
            if isinstance(node.func, ast.Name)
            else (node.func.attr if isinstance(node.func, ast.Attribute) else "")
        )
        if name in PROSE:  # the message text: visit nothing inside
            return node
        self.generic_visit(node)
        return node

    def visit_JoinedStr(self, node):
        return node  # f-strings: prose and command text; their values are mutated elsewhere

    # -- mutations ---------------------------------------------------------------------
    def visit_Compare(self, node):
        self.generic_visit(node)
        for i, op in enumerate(node.ops):
            new = SWAP.get(type(op))
            if new and self._site(node, f"{type(op).__name__} -> {new.__name__}"):
                node.ops[i] = new()
        return node

    def visit_BoolOp(self, node):
        self.generic_visit(node)
        new = ast.Or if isinstance(node.op, ast.And) else ast.And
        if self._site(node, f"{type(node.op).__name__} -> {new.__name__}"):
            node.op = new()
        return node

    def visit_UnaryOp(self, node):
        self.generic_visit(node)
        if isinstance(node.op, ast.Not) and self._site(node, "not x -> x"):
            return node.operand
        return node

    def visit_BinOp(self, node):
        self.generic_visit(node)
        new = {ast.Add: ast.Sub, ast.Sub: ast.Add}.get(type(node.op))
        if (
            new
            and not isinstance(node.left, (ast.Constant, ast.JoinedStr, ast.List))
            and self._site(node, f"{type(node.op).__name__} -> {new.__name__}")
        ):
            node.op = new()
        return node

    def visit_Constant(self, node):
        v = node.value
        if isinstance(v, bool):
            if self._site(node, f"{v} -> {not v}"):
                return ast.copy_location(ast.Constant(not v), node)
        elif isinstance(v, int):
            if self._site(node, f"{v} -> {v + 1}"):
                return ast.copy_location(ast.Constant(v + 1), node)
        return node  # strings: commands and prose; the golden files pin the lowerings' text

    def visit_Return(self, node):
        self.generic_visit(node)
        if node.value is not None and not (
            isinstance(node.value, ast.Constant) and node.value.value is None
        ):
            if self._site(node, "return x -> return None"):
                node.value = ast.Constant(None)
        return node

    def visit_Raise(self, node):
        if self._site(node, "raise -> pass"):
            return ast.copy_location(ast.Pass(), node)
        return node

    def visit_Expr(self, node):
        if isinstance(node.value, ast.Call):
            f = node.value.func
            name = (
                f.id
                if isinstance(f, ast.Name)
                else (f.attr if isinstance(f, ast.Attribute) else "")
            )
            if name not in QUIET_CALLS and self._site(node, f"{name}(...) -> pass"):
                return ast.copy_location(ast.Pass(), node)
        self.generic_visit(node)
        return node


def original_source(module: str) -> str:
    """The module as the run started (the scratch copy), whatever the checkout does since."""
    snap = SCRATCH / ".original" / module
    return (snap if snap.exists() else ROOT / module).read_text()


def mutants(module: str) -> list[Mutant]:
    tree = ast.parse(original_source(module))
    m = Mutator()
    m.visit(tree)
    return [Mutant(module, i, line, what) for i, (line, what) in enumerate(m.found)]


def mutated_source(module: str, index: int) -> str:
    tree = ast.parse(original_source(module))
    tree = Mutator(index).visit(tree)
    ast.fix_missing_locations(tree)
    return ast.unparse(tree)


def prepare_scratch() -> None:
    """A copy of the tracked tree (nbpipe/family and nbpipe/pipelines stay symlinks)."""
    if SCRATCH.exists():
        shutil.rmtree(SCRATCH)
    files = (
        subprocess.run(["git", "ls-files", "-z"], cwd=ROOT, capture_output=True, check=True)
        .stdout.decode()
        .split("\0")
    )
    files += [str(p.relative_to(ROOT)) for p in (ROOT / "tests").rglob("*.py")]  # uncommitted
    for rel in dict.fromkeys(f for f in files if f):
        src, dst = ROOT / rel, SCRATCH / rel
        dst.parent.mkdir(parents=True, exist_ok=True)
        if src.is_symlink():
            os.symlink(os.readlink(src), dst)
        elif src.is_file():
            shutil.copy2(src, dst)
    for module in TARGETS:  # the originals every mutant starts from
        snap = SCRATCH / ".original" / module
        snap.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(ROOT / module, snap)


def run_one(mutant: Mutant, source: str, tests: list[str], timeout: float) -> None:
    """Fork; the child imports nbpipe from the scratch copy holding this mutant."""
    path = SCRATCH / mutant.module
    original = original_source(mutant.module)
    path.write_text(source)
    shutil.rmtree(path.parent / "__pycache__", ignore_errors=True)
    report = SCRATCH / ".mutant-result"
    report.unlink(missing_ok=True)
    start = time.monotonic()
    pid = os.fork()
    if pid == 0:  # the child
        os.setpgid(0, 0)
        os.chdir(SCRATCH)
        sys.path.insert(0, str(SCRATCH))
        sys.dont_write_bytecode = True
        os.environ["PYTHONPATH"] = str(SCRATCH)  # and for the subprocesses tests start
        os.environ["PYTHONDONTWRITEBYTECODE"] = "1"
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, 1)
        os.dup2(devnull, 2)
        import pytest

        class First:
            failed = ""

            def pytest_runtest_logreport(self, report):
                if report.failed and not First.failed:
                    First.failed = report.nodeid

        rc = pytest.main(
            [
                "-x",
                "-q",
                "-p",
                "no:cacheprovider",
                "-p",
                "no:randomly",
                "-o",
                "addopts=",
                "--timeout",
                str(int(timeout)),
                *tests,
            ],
            plugins=[First()],
        )
        report.write_text(json.dumps({"rc": int(rc), "failed": First.failed}))
        os._exit(0)
    while True:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            break
        if time.monotonic() - start > timeout:
            try:
                os.killpg(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            os.waitpid(pid, 0)
            mutant.status = "timeout"
            break
        time.sleep(0.05)
    mutant.seconds = round(time.monotonic() - start, 2)
    path.write_text(original)
    if mutant.status != "timeout":
        try:
            result = json.loads(report.read_text())
        except (OSError, ValueError):
            result = {"rc": 1, "failed": "(the test process died)"}
        if result["rc"] == 0:
            mutant.status = "survived"
        elif result["rc"] in (1, 2, 3, 4):  # failed / interrupted / internal / conftest import
            mutant.status, mutant.killed_by = "killed", result["failed"] or "(collection)"
        else:
            mutant.status = f"error rc={result['rc']}"


def preload() -> None:
    """Heavy imports paid once, in the parent (the children inherit them)."""
    import pytest  # noqa: F401

    for mod in (
        "dagger",
        "yaml",
        "typer",
        "rich",
        "anyio",
        "httpx",
        "hypothesis",
        "pytest_timeout",
        "websockets",
    ):
        try:
            __import__(mod)
        except ImportError:
            pass


def git_head() -> str:
    return subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True
    ).stdout.strip()


def markdown(results: list[Mutant], meta: dict) -> str:
    from mutation_notes import HISTORY, NOTES  # type: ignore[import-not-found]

    killed = [m for m in results if m.status in ("killed", "timeout")]
    timeouts = [m for m in results if m.status == "timeout"]
    lines = [
        "# Mutation run",
        "",
        f"Ran {meta['date']} on commit `{meta['commit']}` ({meta['seconds']:.0f} s, "
        f"{meta['cpus']} CPUs): **{len(killed)} of {len(results)} mutants killed "
        f"({meta['score']:.1f}%)**"
        + (f", a seeded random draw of {meta['sampled']} mutants" if meta.get("sampled") else "")
        + f". {len(timeouts)} of the kills are time-outs (listed below). "
        "`python bench/mutation.py` regenerates this file (see its docstring).",
        "",
        "| module | mutants | killed | survived | score |",
        "|---|---|---|---|---|",
    ]
    for mod in dict.fromkeys(m.module for m in results):
        ms = [m for m in results if m.module == mod]
        k = sum(m.status in ("killed", "timeout") for m in ms)
        lines.append(f"| {mod} | {len(ms)} | {k} | {len(ms) - k} | {100 * k / len(ms):.0f}% |")
    if timeouts:
        lines += ["", "## Time-outs (counted as killed)", ""]
        lines += [f"- `{m.module}:{m.line}` {m.what}" for m in timeouts]
    lines += ["", "## Every survivor", ""]
    for m in results:
        if m.status in ("killed", "timeout"):
            continue
        note = NOTES.get(f"{m.module}:{m.line}:{m.what}") or "(not yet explained)"
        lines.append(f"- `{m.module}:{m.line}` {m.what} ({m.status}): {note}")
    if HISTORY:
        lines += ["", "## History", "", *HISTORY]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="bench/mutation.py")
    ap.add_argument("modules", nargs="*", help="modules (default: every core module)")
    ap.add_argument("--list", action="store_true", help="print the mutants, run nothing")
    ap.add_argument("--timeout", type=float, default=90, help="seconds per mutant")
    ap.add_argument("--out", type=Path, default=ROOT / "bench" / "mutation.json")
    ap.add_argument("--only", type=str, default="", help="module:index,... to (re)run")
    ap.add_argument(
        "--sample",
        type=int,
        default=160,
        help="run about this many mutants, drawn per module in proportion "
        "(seeded: the same draw for the same code); 0: all",
    )
    ap.add_argument("--seed", type=int, default=15)
    ap.add_argument(
        "--report",
        action="store_true",
        help="rewrite mutation.md from mutation.json and the notes; run nothing",
    )
    args = ap.parse_args(argv)
    if args.report:
        data = json.loads(args.out.read_text())
        sys.path.insert(0, str(ROOT / "bench"))
        args.out.with_suffix(".md").write_text(
            markdown([Mutant(**m) for m in data["mutants"]], data["meta"])
        )
        return 0
    modules = args.modules or list(TARGETS)
    commit = git_head()
    if not args.list:
        preload()
        prepare_scratch()  # first: the mutants are drawn from this snapshot
    todo = [m for mod in modules for m in mutants(mod)]
    total = len(todo)
    if args.only:
        keep = set(args.only.split(","))
        todo = [m for m in todo if f"{m.module}:{m.index}" in keep]
    if args.sample and args.sample < len(todo):
        import random

        rng = random.Random(args.seed)
        drawn = []
        for mod in modules:
            ms = [m for m in todo if m.module == mod]
            quota = max(min(8, len(ms)), round(args.sample * len(ms) / len(todo)))
            drawn += sorted(rng.sample(ms, min(quota, len(ms))), key=lambda m: m.index)
        todo = drawn
    if args.list:
        for m in todo:
            print(f"{m.module}:{m.index} line {m.line}: {m.what}")
        print(f"{len(todo)} mutants")
        return 0
    started = time.monotonic()
    for n, m in enumerate(todo, 1):
        tests = [t for t in TARGETS[m.module] if (ROOT / t).exists()]
        run_one(m, mutated_source(m.module, m.index), tests, args.timeout)
        print(
            f"[{n}/{len(todo)}] {m.status:8} {m.seconds:5.1f}s {m.module}:{m.line} {m.what}"
            + (f"  <- {m.killed_by}" if m.killed_by else ""),
            flush=True,
        )
    killed = sum(m.status in ("killed", "timeout") for m in todo)
    meta = {
        "date": time.strftime(
            "%Y-%m-%d %H:%M UTC", time.gmtime(time.time() - (time.monotonic() - started))
        )
        + " (start)",
        "commit": commit,
        "sampled": f"{len(todo)} of {total} (seed {args.seed})" if len(todo) < total else "",
        "seconds": round(time.monotonic() - started),
        "cpus": os.cpu_count(),
        "score": round(100 * killed / max(len(todo), 1), 1),
        "killed": killed,
        "total": len(todo),
    }
    args.out.write_text(
        json.dumps({"meta": meta, "mutants": [asdict(m) for m in todo]}, indent=1) + "\n"
    )
    sys.path.insert(0, str(ROOT / "bench"))
    (args.out.with_suffix(".md")).write_text(markdown(todo, meta))
    print(
        f"{killed}/{len(todo)} killed ({meta['score']}%) in {meta['seconds']} s; "
        f"see {args.out.with_suffix('.md')}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
