"""The family's shape: all 17 images, the exact parent edges, arches and runner tags."""

from __future__ import annotations

from nbpipe.recipe import contract
from nbpipe.recipe import platforms as plat
from nbpipe.recipe.catalog import Catalog

EDGES = {
    "base": None,
    "jupyter": "base", "codeserver": "base", "rstudio": "base",
    "jupyter-scipy": "jupyter", "jupyter-pytorch": "jupyter", "jupyter-tensorflow": "jupyter",
    "jupyter-pytorch-cuda": "jupyter", "jupyter-tensorflow-cuda": "jupyter",
    "jupyter-pytorch-gaudi": "jupyter",
    "jupyter-pytorch-full": "jupyter-pytorch",
    "jupyter-tensorflow-full": "jupyter-tensorflow",
    "jupyter-pytorch-cuda-full": "jupyter-pytorch-cuda",
    "jupyter-tensorflow-cuda-full": "jupyter-tensorflow-cuda",
    "jupyter-pytorch-gaudi-full": "jupyter-pytorch-gaudi",
    "codeserver-python": "codeserver",
    "rstudio-tidyverse": "rstudio",
}


def test_all_17_images_with_exact_parents(family: Catalog) -> None:
    assert {n: family.parent_name(n) for n in family.names} == EDGES


def test_architectures(family: Catalog) -> None:
    amd64_only = {"jupyter-tensorflow-cuda", "jupyter-tensorflow-cuda-full",
                  "jupyter-pytorch-gaudi", "jupyter-pytorch-gaudi-full"}
    for name in family.names:
        want = (plat.AMD64,) if name in amd64_only else plat.ALL
        assert family.resolve(name).platforms == want, name


def test_runner_tags(family: Catalog) -> None:
    tags = {n: family.resolve(n).config().label_dict().get(contract.LABEL_RUNNER_TAGS, "")
            for n in family.names}
    assert {n for n, t in tags.items() if t == "cuda"} == {
        "jupyter-pytorch-cuda", "jupyter-pytorch-cuda-full",
        "jupyter-tensorflow-cuda", "jupyter-tensorflow-cuda-full"}
    assert {n for n, t in tags.items() if t == "gaudi"} == {
        "jupyter-pytorch-gaudi", "jupyter-pytorch-gaudi-full"}


def test_contract_is_inherited_by_every_image(family: Catalog) -> None:
    for name in family.names:
        cfg = family.resolve(name).config()
        env = cfg.env_dict()
        assert cfg.user == str(contract.NB_UID), name
        assert env["HOME"] == contract.HOME and env["NB_PREFIX"] == "/", name
        assert cfg.entrypoint == (contract.INIT,), name
        assert contract.PORT in cfg.ports, name
        assert cfg.label_dict().get(contract.LABEL_SERVER) in {"jupyter", "codeserver",
                                                               "rstudio", None}, name


def test_images_with_a_python_venv_declare_its_version(family: Catalog) -> None:
    from nbpipe.family import pins

    for name in family.names:
        labels = family.resolve(name).config().label_dict()
        venv = contract.VENV in family.resolve(name).config().env_dict().get("PATH", "")
        assert labels.get(contract.LABEL_PYTHON) == (pins.PYTHON if venv else None), name


def test_children_inherit_parent_probes(family: Catalog) -> None:
    def imports(n: str) -> set[str]:
        label = family.resolve(n).config().label_dict().get(contract.LABEL_IMPORTS, "")
        return set(filter(None, label.split(",")))

    for name in family.names:
        parent = family.parent_name(name)
        if parent:
            assert imports(parent) <= imports(name), name
    assert {"numpy", "scipy", "dask", "jupyterlab"} <= imports("jupyter-scipy")


def test_cpu_images_take_xgboost_cpu_and_cuda_images_the_cuda_build(family: Catalog) -> None:
    def pips(n: str) -> str:
        img = family.resolve(n)
        return " ".join(st.describe() for i in img.lineage() for st in i.steps)

    assert "xgboost-cpu==" in pips("jupyter-scipy")
    assert "xgboost-cpu==" in pips("jupyter-pytorch-full")
    assert "xgboost==" in pips("jupyter-pytorch-cuda-full")


def test_external_sources_are_declared(family: Catalog) -> None:
    assert "deb.debian.org" in family.resolve("base").sources()
    assert "pypi.org" in family.resolve("jupyter").sources()
    assert "download.pytorch.org" in family.resolve("jupyter-pytorch").sources()
    assert "vault.habana.ai" in family.resolve("jupyter-pytorch-gaudi").sources()
    assert "registry.npmjs.org" in family.resolve("codeserver").sources()
    assert any("rstudio" in h or "posit" in h for h in family.resolve("rstudio").sources())


def test_plan_for_pytorch_cuda_full(family: Catalog) -> None:
    assert family.order(["jupyter-pytorch-cuda-full"]) == [
        "base", "jupyter", "jupyter-pytorch-cuda", "jupyter-pytorch-cuda-full"]


def test_no_command_holds_two_locked_caches(family: Catalog) -> None:
    """Buildah 1.28 releases only one of a RUN's `sharing=locked` caches: a second RUN of
    the same build using the other one would wait for ever (seen: jupyter-scipy's second
    pip step, when uv's cache was a mount of its own)."""
    from nbpipe.recipe.ops import CacheMount, Exec

    for name in family.order():
        image = family.resolve(name)
        for platform in image.platforms:
            for op in image.ops(platform):
                if isinstance(op, Exec):
                    locked = [m.id for m in op.mounts if isinstance(m, CacheMount) and not m.shared]
                    assert len(locked) <= 1, (name, platform, locked)
