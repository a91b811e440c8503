"""image.py's own rules, each written out: pinned roots, platforms, the final config an
image ends with, probes that add to their parent's, and where an image downloads from."""

from __future__ import annotations

import json

import pytest

from nbpipe.recipe import contract
from nbpipe.recipe import platforms as plat
from nbpipe.recipe import steps as s
from nbpipe.errors import NbpipeError
from nbpipe.recipe.image import BaseRef, Image, ImageConfig

ROOT = BaseRef("example.org/root", {plat.ARM64: "sha256:" + "2" * 64,
                                    plat.AMD64: "sha256:" + "1" * 64})


@pytest.mark.parametrize("digest", ["sha256:" + "1" * 63, "md5:" + "1" * 67, "1" * 71])
def test_a_root_is_pinned_by_sha256(digest: str) -> None:
    with pytest.raises(NbpipeError) as exc:
        BaseRef("example.org/root", {plat.AMD64: digest})
    assert str(exc.value) == "base example.org/root: digest for linux/amd64 must be 'sha256:' + 64 hex"
    with pytest.raises(NbpipeError) as exc:
        BaseRef("example.org/root", {"linux/s390x": "sha256:" + "1" * 64})
    assert str(exc.value) == "unknown platform 'linux/s390x': use one of linux/amd64, linux/arm64"


def test_root_references() -> None:
    assert ROOT.platforms == (plat.AMD64, plat.ARM64)  # always in plat.ALL order
    assert ROOT.pinned(plat.ARM64) == "example.org/root@sha256:" + "2" * 64
    assert BaseRef("example.org/root@sha256:" + "9" * 64, ROOT.digests).pinned(plat.AMD64) == \
        "example.org/root@sha256:" + "1" * 64
    local = BaseRef("localhost/nbpipe/debian", ROOT.digests)
    assert local.pinned(plat.ARM64) == "localhost/nbpipe/debian-arm64"
    amd = BaseRef("example.org/root", {plat.AMD64: "sha256:" + "1" * 64})
    with pytest.raises(NbpipeError) as exc:
        amd.digest(plat.ARM64)
    assert str(exc.value) == "base example.org/root is not pinned for linux/arm64"
    assert hash(ROOT) == hash(BaseRef("example.org/root", dict(reversed(ROOT.digests.items()))))
    assert ROOT == BaseRef("example.org/root", dict(ROOT.digests))


def test_platforms_are_kept_in_order_and_within_the_parent() -> None:
    img = Image.from_base(ROOT, "x").with_platforms(plat.ARM64, plat.AMD64)
    assert img.platforms == plat.ALL
    assert img.with_platforms(plat.ARM64).platforms == (plat.ARM64,)
    amd = Image.from_base(BaseRef("example.org/root", {plat.AMD64: "sha256:" + "1" * 64}))
    assert amd.platforms == (plat.AMD64,) and amd.child("c").platforms == (plat.AMD64,)
    with pytest.raises(NbpipeError) as exc:
        Image(parent=ROOT, platforms=("linux/riscv64",))
    assert str(exc.value) == "unknown platform 'linux/riscv64': use one of linux/amd64, linux/arm64"
    with pytest.raises(NbpipeError) as exc:
        img.digest("linux/riscv64")
    assert str(exc.value) == "image x is not built for linux/riscv64"
    moved = img.with_platforms(plat.ARM64).child("c").rebased(
        BaseRef("localhost/r", {plat.AMD64: "sha256:" + "3" * 64}))
    assert moved.platforms == () and moved.parent.platforms == ()


def test_lineage_root_and_steps_per_platform() -> None:
    top = Image.from_base(ROOT, "top").with_run("a", platforms=(plat.ARM64,)).with_env("E", "1")
    leaf = top.child("leaf").with_env("L", "2")
    assert [i.name for i in leaf.lineage()] == ["leaf", "top"]
    assert leaf.root is ROOT and top.root is ROOT
    assert [st.kind for st in top.steps_for(plat.AMD64)] == ["env"]
    assert [st.kind for st in top.steps_for(plat.ARM64)] == ["run", "env"]
    assert [type(op).__name__ for op in top.ops(plat.ARM64)] == ["Exec", "SetEnv"]
    assert leaf.with_(lambda i: i.with_env("W", "3")).steps[-1].name == "W"


def test_config_is_what_the_whole_chain_ends_with() -> None:
    top = (Image.from_base(ROOT).with_user("1000").with_workdir("/w").with_env("A", "1")
           .with_env("B", "1").with_label("k", "top").with_port(8888).with_port(8888)
           .with_entrypoint("/init", cmd=("lab",)))
    leaf = (top.child().with_env("A", "2").with_label("k", "leaf").with_port(9000)
            .with_user("0").with_entrypoint("/bin/sh"))
    assert top.config() == ImageConfig(user="1000", workdir="/w", env=(("A", "1"), ("B", "1")),
                                       labels=(("k", "top"),), ports=(8888,),
                                       entrypoint=("/init",), cmd=("lab",))
    assert leaf.config() == ImageConfig(user="0", workdir="/w", env=(("A", "2"), ("B", "1")),
                                        labels=(("k", "leaf"),), ports=(8888, 9000),
                                        entrypoint=("/bin/sh",), cmd=())
    assert leaf.config().env_dict() == {"A": "2", "B": "1"}
    assert Image.from_base(ROOT).config() == ImageConfig()
    arm = Image.from_base(ROOT).with_step(s.Env(name="A", value="arm", platforms=(plat.ARM64,)))
    assert arm.config(plat.ARM64).env_dict() == {"A": "arm"}
    assert arm.config(plat.AMD64).env_dict() == {} == arm.config().env_dict()


def test_probes_add_to_the_parents_and_never_replace_them() -> None:
    top = Image.from_base(ROOT).with_probes(imports=("numpy", "scipy"), commands=("a", "b"),
                                            r_libraries=("dplyr",))
    leaf = top.child().with_probes(imports=("scipy", "torch", "torch"), commands=("b", "c"))
    labels = leaf.config().label_dict()
    assert labels[contract.LABEL_IMPORTS] == "numpy,scipy,torch"
    assert json.loads(labels[contract.LABEL_COMMANDS]) == ["a", "b", "c"]
    assert labels[contract.LABEL_R_LIBRARIES] == "dplyr"
    assert leaf.with_probes() == leaf  # nothing asked, nothing added
    nb = top.with_probes(notebooks=("a.ipynb",), notebook_timeout=86400).config().label_dict()
    assert (json.loads(nb[contract.LABEL_NOTEBOOKS]), nb[contract.LABEL_NOTEBOOK_TIMEOUT]) == (
        ["a.ipynb"], "86400")
    assert top.with_runner_tags("cuda", "gaudi").config().label_dict()[
        contract.LABEL_RUNNER_TAGS] == "cuda,gaudi"


@pytest.mark.parametrize("kw,message", [
    (dict(imports="numpy"), "imports: give a list of names, not one string"),
    (dict(imports=("numpy,scipy",)), "imports: 'numpy,scipy' is not a Python module like "
                                     "'numpy.linalg'"),
    (dict(commands="ls"), "commands: give a list of commands, not one string"),
    (dict(commands=(" ",)), "commands: ' ' is not a command (a non-empty string)"),
    (dict(r_libraries=("1x",)), "r_libraries: '1x' is not an R package like 'dplyr'"),
    (dict(distributions=("a b",)), "distributions: 'a b' is not a pip distribution name like "
                                   "'scikit-learn'"),
    (dict(notebooks="a.ipynb"), "notebooks: give a list of .ipynb paths, not one string"),
    (dict(notebooks=("a.txt",)), "notebooks: 'a.txt' is not a path to a .ipynb file"),
    (dict(notebooks=("a\nb.ipynb",)), "notebooks: 'a\\nb.ipynb' must be printable text on one "
                                       "line (no newlines, tabs or other control characters)"),
    (dict(notebook_timeout=0), "notebook_timeout: 0 is not a number of seconds (1 to 86400)"),
    (dict(notebook_timeout=86401), "notebook_timeout: 86401 is not a number of seconds (1 to "
                                   "86400)"),
    (dict(commands=("a\tb",)), "commands: 'a\\tb' must be printable text on one line (no "
                                "newlines, tabs or other control characters)"),
])
def test_probe_lists_are_checked(kw, message) -> None:
    with pytest.raises(NbpipeError) as exc:
        Image.from_base(ROOT).with_probes(**kw)
    assert str(exc.value) == message


def test_sources_are_every_host_of_the_chain_once_in_order() -> None:
    top = Image.from_base(ROOT).with_apt("curl").with_pip("numpy==2.0")
    leaf = (top.child().with_download("https://example.org/x.tgz", "a" * 64, "/opt/x",
                                      platforms=(plat.ARM64,))
            .with_apt("git"))
    assert leaf.sources() == ("deb.debian.org", "pypi.org", "files.pythonhosted.org",
                              "example.org")
    assert leaf.sources(plat.AMD64) == ("deb.debian.org", "pypi.org", "files.pythonhosted.org")
