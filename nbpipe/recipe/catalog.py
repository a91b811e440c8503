"""A catalog of named images: the family DAG, build order, and what a change affects.

Images are registered as functions of their parent (``fn(parent) -> Image``), by name.
The catalog checks the graph (unknown parents, cycles, duplicates) before anything is
built, and everything else (plans, affected sets, graphs) is derived from digests.
"""

from __future__ import annotations

import operator
from dataclasses import dataclass, field
from typing import Callable, Iterable, Mapping

from nbpipe.errors import CatalogError
from nbpipe.recipe.image import BaseRef, Image

Recipe = Callable[[Image], Image]
MAX_CHAIN = 2_000  # ancestors of one image: a longer chain of specs is refused in one line


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
    _valid: tuple[Entry, ...] = field(default=(), repr=False)  # the entries last validated
    _depth: dict[str, int] = field(default_factory=dict, repr=False)  # ... their ancestor counts

    # -- registration ------------------------------------------------------------------
    def add(self, name: str, parent: str | BaseRef, recipe: Recipe, description: str = "") -> None:
        if name in self.entries:
            raise CatalogError(f"image {name!r} is defined twice; give each image one definition")
        if not name or not all(c.isalnum() or c in "-_." for c in name):
            raise CatalogError(f"image name {name!r} may use only letters, digits, '-', '_', '.'")
        self.entries[name] = Entry(name, parent, recipe, description)
        self._resolved.clear()

    def image(
        self, name: str, parent: str | BaseRef, description: str = ""
    ) -> Callable[[Recipe], Recipe]:
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
        """Raise on the first unknown parent or cycle, naming the image at fault.

        Linear in the number of images (each parent chain is walked once, then known
        good), and remembered until the entries change: resolving a chain of N images
        used to validate N times over N^2 steps."""
        now = tuple(self.entries.values())
        if len(now) == len(self._valid) and all(map(operator.is_, now, self._valid)):
            return
        depth: dict[str, int] = {}  # known good: how many ancestors it has in the catalog
        for e in now:
            path: list[str] = []
            on_path: set[str] = set()
            node: str | BaseRef = e.name
            while isinstance(node, str) and node not in depth:
                if node in on_path:
                    loop = " -> ".join([*path[path.index(node) :], node])
                    raise CatalogError(f"image {e.name!r} is in a parent cycle: {loop}")
                if node not in self.entries:
                    raise CatalogError(
                        f"image {path[-1]!r} has unknown parent {node!r}; "
                        f"known images: {', '.join(self.entries)}"
                    )
                path.append(node)
                on_path.add(node)
                node = self.entries[node].parent
            below = depth[node] if isinstance(node, str) else -1
            for n in reversed(path):
                below += 1
                depth[n] = below
                if below > MAX_CHAIN:
                    raise CatalogError(
                        f"image {n!r} has more than {MAX_CHAIN:,} ancestors; "
                        "nbpipe builds chains of parents up to that length"
                    )
        self._valid, self._depth = now, depth

    def order(self, names: Iterable[str] | None = None) -> list[str]:
        """Parents before children; siblings in definition order. With ``names``: only the
        images those need (themselves and their ancestors)."""
        self.validate()
        wanted = self.closure(names) if names is not None else set(self.entries)
        index = {n: i for i, n in enumerate(self.entries)}
        return sorted(wanted, key=lambda n: (self._depth[n], index[n]))

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
            node: str | None = n
            while node is not None and node not in out:  # stop at what is in already
                out.add(node)
                node = self.parent_name(node)
        return out

    def descendants(self, name: str) -> set[str]:
        return {n for n in self.entries if name in self.ancestors(n)}

    # -- resolving recipes into Images -------------------------------------------------
    def resolve(self, name: str) -> Image:
        if name in self._resolved:
            return self._resolved[name]
        self.validate()
        chain = [self.entry(name)]  # this image, then its ancestors not resolved yet
        while isinstance(chain[-1].parent, str) and chain[-1].parent not in self._resolved:
            chain.append(self.entries[chain[-1].parent])
        for e in reversed(chain):  # root-most first: no recursion, however long the chain
            self._resolved[e.name] = self._resolve_one(e)
        return self._resolved[name]

    def _resolve_one(self, e: Entry) -> Image:
        name = e.name
        if isinstance(e.parent, str):
            start = self._resolved[e.parent].child(name)
        else:
            start = Image.from_base(e.parent, name)
        img = e.recipe(start)
        if not isinstance(img, Image):
            raise CatalogError(
                f"image {name!r}: its recipe returned {type(img).__name__}, not an Image"
            )
        if img.parent is not start.parent:
            raise CatalogError(
                f"image {name!r}: its recipe must build on the parent it is "
                "given (return parent.with_...(...))"
            )
        return img.named(name)

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
