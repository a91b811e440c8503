"""Identity invariants as properties (hypothesis): what must change a digest always does,
what must not never does, and the names built from a digest say exactly that digest."""

from __future__ import annotations

import hashlib
from dataclasses import replace

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from nbpipe.recipe import platforms as plat
from nbpipe.recipe import steps as s
from nbpipe.recipe.catalog import Catalog
from nbpipe.engines import dockerfile
from nbpipe.recipe.image import BaseRef, Image, sha256_json
from nbpipe.recipe.naming import content_tag

ROOT = BaseRef("example.org/root", {plat.AMD64: "sha256:" + "1" * 64,
                                    plat.ARM64: "sha256:" + "2" * 64})
# Seed and example database come from the profile (tests/conftest.py): fixed in CI.
FAST = settings(max_examples=60, deadline=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.large_base_example])

names = st.from_regex(r"[A-Z_][A-Z0-9_]{0,6}", fullmatch=True)
line = st.text(st.characters(whitelist_categories=("L", "N", "P", "S"), whitelist_characters=" "),
               max_size=20)  # printable, one line: what Env and Label values may be
segment = st.from_regex(r"[a-z0-9][a-z0-9._-]{0,6}", fullmatch=True).filter(
    lambda x: x not in (".", ".."))
abs_path = st.lists(segment, min_size=1, max_size=4).map(lambda p: "/" + "/".join(p))
one_step = st.one_of(
    st.builds(lambda n, v: s.Env(name=n, value=v), names, line),
    st.builds(lambda k, v: s.Label(key=k, value=v),
              st.from_regex(r"[a-z][a-z0-9./-]{0,8}", fullmatch=True), line),
    st.builds(lambda sc: s.Run(script=sc), line),
    st.builds(lambda p, c, m: s.File(path=p, content=c, mode=m), abs_path, st.binary(max_size=30),
              st.integers(0, 0o777)),
    st.builds(lambda p: s.Port(port=p), st.integers(1, 65535)),
    st.builds(lambda p: s.Workdir(path=p), abs_path),
)
distinct_steps = st.lists(one_step, min_size=2, max_size=6,
                          unique_by=lambda x: sha256_json(x.canonical()))


def on_root(*steps: s.Step) -> Image:
    return Image.from_base(ROOT, "x").with_step(*steps)


def digest(*steps: s.Step) -> str:
    return on_root(*steps).digest(plat.AMD64)


@FAST
@given(st.binary(min_size=1, max_size=64), st.data())
def test_a_same_length_content_edit_changes_the_digest(content, data) -> None:
    i = data.draw(st.integers(0, len(content) - 1))
    new = data.draw(st.integers(0, 255).filter(lambda b: b != content[i]))
    edited = content[:i] + bytes([new]) + content[i + 1:]
    assert len(edited) == len(content)
    for make in (lambda c: s.File(path="/etc/x", content=c),
                 lambda c: s.HomeFile(path=".x", content=c)):
        assert digest(make(content)) != digest(make(edited))


@FAST
@given(st.integers(0, 0o7777), st.integers(0, 0o7777))
def test_a_mode_change_changes_the_digest(a, b) -> None:
    same = digest(s.File(path="/x", content=b"x", mode=a)) == digest(
        s.File(path="/x", content=b"x", mode=b))
    assert same == (a == b)
    same = digest(s.HomeFile(path="x", content=b"x", mode=a)) == digest(
        s.HomeFile(path="x", content=b"x", mode=b))
    assert same == (a == b)


@FAST
@given(st.from_regex(r"[0-9]{1,5}:[0-9]{1,5}", fullmatch=True),
       st.from_regex(r"[0-9]{1,5}:[0-9]{1,5}", fullmatch=True))
def test_an_owner_change_changes_the_digest(a, b) -> None:
    same = digest(s.File(path="/x", content=b"x", owner=a)) == digest(
        s.File(path="/x", content=b"x", owner=b))
    assert same == (a == b)


@FAST
@given(distinct_steps, st.data())
def test_a_reordered_step_changes_the_digest(steps, data) -> None:
    i = data.draw(st.integers(0, len(steps) - 2))
    j = data.draw(st.integers(i + 1, len(steps) - 1))
    swapped = list(steps)
    swapped[i], swapped[j] = steps[j], steps[i]
    assert digest(*steps) != digest(*swapped)
    assert digest(*steps) != digest(*steps[1:], steps[0])


@FAST
@given(st.dictionaries(st.text(max_size=8), st.one_of(st.integers(), line), min_size=2))
def test_reordering_dict_keys_never_changes_the_encoding(d) -> None:
    assert sha256_json(d) == sha256_json(dict(reversed(list(d.items()))))
    root = BaseRef("example.org/root", dict(reversed(list(ROOT.digests.items()))))
    assert Image.from_base(root).with_env("A", "1").digest() == \
        Image.from_base(ROOT).with_env("A", "1").digest()


@FAST
@given(abs_path, st.lists(st.sampled_from(["/", "//", "/./"]), min_size=1, max_size=4),
       st.booleans())
def test_paths_spelled_differently_but_equal_never_change_the_digest(path, seps, trail) -> None:
    parts = path.strip("/").split("/")
    spelled = "/" + "".join(p + seps[i % len(seps)] for i, p in enumerate(parts))
    spelled = spelled if trail else spelled.rstrip("/")
    assert spelled != path or not trail
    for make in (lambda p: s.File(path=p, content=b"x"), lambda p: s.Workdir(path=p),
                 lambda p: s.Download(url="https://example.org/x", sha256="a" * 64, dest=p)):
        assert digest(make(spelled)) == digest(make(path)), spelled
    rel = path.lstrip("/")
    assert digest(s.HomeFile(path="./" + rel.replace("/", "/./"), content=b"x")) == \
        digest(s.HomeFile(path=rel, content=b"x"))


@FAST
@given(distinct_steps)
def test_rebuilding_the_same_recipe_never_changes_the_digest(steps) -> None:
    copies = [replace(x) for x in steps]
    a, b = on_root(*steps), Image.from_base(BaseRef(ROOT.ref, dict(ROOT.digests))).with_step(
        *copies)
    assert a.digest() == b.digest() and a.digest(plat.ARM64) == b.digest(plat.ARM64)
    assert a.named("other").digest() == a.digest()


def test_file_content_from_a_path_or_bytes_is_the_same_step(tmp_path) -> None:
    f = tmp_path / "x.cfg"
    f.write_bytes(b"same bytes\n")
    assert Image.from_base(ROOT).with_file("/etc/x", f).digest() == \
        Image.from_base(ROOT).with_file("/etc/x", b"same bytes\n").digest() == \
        Image.from_base(ROOT).with_file("/etc/x", "same bytes\n").digest()


# A random family: parents[i] is the index of image i's parent (-1: the root), defined in
# any order.
trees = st.integers(2, 8).flatmap(lambda n: st.tuples(
    st.tuples(*[st.integers(-1, i - 1) for i in range(n)]), st.permutations(range(n))))


def _catalog(parents, definition_order, changed: int | None = None) -> Catalog:
    cat = Catalog()
    for i in definition_order:
        def recipe(img: Image, i=i) -> Image:
            img = img.with_env("N", str(i))
            return img.with_label("changed", "yes") if i == changed else img
        cat.add(f"i{i}", ROOT if parents[i] < 0 else f"i{parents[i]}", recipe)
    return cat


def _below(parents, k: int) -> set[int]:
    out, grew = {k}, True
    while grew:
        more = {i for i, p in enumerate(parents) if p in out} - out
        grew, out = bool(more), out | more
    return out


@FAST
@given(trees, st.data())
def test_a_parent_change_changes_every_descendant_and_no_cousin(tree, data) -> None:
    parents, definition_order = tree
    k = data.draw(st.integers(0, len(parents) - 1))
    before = _catalog(parents, definition_order).digests()
    after = _catalog(parents, definition_order, changed=k).digests()
    assert {n for n in before if before[n] != after[n]} == {f"i{i}" for i in _below(parents, k)}


@FAST
@given(trees)
def test_order_puts_parents_first_whatever_the_definition_order(tree) -> None:
    parents, definition_order = tree
    cat = _catalog(parents, definition_order)
    order = cat.order()
    assert sorted(order) == sorted(f"i{i}" for i in range(len(parents)))
    for i, p in enumerate(parents):
        if p >= 0:
            assert order.index(f"i{p}") < order.index(f"i{i}")
    leaf = f"i{len(parents) - 1}"
    sub = cat.order([leaf])
    want, j = [], len(parents) - 1
    while j >= 0:
        want.insert(0, f"i{j}")
        j = parents[j]
    assert sub == want


@settings(max_examples=15, deadline=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.large_base_example])
@given(distinct_steps)
def test_the_content_tag_is_the_digest_and_the_version_label_in_both_lowerings(steps) -> None:
    import pytest

    # the Dagger lowering writes text files only
    img = on_root(*(replace(x, content=x.content.hex().encode()) if isinstance(x, s.File) else x
                    for x in steps))
    assert img.digest() == "sha256:" + hashlib.sha256(
        ('{"linux/amd64":"%s","linux/arm64":"%s"}' % (img.digest(plat.AMD64),
                                                      img.digest(plat.ARM64))).encode()
    ).hexdigest()
    tag = content_tag(img)
    assert tag == "sha-" + img.digest().split(":", 1)[1][:16]
    for p in plat.ALL:
        text = dockerfile.render(img, p).text
        assert f'LABEL "org.opencontainers.image.version"="{tag}"\n' in text
    lowering = pytest.importorskip("nbpipe.engines.dagger")
    pytest.importorskip("dagger")
    ctr = lowering.lower(img, plat.ARM64)
    labels = [f.args for f in ctr._ctx.selections if f.name == "withLabel"]
    assert {"name": "org.opencontainers.image.version", "value": tag} in labels


def test_the_canonical_encoding_is_sorted_compact_utf8_json() -> None:
    """Written out by hand: what a digest hashes (a change here must bump DIGEST_VERSION)."""
    value = {"b": [1, "é", b"x".hex()], "a": None, "c": {"z": True, "y": 1.5}}
    text = '{"a":null,"b":[1,"é","78"],"c":{"y":1.5,"z":true}}'
    assert sha256_json(value) == "sha256:" + hashlib.sha256(text.encode("utf-8")).hexdigest()
