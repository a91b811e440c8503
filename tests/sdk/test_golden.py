"""Expected outputs written out, not computed by the code under test: the Dockerfiles of
base, jupyter and a team's spec, and the Dagger calls for the same images, are kept under
tests/golden/ and compared byte for byte.

When a change is MEANT to change them (a new pin, a new lowering), regenerate and review:

    NBPIPE_UPDATE_GOLDEN=1 .venv/bin/python -m pytest tests/sdk/test_golden.py
    git diff tests/golden/      # read it: this is what every engine will now be given

and say in the commit message why they changed. The run that writes them skips (it
checked nothing); the next plain run compares again.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from nbpipe import family as images
from nbpipe.recipe import platforms as plat
from nbpipe.inputs import spec
from nbpipe.recipe.catalog import Catalog
from nbpipe.engines import dockerfile
from nbpipe.recipe.options import BuildOptions

GOLDEN = Path(__file__).parents[1] / "golden"
TEAM_SPEC = Path(__file__).parents[2] / "examples" / "team-astro" / "team-astro.yaml"
UPDATE = os.environ.get("NBPIPE_UPDATE_GOLDEN") == "1"
PEM = "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n"


def catalog() -> Catalog:
    """The family with images/lock.json, plus the example team's spec."""
    return spec.load(TEAM_SPEC).register(images.family())


def options(kind: str, tmp_path: Path) -> BuildOptions:
    """plain: no options; ca+wheels: a CA bundle and a wheelhouse (their mounts show)."""
    if kind == "plain":
        return BuildOptions()
    (tmp_path / "ca.pem").write_text(PEM)
    (tmp_path / "wheels").mkdir(exist_ok=True)
    return BuildOptions(ca_bundle=tmp_path / "ca.pem", wheelhouse=tmp_path / "wheels")


# (image, options): base plain, jupyter with a CA bundle and a wheelhouse, the team spec plain
CASES = [("base", "plain"), ("jupyter", "ca+wheels"), ("team-astro", "plain")]


def compare(path: Path, text: str) -> None:
    if UPDATE:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
        pytest.skip(f"NBPIPE_UPDATE_GOLDEN=1: wrote {path.relative_to(GOLDEN.parent.parent)}; "
                    "review `git diff tests/golden` and commit it with the reason")
    assert path.exists(), f"{path} is missing: run with NBPIPE_UPDATE_GOLDEN=1 once"
    want = path.read_text()
    if text != want:  # show the first differing line, not two 500-line blobs
        for n, (a, b) in enumerate(zip(text.splitlines(), want.splitlines()), 1):
            assert a == b, f"{path.name}:{n} differs (NBPIPE_UPDATE_GOLDEN=1 if meant)"
        assert text == want, f"{path.name}: length differs (NBPIPE_UPDATE_GOLDEN=1 if meant)"


@pytest.mark.parametrize("name,kind", CASES)
def test_dockerfile_is_the_golden_one(name: str, kind: str, tmp_path: Path) -> None:
    rendered = dockerfile.render(catalog().resolve(name), plat.AMD64, options(kind, tmp_path))
    files = "".join(f"# file {rel}: {len(data)} bytes\n" for rel, data in
                    sorted(rendered.files.items()))
    compare(GOLDEN / f"{name}.amd64.Dockerfile", rendered.text + files)


def _call(field) -> str:
    """One Dagger call with its arguments; object arguments as their own call chains."""
    args = {}
    for k, v in sorted(field.args.items()):
        if hasattr(v, "_ctx"):
            v = [_call(f) for f in v._ctx.selections]
        elif hasattr(v, "value") and not isinstance(v, (str, int)):
            v = str(v.value)  # enums (CacheSharingMode.LOCKED)
        args[k] = v
    return field.name + (" " + json.dumps(args, sort_keys=True, default=str) if args else "")


@pytest.mark.parametrize("name,kind", CASES)
def test_dagger_calls_are_the_golden_ones(name: str, kind: str, tmp_path: Path) -> None:
    pytest.importorskip("dagger")
    from nbpipe.engines import dagger as lowering

    ctr = lowering.lower(catalog().resolve(name), plat.AMD64, options(kind, tmp_path))
    text = "\n".join(_call(f) for f in ctr._ctx.selections) + "\n"
    compare(GOLDEN / f"{name}.amd64.dagger", text.replace(str(tmp_path), "$TMP"))


def test_the_golden_files_are_all_checked() -> None:
    """No stale golden file lies around unchecked."""
    want = {f"{n}.amd64.{ext}" for n, _ in CASES for ext in ("Dockerfile", "dagger")}
    assert {p.name for p in GOLDEN.iterdir() if p.suffix != ".md"} == want


def test_the_dagger_lowering_refuses_binary_files() -> None:
    pytest.importorskip("dagger")
    from nbpipe.engines import dagger as lowering
    from nbpipe.errors import NbpipeError
    from nbpipe.recipe.image import BaseRef, Image

    root = BaseRef("example.org/root", {plat.AMD64: "sha256:" + "1" * 64})
    img = Image.from_base(root, "bin").with_file("/usr/bin/x", b"\x7fELF\xff\xfe")
    with pytest.raises(NbpipeError) as exc:
        lowering.lower(img, plat.AMD64)
    assert str(exc.value) == "bin: /usr/bin/x is binary; the Dagger lowering writes text files only"
