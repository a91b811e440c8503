"""A catalog of named images: the family DAG, build order, and what a change affects.

Images are registered as functions of their parent (``fn(parent) -> Image``), by name.
The catalog checks the graph (unknown parents, cycles, duplicates) before anything is
built, and everything else (plans, affected sets, graphs) is derived from digests.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Iterable, Mapping

from .errors import CatalogError
from .image import BaseRef, Image

Recipe = Callable[[Image], Image]


@dataclass(frozen=True)
class Entry:
    name: str
    parent: str | BaseRef  # a catalog name, or a root the catalog does not build
    recipe: Recipe
    description: str = ""


@dataclass
class Catalog:
    """Named images. Build it once (images/ does), then treat it as read-only."""

    entries: dict[str, Entry] = field(default_factory=dict)
    _resolved: dict[str, Image] = field(default_factory=dict, repr=False)

    # -- registration ------------------------------------------------------------------
    def add(self, name: str, parent: str | BaseRef, recipe: Recipe, description: str = "") -> None:
        if name in self.entries:
            raise CatalogError(f"image {name!r} is defined twice; give each image one definition")
        if not name or not all(c.isalnum() or c in "-_." for c in name):
            raise CatalogError(f"image name {name!r} may use only letters, digits, '-', '_', '.'")
        self.entries[name] = Entry(name, parent, recipe, description)
        self._resolved.clear()

    def image(self, name: str, parent: str | BaseRef, description: str = "") -> Callable[[Recipe], Recipe]:
        """Decorator form: ``@catalog.image("jupyter", parent="base")``."""
        def register(fn: Recipe) -> Recipe:
            doc = (fn.__doc__ or "").strip().splitlines()
            self.add(name, parent, fn, description or (doc[0] if doc else ""))
            return fn
        return register

    # -- the graph ---------------------------------------------------------------------
    @property
    def names(self) -> list[str]:
        return list(self.entries)

    def parent_name(self, name: str) -> str | None:
        p = self.entry(name).parent
        return p if isinstance(p, str) else None

    def children(self, name: str) -> list[str]:
        return [n for n in self.order() if self.parent_name(n) == name]

    def entry(self, name: str) -> Entry:
        if name not in self.entries:
            raise CatalogError(f"unknown image {name!r}; known images: {', '.join(self.entries)}")
        return self.entries[name]

    def validate(self) -> None:
        """Raise on the first unknown parent or cycle, naming the image at fault."""
        for e in self.entries.values():
            if isinstance(e.parent, str) and e.parent not in self.entries:
                raise CatalogError(f"image {e.name!r} has unknown parent {e.parent!r}; "
                                   f"known images: {', '.join(self.entries)}")
        for e in self.entries.values():
            seen = [e.name]
            node = e.parent
            while isinstance(node, str):
                if node in seen:
                    loop = " -> ".join([*seen[seen.index(node):], node])
                    raise CatalogError(f"image {e.name!r} is in a parent cycle: {loop}")
                seen.append(node)
                node = self.entries[node].parent

    def order(self, names: Iterable[str] | None = None) -> list[str]:
        """Parents before children; siblings in definition order. With ``names``: only the
        images those need (themselves and their ancestors)."""
        self.validate()
        wanted = self.closure(names) if names is not None else set(self.entries)
        depth = {n: len(self.ancestors(n)) for n in wanted}
        index = {n: i for i, n in enumerate(self.entries)}
        return sorted(wanted, key=lambda n: (depth[n], index[n]))

    def ancestors(self, name: str) -> list[str]:
        """Parent first, then grandparent..."""
        out: list[str] = []
        p = self.parent_name(name)
        while p is not None:
            out.append(p)
            p = self.parent_name(p)
        return out

    def closure(self, names: Iterable[str]) -> set[str]:
        out: set[str] = set()
        for n in names:
            self.entry(n)
            out |= {n, *self.ancestors(n)}
        return out

    def descendants(self, name: str) -> set[str]:
        return {n for n in self.entries if name in self.ancestors(n)}

    # -- resolving recipes into Images -------------------------------------------------
    def resolve(self, name: str) -> Image:
        if name in self._resolved:
            return self._resolved[name]
        self.validate()
        e = self.entry(name)
        if isinstance(e.parent, str):
            start = self.resolve(e.parent).child(name)
        else:
            start = Image.from_base(e.parent, name)
        img = e.recipe(start)
        if not isinstance(img, Image):
            raise CatalogError(f"image {name!r}: its recipe returned {type(img).__name__}, "
                               "not an Image")
        if img.parent is not start.parent:
            raise CatalogError(f"image {name!r}: its recipe must build on the parent it is "
                               "given (return parent.with_...(...))")
        img = img.named(name)
        self._resolved[name] = img
        return img

    def digests(self, platform: str | None = None) -> dict[str, str]:
        """name -> digest: what a plan file stores, to compare against later."""
        out = {}
        for n in self.order():
            img = self.resolve(n)
            if platform is None or platform in img.platforms:
                out[n] = img.digest(platform)
        return out

    def affected(self, previous: Mapping[str, str], platform: str | None = None) -> list[str]:
        """Images whose digest differs from ``previous`` (or that are new), in build order."""
        now = self.digests(platform)
        return [n for n in self.order() if n in now and previous.get(n) != now[n]]

    def rebased(self, root: BaseRef) -> "Catalog":
        """The same family on another root (the local debootstrap'd base, say)."""
        other = Catalog()
        for e in self.entries.values():
            parent = root if isinstance(e.parent, BaseRef) else e.parent
            other.entries[e.name] = Entry(e.name, parent, e.recipe, e.description)
        return other
