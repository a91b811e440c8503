"""A container engine for offline tests of the build-and-probe pipeline: it builds nothing,
keeps a store of image infos and records each build (test_pipeline.py, test_cli_platform.py).
``family()`` is the small catalog it is used with: a failing image ``bad`` with a child ``c``
and an unbuildable ``pin`` (a download without a checksum)."""

from __future__ import annotations

from nbpipe.engines.oci import ImageInfo
from nbpipe.errors import BuildError
from nbpipe.recipe import platforms as plat
from nbpipe.recipe.catalog import Catalog
from nbpipe.recipe.image import BaseRef
from nbpipe.recipe.naming import local_ref

ROOT = BaseRef("example.org/root", {plat.AMD64: "sha256:" + "1" * 64})


def family() -> Catalog:
    cat = Catalog()
    cat.add("a", ROOT, lambda img: img.with_env("A", "1"))
    cat.add("b", "a", lambda img: img.with_env("B", "1"))
    cat.add("bad", "a", lambda img: img.with_env("BAD", "1"))
    cat.add("c", "bad", lambda img: img.with_env("C", "1"))
    cat.add("pin", ROOT, lambda img: img.with_download("https://example.org/x", None, "/x"))
    return cat


class Engine:
    """Builds nothing: ``built`` names the images already in its store (for linux/amd64),
    each build is recorded in ``builds`` and stored; the image called ``bad`` fails."""

    kind = "podman"  # what the pipeline names in its events

    def __init__(self, cat: Catalog, built: tuple[str, ...] = ()) -> None:
        self.store = {
            local_ref(cat.resolve(n), plat.AMD64): ImageInfo(
                local_ref(cat.resolve(n), plat.AMD64), f"sha256:{n}", 1, {}, ""
            )
            for n in built
        }
        self.builds: list[str] = []

    def images(self):
        return dict(self.store)

    def build(self, rendered, ref, platform, options, log, *, no_cache=False, cache=None):
        name = ref.split("/")[-1].split(":")[0]
        assert all(p in self.store for p in [rendered.from_ref] if p.startswith("localhost/"))
        self.builds.append(name)
        if name == "bad":
            raise BuildError(f"{ref}: step failed: env BAD=1")
        info = ImageInfo(ref, f"sha256:{name}-new", 7, {}, "")
        self.store[ref] = info
        return info
