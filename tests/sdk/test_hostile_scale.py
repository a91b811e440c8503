"""Inputs of a few MB are answered in seconds and within 3 GB (issue 21, kinds 3 and 4):
requirements and environment.yml are read in linear time, a long spec chain costs one
pass, and what YAML aliases or a spec's files would expand to is bounded in bytes."""

from __future__ import annotations

import time
import tracemalloc
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from nbpipe.recipe import catalog as catalogs
from nbpipe.inputs import requirements, safe_io, spec
from nbpipe.recipe.catalog import Catalog
from nbpipe.errors import CatalogError, NbpipeError, SpecError
from nbpipe.recipe.image import BaseRef
from tests.sdk import bounded

ROOT = BaseRef("ghcr.io/acme/base", {"linux/amd64": "sha256:" + "a" * 64})


def megabyte_of(line: str) -> str:
    """Lines up to just under 1 MiB (the per-file limit)."""
    lines, size, i = [], 0, 0
    while True:
        text = line.format(i=i) + "\n"
        if size + len(text) > safe_io.MAX_BYTES - 64:
            return "".join(lines)
        lines.append(text)
        size += len(text)
        i += 1


# -- linear work -----------------------------------------------------------------------

@pytest.mark.parametrize("line", ["p{i}", "same==1.0", "p{i}[extra]>=1.0",
                                  "# comment {i}", "p{i}  # trailing comment"])
def test_a_megabyte_of_requirements_is_answered_in_seconds(tmp_path: Path, line: str) -> None:
    repo = tmp_path / "repo"
    repo.mkdir()
    (repo / "requirements.txt").write_text(megabyte_of(line))
    run = bounded.nbpipe("plan", "--from-repo", str(repo), cwd=tmp_path, timeout=60)
    assert run.rc == 0, run.err[-2000:]
    assert run.seconds < 30, run.seconds


def test_a_megabyte_environment_yml_is_answered_in_seconds(tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    repo.mkdir()
    (repo / "environment.yml").write_text("dependencies:\n  - python=3.11\n  - pip:\n"
                                          + megabyte_of("    - p{i}"))
    run = bounded.nbpipe("export", "--from-repo", str(repo), cwd=tmp_path, timeout=60)
    assert run.rc in (0, 1), run.err[-2000:]  # 1: the parent's Python may not be 3.11
    if run.rc == 1:
        run.one_line_error("environment.yml: asks for python=3.11")
    assert run.seconds < 30, run.seconds


def test_a_thousand_spec_chain_costs_one_pass(tmp_path: Path) -> None:
    for i in range(1000):
        parent = "jupyter" if i == 0 else f"s{i - 1}"
        (tmp_path / f"s{i}.yaml").write_text(f"name: s{i}\nparent: {parent}\n"
                                            f"env: {{A{i}: x}}\n")
    code = ("import sys; from pathlib import Path; from nbpipe import spec; "
            "from nbpipe.family import family\n"
            "cat = family()\n"
            "for i in range(1000): spec.load(Path(f's{i}.yaml')).register(cat)\n"
            "img = cat.resolve('s999'); print(len(cat.order()), img.digest()[:7], "
            "len(img.config().env))")
    run = bounded.python("-c", code, cwd=tmp_path, timeout=60)
    assert run.rc == 0, run.err[-2000:]
    assert run.out.split()[0] == str(1000 + len(__import__("nbpipe.family").family.family()
                                                 .names))
    assert run.seconds < 30, run.seconds


def test_validating_and_resolving_a_long_chain_is_linear() -> None:
    """2,000 images in a chain: validate, order and resolve in one pass each (it was N^3:
    the catalog validated again at every level)."""
    cat = Catalog()
    cat.add("c0", ROOT, lambda p: p.with_env("A", "0"))
    for i in range(1, 2000):
        cat.add(f"c{i}", f"c{i - 1}", lambda p: p)
    start = time.monotonic()
    assert cat.order()[-1] == "c1999"
    img = cat.resolve("c1999")
    assert img.digest("linux/amd64").startswith("sha256:")
    assert len(cat.digests()) == 2000
    assert time.monotonic() - start < 10


class Counting(dict):
    """A catalog's entries that count look-ups: work measured without a clock."""

    looked = 0

    def __getitem__(self, key):
        Counting.looked += 1
        return super().__getitem__(key)


def test_a_long_chain_costs_a_linear_number_of_look_ups() -> None:
    cat = Catalog()
    cat.add("c0", ROOT, lambda p: p)
    for i in range(1, 2000):
        cat.add(f"c{i}", f"c{i - 1}", lambda p: p)
    cat.entries = Counting(cat.entries)
    Counting.looked = 0
    cat.digests()  # validates, orders and resolves every image (plan does the same)
    cat.order(list(cat.entries))  # the closure of every name: each chain walked once
    assert Counting.looked < 10 * 2000, Counting.looked  # N^2 would be millions


def test_a_chain_past_the_limit_is_one_line(monkeypatch) -> None:
    monkeypatch.setattr(catalogs, "MAX_CHAIN", 50)
    cat = Catalog()
    cat.add("c0", ROOT, lambda p: p)
    for i in range(1, 51):
        cat.add(f"c{i}", f"c{i - 1}", lambda p: p)
    cat.validate()  # 50 ancestors: allowed
    cat.add("c51", "c50", lambda p: p)
    with pytest.raises(CatalogError, match="'c51' has more than 50 ancestors"):
        cat.validate()


def test_a_long_cycle_is_found_in_linear_time() -> None:
    cat = Catalog()
    for i in range(5000):
        cat.add(f"c{i}", f"c{(i + 1) % 5000}", lambda p: p)
    start = time.monotonic()
    with pytest.raises(CatalogError, match="parent cycle: c0 -> c1 -> "):
        cat.validate()
    assert time.monotonic() - start < 5


@settings(max_examples=25, deadline=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(st.lists(st.one_of(st.from_regex(r"[a-z][a-z0-9_-]{0,8}(==[0-9]{1,3}(\.[0-9]{1,3}){0,2})?",
                                        fullmatch=True),
                          st.just(""), st.just("# c"), st.just("  dup==1  # x")),
                max_size=3000),
       st.booleans())
def test_requirement_lists_of_any_size_read_exactly_in_linear_time(tmp_path_factory, lines,
                                                                   bom: bool) -> None:
    f = tmp_path_factory.mktemp("reqs") / "requirements.txt"
    f.write_text(("\ufeff" if bom else "") + "\n".join(lines) + "\n")
    tracemalloc.start()
    start = time.monotonic()
    try:
        got = requirements.pip(f)
    finally:
        seconds = time.monotonic() - start
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
    assert got == [x.split("#")[0].strip() for x in lines if x.split("#")[0].strip()]
    assert seconds < 0.5 + len(lines) * 0.001 and peak < 50 << 20


# -- memory: bytes, not only nodes ------------------------------------------------------

def test_a_big_anchor_used_thousands_of_times_is_refused_within_3_gb(tmp_path: Path) -> None:
    big = "x" * 400_000
    (tmp_path / "bomb.yaml").write_text(
        f'name: bomb\nparent: jupyter\nlabels: {{a: &a "{big}"}}\n'
        f"probes:\n  commands: [{', '.join(['*a'] * 12000)}]\n")
    run = bounded.nbpipe("spec", "validate", "bomb.yaml", cwd=tmp_path, timeout=30)
    run.one_line_error("bomb.yaml: too large once its aliases", "8 MiB of text")
    assert run.seconds < 15


@pytest.mark.parametrize("doc", [
    # a long key, used as an alias key many times
    "k: &k " + "y" * 100_000 + "\nm: {" + ", ".join(f"x{i}: *k" for i in range(100)) + "}\n",
    # a merge key pulling a big mapping into many others
    "base: &b {" + ", ".join(f"k{i}: {'v' * 1000}" for i in range(100)) + "}\n"
    + "".join(f"m{i}: {{<<: *b}}\n" for i in range(100)),
    # nested: a list of a big string, listed again and again
    "a: &a ['" + "z" * 200_000 + "']\nb: &b [*a, *a, *a, *a, *a, *a]\nc: [*b, *b, *b, *b, *b, *b, *b]\n",
])
def test_expanded_text_is_bounded_whatever_the_shape(doc: str) -> None:
    tracemalloc.start()
    start = time.monotonic()
    try:
        with pytest.raises(NbpipeError, match="8 MiB of text"):
            safe_io.compose_yaml(doc, "environment.yml")
    finally:
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
    assert time.monotonic() - start < 5 and peak < 200 << 20


def test_text_just_under_the_expansion_limit_is_read() -> None:
    doc = "a: &a '" + "z" * 1000 + "'\nb: [" + ", ".join(["*a"] * 8000) + "]\n"
    assert len(safe_io.load_yaml_text(doc, "x.yml")["b"]) == 8000


def test_one_sparse_file_copied_sixty_times_is_refused_within_3_gb(tmp_path: Path) -> None:
    with (tmp_path / "big.bin").open("wb") as f:
        f.truncate(60 << 20)  # sparse: nothing written, 60 MiB read
    items = "".join(f"  - {{path: /opt/f{i}, source: big.bin}}\n" for i in range(60))
    (tmp_path / "s.yaml").write_text(f"name: sparse\nparent: jupyter\nfiles:\n{items}")
    run = bounded.nbpipe("spec", "validate", "s.yaml", cwd=tmp_path, timeout=60)
    run.one_line_error("s.yaml:8: files[4].source: the spec names more than 256 MiB")


def test_the_spec_budget_counts_every_file_named(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setattr(spec, "MAX_SPEC_BYTES", 3000)
    (tmp_path / "a.bin").write_bytes(b"a" * 1000)
    items = "".join(f"  - {{path: /opt/f{i}, source: a.bin}}\n" for i in range(3))
    (tmp_path / "s.yaml").write_text(f"name: s\nparent: jupyter\nfiles:\n{items}")
    spec.load(tmp_path / "s.yaml")  # 3,000 bytes: the limit itself is allowed
    (tmp_path / "s.yaml").write_text(f"name: s\nparent: jupyter\nfiles:\n{items}"
                                     "  - {path: /opt/g, source: a.bin}\n")
    with pytest.raises(SpecError, match=r"s.yaml:7: files\[3\].source: the spec names more"):
        spec.load(tmp_path / "s.yaml")
