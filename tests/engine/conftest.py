"""Real builds: one engine, one local root, one shared build per image for the session.

Like jupyter/docker-stacks' shared container fixture, but for builds: every test that
needs jupyter gets the same built jupyter (content-addressed, so "built once" is a fact
of the engine's store, not of this fixture).
"""

from __future__ import annotations

import os
from pathlib import Path

import anyio
import pytest

from nbpipe import family as images
from nbpipe.engines import rootfs
from nbpipe.engines.oci import OciEngine
from nbpipe.errors import NbpipeError
from nbpipe.recipe import platforms as plat
from nbpipe.recipe.catalog import Catalog
from nbpipe.recipe.options import BuildOptions
from nbpipe.run.pipeline import Pipeline
from nbpipe.run.report import ImageResult

HOST_CA = Path("/etc/ssl/certs/ca-certificates.crt")

pytestmark = pytest.mark.engine


@pytest.fixture(scope="session")
def engine() -> OciEngine:
    try:
        return OciEngine.detect()
    except NbpipeError as exc:
        pytest.skip(f"no container engine on this machine: {exc}")


@pytest.fixture(scope="session")
def platform() -> str:
    return plat.host()


@pytest.fixture(scope="session")
def local_family(engine: OciEngine, platform: str) -> Catalog:
    """Our family on the debootstrap'd root (made here if missing: about 30 s)."""
    root = rootfs.local_root(engine, (platform,))
    if root is None:
        try:
            root = rootfs.bootstrap(engine, platform)
        except NbpipeError as exc:
            pytest.skip(f"cannot make the local Debian root: {exc}")
    return images.family().rebased(root)


@pytest.fixture(scope="session")
def options() -> BuildOptions:
    """The host's CA bundle for TLS during builds (this network intercepts TLS)."""
    return BuildOptions(ca_bundle=HOST_CA if HOST_CA.exists() else None)


@pytest.fixture(scope="session")
def state_dir(tmp_path_factory) -> Path:
    return Path(os.environ.get("NBPIPE_TEST_STATE", tmp_path_factory.mktemp("nbpipe-state")))


def run_pipeline(
    catalog: Catalog,
    engine: OciEngine,
    platform: str,
    options: BuildOptions,
    state_dir: Path,
    names: list[str],
    **kw,
) -> dict[str, ImageResult]:
    pipe = Pipeline.local(catalog, engine, platform, options, state_dir=state_dir, **kw)
    return {r.name: r for r in anyio.run(pipe.run, names)}


@pytest.fixture(scope="session")
def chain(local_family, engine, platform, options, state_dir) -> dict[str, ImageResult]:
    """base -> jupyter -> jupyter-scipy, built and probed once per session."""
    return run_pipeline(
        local_family, engine, platform, options, state_dir, ["jupyter-scipy"], force_probe=True
    )
