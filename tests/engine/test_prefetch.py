"""Downloads start at once (run/prefetch.py), for real: PyPI, buildah's cache folders and
a build. A run with prefetch fetches a locked pip step's wheel into pip's cache mount,
and the step installs from that folder (uv asks its index first); the lock's hashes are
still checked there: a file in the folder that is not the lock's stops the build. Each
run has a $TMPDIR of its own, so buildah's cache mounts start empty."""

from __future__ import annotations

import tempfile
import uuid

import pytest

from nbpipe.recipe.catalog import Catalog
from nbpipe.recipe.steps import PREFETCHED_DIR, Pip
from nbpipe.run.settings import Settings
from tests.engine.conftest import run_pipeline

pytestmark = pytest.mark.engine

NAME = "prefetchdemo"
# not in jupyter's venv (a package already there is never installed, so never checked)
SHA = "9deba5723312380e77435581c6bf4935c94cbfab9b1ed33ef8d238ea168eb760"
LOCK = f"iniconfig==2.1.0 --hash=sha256:{SHA}"
WHEEL = "iniconfig-2.1.0-py3-none-any.whl"


def demo(family: Catalog, token: str) -> Catalog:
    """jupyter + one locked pip step; ``token`` makes the recipe this run's own."""
    cat = family.rebased(family.entry("base").parent)  # type: ignore[arg-type]
    cat.add(
        NAME,
        "jupyter",
        lambda img: img.with_env("NBPIPE_PREFETCH_TEST", token).with_step(
            Pip(packages=("iniconfig==2.1.0",), locked=LOCK)
        ),
    )
    return cat


def test_a_locked_wheel_is_fetched_first_and_installed_from_there_hash_checked(
    chain, local_family, engine, platform, options, tmp_path, monkeypatch
) -> None:
    if engine.kind != "podman":
        pytest.skip("prefetch fills buildah's cache folders (podman as root)")
    tmp = tmp_path / "tmp"
    tmp.mkdir()
    monkeypatch.setenv("TMPDIR", str(tmp))
    monkeypatch.setattr(tempfile, "tempdir", str(tmp))
    events: list[tuple[str, str]] = []
    settings = Settings(prefetch=True)

    cat = demo(local_family, uuid.uuid4().hex)
    step = cat.resolve(NAME).steps_for(platform)[-1]
    assert isinstance(step, Pip)
    folder = tmp / "buildah-cache" / "nbpipe-pip" / PREFETCHED_DIR / step.prefetch_key()
    first = run_pipeline(
        cat,
        engine,
        platform,
        options,
        tmp_path / "s1",
        [NAME],
        probe=False,
        settings=settings,
        on_event=lambda n, w: events.append((n, w)),
    )[NAME]
    assert first.ok, first.message
    said = [w for n, w in events if n == NAME]
    # iniconfig's wheel and uv's own (the first uv step of the run fetches uv): the build may
    # start at once (no .debs to wait for); its pip step waits for the folder
    assert any(
        w.startswith("prefetched 2 file(s)") and "(1 pip step(s) served here)" in w for w in said
    ), said
    assert sorted(p.name for p in folder.iterdir()) == [WHEEL, "simple"]  # its own index
    r = engine.run_once(first.ref, ["python", "-c", "import iniconfig; print(iniconfig.__file__)"])
    assert r.returncode == 0 and "/opt/venv/" in r.stdout, r.stderr

    # The folder is what the step installs from, and the hash is still checked there: the
    # same lock in another recipe, with the folder's wheel replaced, does not build.
    (folder / WHEEL).unlink()
    (folder / WHEEL).write_bytes(b"PK\x05\x06" + b"\0" * 18)  # an empty zip, not the lock's
    tampered = run_pipeline(
        demo(local_family, uuid.uuid4().hex),
        engine,
        platform,
        options,
        tmp_path / "s2",
        [NAME],
        probe=False,
        settings=settings,
    )[NAME]
    assert not tampered.ok
    log = (tmp_path / "s2/logs" / f"{NAME}-{platform.split('/')[1]}.log").read_text()
    assert "hash" in log.lower() and "iniconfig" in log, log[-3000:]
