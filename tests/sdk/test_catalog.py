"""Catalog: malformed graphs are refused with the image named; order and closures."""

from __future__ import annotations

import pytest

from nbpipe.recipe import platforms as plat
from nbpipe.recipe.catalog import Catalog
from nbpipe.errors import CatalogError, NbpipeError
from nbpipe.recipe.image import BaseRef, Image

ROOT = BaseRef("example.org/root", {plat.AMD64: "sha256:" + "1" * 64})


def ident(img: Image) -> Image:
    return img.with_env("X", img.name)


def test_unknown_parent_names_the_image() -> None:
    c = Catalog()
    c.add("a", ROOT, ident)
    c.add("b", "nope", ident)
    with pytest.raises(CatalogError, match="image 'b' has unknown parent 'nope'"):
        c.order()


def test_cycle_names_the_loop() -> None:
    c = Catalog()
    c.add("a", ROOT, ident)
    c.add("b", "c", ident)
    c.add("c", "b", ident)
    with pytest.raises(CatalogError, match=r"parent cycle: b -> c -> b"):
        c.validate()


def test_self_parent_is_a_cycle() -> None:
    c = Catalog()
    c.add("a", "a", ident)
    with pytest.raises(CatalogError) as exc:
        c.resolve("a")
    assert str(exc.value) == "image 'a' is in a parent cycle: a -> a"


def test_duplicate_name() -> None:
    c = Catalog()
    c.add("a", ROOT, ident)
    with pytest.raises(CatalogError, match="'a' is defined twice"):
        c.add("a", ROOT, ident)


def test_unknown_image_lists_known_ones() -> None:
    c = Catalog()
    c.add("a", ROOT, ident)
    with pytest.raises(CatalogError, match="unknown image 'zz'; known images: a"):
        c.resolve("zz")


def test_recipe_must_return_an_image_built_on_its_parent() -> None:
    c = Catalog()
    c.add("a", ROOT, lambda img: "oops")  # type: ignore[arg-type,return-value]
    with pytest.raises(CatalogError, match="returned str"):
        c.resolve("a")
    d = Catalog()
    d.add("a", ROOT, ident)
    d.add("b", "a", lambda img: Image.from_base(ROOT))
    with pytest.raises(CatalogError, match="must build on the parent"):
        d.resolve("b")


def test_order_subgraph_and_affected() -> None:
    c = Catalog()
    c.add("a", ROOT, ident)
    c.add("b", "a", ident)
    c.add("c", "a", ident)
    c.add("d", "b", ident)
    assert c.order() == ["a", "b", "c", "d"]
    assert c.order(["d"]) == ["a", "b", "d"]
    assert c.children("b") == ["d"] and c.children("d") == []
    assert c.descendants("a") == {"b", "c", "d"} and c.descendants("b") == {"d"}
    assert c.descendants("d") == set()
    before = c.digests()
    assert c.affected(before) == []
    assert c.affected({**before, "b": "sha256:old"}) == ["b"]
    assert c.affected({k: v for k, v in before.items() if k != "c"}) == ["c"]


def test_platform_subset_is_enforced() -> None:
    amd_only = Image.from_base(ROOT)
    with pytest.raises(NbpipeError) as exc:
        Image(parent=amd_only, platforms=(plat.AMD64, plat.ARM64), name="x")
    assert str(exc.value) == ("image x: platform(s) linux/arm64 not offered by its parent "
                              "(which has linux/amd64)")


def test_order_is_parents_first_when_children_are_defined_first() -> None:
    c = Catalog()
    c.add("d", "b", ident)
    c.add("c", "a", ident)
    c.add("b", "a", ident)
    c.add("a", ROOT, ident)
    assert c.order() == ["a", "c", "b", "d"]  # by depth, then definition order
    assert c.order(["d"]) == ["a", "b", "d"]
    assert c.children("a") == ["c", "b"]
    assert c.ancestors("d") == ["b", "a"]
    assert c.closure(["d", "c"]) == {"a", "b", "c", "d"}
    assert c.resolve("d").parent == c.resolve("b")


@pytest.mark.parametrize("name", ["", "a b", "a/b", "a:b", "a$"])
def test_image_names_are_plain(name: str) -> None:
    c = Catalog()
    with pytest.raises(CatalogError) as exc:
        c.add(name, ROOT, ident)
    assert str(exc.value) == (f"image name {name!r} may use only letters, digits, '-', '_', '.'")
    assert c.names == []
    c.add("ok-1_x.y", ROOT, ident)
    assert c.names == ["ok-1_x.y"]


def test_the_decorator_registers_with_the_docstring_as_description() -> None:
    c = Catalog()

    @c.image("a", parent=ROOT)
    def a(img: Image) -> Image:
        """An image.

        More words that are not the description."""
        return img.with_env("A", "1")

    @c.image("b", parent="a", description="given")
    def b(img: Image) -> Image:
        """ignored"""
        return img

    @c.image("c", parent="a")
    def c_(img: Image) -> Image:
        return img

    assert (a.__name__, b.__name__, c_.__name__) == ("a", "b", "c_")  # returned unchanged
    assert {n: (e.parent, e.description) for n, e in c.entries.items()} == {
        "a": (ROOT, "An image."), "b": ("a", "given"), "c": ("a", "")}
    assert c.resolve("b").parent == c.resolve("a")
    assert c.resolve("a").config().env_dict() == {"A": "1"}


def test_digests_per_platform_leave_out_what_is_not_built_there() -> None:
    both = BaseRef("example.org/root", {plat.AMD64: "sha256:" + "1" * 64,
                                        plat.ARM64: "sha256:" + "2" * 64})
    c = Catalog()
    c.add("all", both, ident)
    c.add("amd", "all", lambda img: img.with_platforms(plat.AMD64).with_env("A", "1"))
    assert set(c.digests(plat.AMD64)) == {"all", "amd"}
    assert set(c.digests(plat.ARM64)) == {"all"}
    assert c.digests(plat.ARM64)["all"] == c.resolve("all").digest(plat.ARM64)
    assert c.digests()["amd"] == c.resolve("amd").digest()
