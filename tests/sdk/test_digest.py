"""Digests: stable across processes, sensitive to every kind of step change, and only
for the changed image and its descendants."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import replace

import pytest

from nbpipe import family as images
from nbpipe.family import pins
from nbpipe.recipe import platforms as plat
from nbpipe.recipe import steps as s
from nbpipe.recipe.catalog import Catalog
from nbpipe.errors import NbpipeError
from nbpipe.recipe.image import BaseRef, Image

PRINT_DIGESTS = "import json; from nbpipe.family import family; print(json.dumps(family().digests()))"


def test_digests_are_identical_in_a_fresh_interpreter(family: Catalog) -> None:
    env = {**os.environ, "PYTHONHASHSEED": "random"}
    outs = [subprocess.run([sys.executable, "-c", PRINT_DIGESTS], capture_output=True,
                           text=True, check=True, env=env).stdout for _ in range(2)]
    assert json.loads(outs[0]) == json.loads(outs[1]) == family.digests()
    assert len(family.digests()) == 17


def test_digests_are_per_platform(family: Catalog) -> None:
    jupyter = family.resolve("jupyter")
    assert jupyter.digest(plat.AMD64) != jupyter.digest(plat.ARM64)
    gaudi = family.resolve("jupyter-pytorch-gaudi")
    with pytest.raises(NbpipeError) as exc:
        gaudi.digest(plat.ARM64)
    assert str(exc.value) == "image jupyter-pytorch-gaudi is not built for linux/arm64"


ROOT = BaseRef("example.org/root", {plat.AMD64: "sha256:" + "1" * 64,
                                    plat.ARM64: "sha256:" + "2" * 64})

BASELINE: tuple[s.Step, ...] = (
    s.Apt(packages=("python3",)),
    s.Pip(packages=("numpy==2.3.5",)),
    s.Npm(packages=("code-server@4.105.1",)),
    s.Env(name="A", value="1"),
    s.User(user="1000:0"),
    s.Workdir(path="/home/jovyan"),
    s.File(path="/etc/x", content=b"hello"),
    s.Download(url="https://example.org/x.tgz", sha256="a" * 64, dest="/opt/x"),
    s.Run(script="echo hi"),
    s.Label(key="k", value="v"),
    s.Port(port=8888),
    s.Entrypoint(argv=("/init",)),
    s.InitScript(name="10-x", script="echo x"),
    s.Service(name="svc", run="exec sleep 1"),
    s.HomeFile(path=".bashrc", content=b"# rc"),
)

# One edit per step kind: every one of them must flip the digest.
EDITS = [
    lambda st: replace(st, packages=("python3", "git")) if isinstance(st, s.Apt) else st,
    lambda st: replace(st, packages=("numpy==2.3.4",)) if isinstance(st, s.Pip) else st,
    lambda st: replace(st, packages=("code-server@4.105.0",)) if isinstance(st, s.Npm) else st,
    lambda st: replace(st, value="2") if isinstance(st, s.Env) else st,
    lambda st: replace(st, user="1001:0") if isinstance(st, s.User) else st,
    lambda st: replace(st, path="/tmp") if isinstance(st, s.Workdir) else st,
    lambda st: replace(st, content=b"hellp") if isinstance(st, s.File) else st,  # same length
    lambda st: replace(st, owner="1000:0") if isinstance(st, s.File) else st,
    lambda st: replace(st, mode=0o755) if isinstance(st, s.File) else st,
    lambda st: replace(st, sha256="b" * 64) if isinstance(st, s.Download) else st,
    lambda st: replace(st, script="echo ho") if isinstance(st, s.Run) else st,
    lambda st: replace(st, value="w") if isinstance(st, s.Label) else st,
    lambda st: replace(st, port=8889) if isinstance(st, s.Port) else st,
    lambda st: replace(st, argv=("/sbin/init",)) if isinstance(st, s.Entrypoint) else st,
    lambda st: replace(st, script="echo y") if isinstance(st, s.InitScript) else st,
    lambda st: replace(st, run="exec sleep 2") if isinstance(st, s.Service) else st,
    lambda st: replace(st, content=b"# rC") if isinstance(st, s.HomeFile) else st,
    lambda st: replace(st, mode=0o600) if isinstance(st, s.HomeFile) else st,
    lambda st: replace(st, platforms=(plat.ARM64,)) if isinstance(st, s.Run) else st,
]


def _chain(middle_steps: tuple[s.Step, ...]) -> dict[str, Image]:
    top = Image.from_base(ROOT, "top").with_env("T", "1")
    middle = top.child("middle").with_step(*middle_steps)
    leaf = middle.child("leaf").with_env("L", "1")
    sibling = top.child("sibling").with_env("S", "1")
    return {"top": top, "middle": middle, "leaf": leaf, "sibling": sibling}


@pytest.mark.parametrize("edit", EDITS, ids=lambda e: str(EDITS.index(e)))
def test_each_kind_of_step_change_flips_only_that_image_and_descendants(edit) -> None:
    before = _chain(BASELINE)
    changed = tuple(edit(st) for st in BASELINE)
    assert changed != BASELINE, "the edit must change something"
    after = _chain(changed)
    d = lambda imgs, n: imgs[n].digest(plat.AMD64)  # noqa: E731
    assert d(before, "top") == d(after, "top")
    assert d(before, "sibling") == d(after, "sibling")
    assert d(before, "middle") != d(after, "middle")
    assert d(before, "leaf") != d(after, "leaf")


def test_step_order_matters() -> None:
    a = _chain(BASELINE)["middle"]
    b = _chain(tuple(reversed(BASELINE)))["middle"]
    assert a.digest(plat.AMD64) != b.digest(plat.AMD64)


def test_root_pin_flips_everything() -> None:
    other = BaseRef(ROOT.ref, {**ROOT.digests, plat.AMD64: "sha256:" + "3" * 64})
    for name, img in _chain(BASELINE).items():
        moved = img.rebased(other)
        assert img.digest(plat.AMD64) != moved.digest(plat.AMD64), name
        assert img.digest(plat.ARM64) == moved.digest(plat.ARM64), name
        assert moved.root is other and moved.steps == img.steps, name


def test_names_are_not_identity() -> None:
    img = Image.from_base(ROOT).with_env("A", "1")
    assert img.named("x").digest() == img.named("y").digest()


def test_changing_one_scipy_package_changes_only_jupyter_scipy(monkeypatch) -> None:
    before = images.family().digests()
    bumped = tuple(p.replace("sympy==", "sympy==0.0.") if p.startswith("sympy==") else p
                   for p in pins.SCIPY_EXTRA)
    monkeypatch.setattr(pins, "SCIPY_EXTRA", bumped)
    after = images.family().digests()
    assert [n for n in before if before[n] != after[n]] == ["jupyter-scipy"]


def test_changing_jupyter_changes_it_and_all_its_descendants(monkeypatch, family) -> None:
    before = family.digests()
    monkeypatch.setattr(pins, "JUPYTER", pins.JUPYTER + ("ipywidgets==8.1.7",))
    after = images.family().digests()
    changed = {n for n in before if before[n] != after[n]}
    below = {n for n in family.names if n.startswith("jupyter-")}  # the family's naming
    assert len(below) == 11 and changed == {"jupyter", *below}
    assert "base" not in changed and "codeserver" not in changed


@pytest.mark.parametrize("step", BASELINE, ids=lambda st: st.kind)
def test_steps_are_frozen_keyword_only_values(step) -> None:
    """A step that could change after its image was made would change that image's
    identity behind its digest; keyword-only keeps recipes readable and reorder-safe."""
    import dataclasses

    with pytest.raises(dataclasses.FrozenInstanceError):
        step.platforms = (plat.ARM64,)
    own = [getattr(step, f.name) for f in dataclasses.fields(step) if f.name != "platforms"]
    with pytest.raises(TypeError):
        type(step)(*own)  # keyword-only: its own fields are never positional
    assert type(step)(**{f.name: getattr(step, f.name) for f in dataclasses.fields(step)}) == step


def test_step_defaults_and_one_spelling_per_path() -> None:
    f = s.File(path="/etc//x/./", content="text")
    assert (f.path, f.content, f.mode, f.owner) == ("/etc/x", b"text", 0o644, "0:0")
    h = s.HomeFile(path="./.jupyter//x.json", content="{}")
    assert (h.path, h.content, h.mode) == (".jupyter/x.json", b"{}", 0o644)
    assert s.Workdir(path="/home//jovyan/").path == "/home/jovyan"
    d = s.Download(url="https://example.org/x", sha256="a" * 64, dest="/opt//x/")
    assert (d.dest, d.mode, d.extract, d.strip_components) == ("/opt/x", 0o644, False, 0)
    assert s.Run(script="id").user is None and s.Run(script="id").network is False
    assert d.describe() == "download https://example.org/x -> /opt/x"
    assert s.Pip(packages=("x==1",)).user == "1000:0"
    assert s.Npm(packages=("x@1",)).user == "root"
