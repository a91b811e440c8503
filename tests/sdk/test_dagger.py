"""The Dagger path, checked without an engine: dagger-io's lazy query builder gives the
exact query the SDK would send, and the module registers through the SDK's own code."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from nbpipe.engines import dagger as lowering
from nbpipe.engines import dockerfile
from nbpipe.recipe import platforms as plat
from nbpipe.recipe.catalog import Catalog
from nbpipe.recipe.options import BuildOptions
from tests.conftest import REGISTER
from tests.sdk.test_export import parsed

dagger = pytest.importorskip("dagger")

REPO = Path(__file__).resolve().parents[2]


def selections(ctr) -> list:
    return list(ctr._ctx.selections)


def _arg(value):
    """A dagger object argument as (field, args) of its own query; plain values as is."""
    if hasattr(value, "_ctx"):
        return [(f.name, {k: _arg(v) for k, v in f.args.items()}) for f in value._ctx.selections]
    return value


def dagger_table(ctr, start_user: str = "root") -> list[tuple]:
    """The Dagger query, normalised to the table test_export reads Dockerfiles into."""
    return calls_table(selections(ctr)[2:], start_user)  # container(platform), from(address)


def calls_table(calls: list, start_user: str = "root") -> list[tuple]:
    out: list[tuple] = []
    user = start_user
    mounts: dict[str, tuple] = {}
    for f in calls:
        a = f.args
        match f.name:
            case "withUser":
                user = a["name"]
            case "withMountedCache":
                mounts[a["path"]] = ("cache", _arg(a["cache"])[0][1]["key"], a.get("owner"),
                                     a.get("sharing", "SHARED"))  # the client omits a default
            case "withMountedSecret":
                mounts[a["path"]] = ("secret", a.get("mode", 0o400))
            case "withMountedDirectory":
                mounts[a["path"]] = ("bind",)
            case "withoutMount":
                mounts.pop(a["path"])
            case "withExec":
                out.append(("RUN", user, a["args"], dict(sorted(mounts.items()))))
            case "withEnvVariable":
                assert not a.get("expand"), "values are literal on every engine"
                out.append(("ENV", a["name"], a["value"]))
            case "withWorkdir":
                out.append(("WORKDIR", a["path"]))
            case "withNewFile":
                out.append(("COPY", a["path"], a["contents"].encode(),
                            a.get("permissions", 0o644), a.get("owner", "")))
            case "withLabel":
                out.append(("LABEL", a["name"], a["value"]))
            case "withExposedPort":
                out.append(("EXPOSE", a["port"]))
            case "withEntrypoint":
                out.append(("ENTRYPOINT", a["args"]))
            case "withDefaultArgs":
                out.append(("CMD", a.get("args", [])))
            case other:
                pytest.fail(f"unexpected Dagger call {other}")
    return out


def dockerfile_table(image, platform, options) -> list[tuple]:
    """The same table from the Dockerfiles of the whole chain, with their --mount flags."""
    import re

    out: list[tuple] = []
    for img in reversed(list(image.lineage())):
        rendered = dockerfile.render(img, platform, options)
        parent = img.parent
        start = parent.config(platform).user if hasattr(parent, "config") else "root"
        rows, _ = parsed(rendered, start)
        runs = [line for line in rendered.text.splitlines() if line.startswith("RUN ")]
        for row in rows:
            if row[0] == "RUN":
                line = runs.pop(0)
                mounts = {}
                for m in re.findall(r"--mount=(\S+)", line):
                    kv = dict(p.split("=", 1) if "=" in p else (p, True) for p in m.split(","))
                    if kv["type"] == "cache":
                        mounts[kv["target"]] = ("cache", kv["id"], f"{kv['uid']}:{kv['gid']}",
                                                kv["sharing"].upper())
                    elif kv["type"] == "secret":
                        mounts[kv["target"]] = ("secret", int(kv["mode"], 8))
                    else:
                        mounts[kv["target"]] = ("bind",)
                row = (*row, dict(sorted(mounts.items())))
            out.append(row)
    return out


@pytest.fixture()
def ca(tmp_path):
    path = tmp_path / "ca.pem"
    path.write_text("-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n")
    return path


def test_build_jupyter_scipy_starts_from_the_pinned_root_and_has_every_step(family: Catalog):
    image = family.resolve("jupyter-scipy")
    sels = selections(lowering.lower(image, plat.AMD64))
    assert (sels[0].name, sels[0].args) == ("container", {"platform": "linux/amd64"})
    assert (sels[1].name, sels[1].args) == ("from", {"address": image.root.pinned(plat.AMD64)})
    assert image.root.pinned(plat.AMD64).endswith(image.root.digest(plat.AMD64))
    execs = [s.args["args"][2] for s in sels if s.name == "withExec"]
    # every Exec of base, jupyter and jupyter-scipy, in order, as the engine would run them
    want = [BuildOptions().prepare(op).argv()[2]
            for img in ("base", "jupyter", "jupyter-scipy")
            for op in family.resolve(img).ops(plat.AMD64) if type(op).__name__ == "Exec"]
    assert execs == want
    labels = {s.args["name"]: s.args["value"] for s in sels if s.name == "withLabel"}
    assert labels["io.nbpipe.image"] == "jupyter-scipy"
    assert labels["io.nbpipe.digest"] == image.digest(plat.AMD64)


@pytest.mark.parametrize("name", ["jupyter-scipy", "codeserver-python", "rstudio-tidyverse",
                                  "jupyter-pytorch-gaudi-full"])
def test_both_lowerings_agree_step_by_step(family: Catalog, name: str, ca, tmp_path) -> None:
    image = family.resolve(name)
    for platform in image.platforms:
        for options in (BuildOptions(), BuildOptions(ca_bundle=ca, wheelhouse=tmp_path)):
            assert dagger_table(lowering.lower(image, platform, options)) == \
                dockerfile_table(image, platform, options)


def test_caches_are_locked_cache_volumes_and_the_ca_a_secret(family: Catalog, ca) -> None:
    sels = selections(lowering.lower(family.resolve("jupyter"), plat.AMD64,
                                     BuildOptions(ca_bundle=ca)))
    caches = {_arg(s.args["cache"])[0][1]["key"] for s in sels if s.name == "withMountedCache"}
    assert caches == {"nbpipe-apt-archives", "nbpipe-pip"}
    secret = [s for s in sels if s.name == "withMountedSecret"][0]
    assert _arg(secret.args["source"]) == [("secret", {"uri": f"file://{ca}"})]
    assert not any(s.name in ("withNewFile", "withFile") and "BEGIN CERT" in str(s.args)
                   for s in sels)


def test_gpu_images_can_ask_for_all_gpus(family: Catalog) -> None:
    sels = selections(lowering.lower(family.resolve("jupyter-pytorch-cuda"), plat.AMD64, gpu=True))
    assert sels[-1].name == "experimentalWithAllGPUs"


def test_unknown_image_lists_valid_names() -> None:
    from nbpipe.errors import CatalogError
    from nbpipe.family import family
    from nbpipe.pipelines import Nbpipe

    with pytest.raises(CatalogError) as exc:
        Nbpipe()._image("jupyter-scpiy")
    assert str(exc.value) == ("unknown image 'jupyter-scpiy'; known images: "
                              + ", ".join(family().names))
    assert "jupyter-scipy" in str(exc.value) and "rstudio-tidyverse" in str(exc.value)


def test_module_constructor_takes_a_root_off_docker_hub() -> None:
    """`dagger call --root NAME@DIGEST ...` / `dag.nbpipe(root=...)`: optional, documented,
    and every function builds on it (the live tests use it: no Docker Hub here)."""
    env = {**os.environ, "DAGGER_MODULE": "nbpipe", "DAGGER_MAIN_OBJECT": "Nbpipe"}
    r = subprocess.run([sys.executable, "-c", REGISTER], capture_output=True, text=True,
                       env=env, timeout=120)
    obj = [a["object"] for name, a in json.loads(r.stdout) if name == "withObject"][0]
    ctor = [a["function"] for name, a in obj if name == "withConstructor"][0]
    args = {x[1]["name"]: x[1] for x in ctor if x[0] == "withArg"}
    assert set(args) == {"root"} and args["root"]["defaultValue"] == '""'
    assert "NAME@sha256:DIGEST" in args["root"]["description"]
    from nbpipe.pipelines.main import Nbpipe

    digest = "sha256:" + "cd" * 32
    img = Nbpipe(root=f"localhost:5000/nbpipe/root@{digest}")._image("jupyter")
    assert img.root.pinned(plat.AMD64) == f"localhost:5000/nbpipe/root@{digest}"
    assert Nbpipe()._image("jupyter").root.ref == "docker.io/library/debian:bookworm-slim"


def test_module_registers_its_functions(registered) -> None:
    assert set(registered) == {"images", "graph", "build", "build_spec", "build_catalog",
                               "test", "test_container", "publish", "ci"}
    for fn in registered.values():
        assert fn["doc"], "every function says what it does"


def _kind(typedef) -> str:
    kinds = [a.get("kind") or a.get("name") for _, a in typedef if a]
    return "/".join(str(k) for k in kinds if k)


def test_module_function_signatures(registered) -> None:
    build = registered["build"]
    assert "Container" in _kind(build["returns"])
    assert set(build["args"]) == {"image", "platform", "ca_bundle", "wheelhouse", "reproducible"}
    assert build["args"]["reproducible"]["defaultValue"] == "false"
    assert "STRING_KIND" in _kind(build["args"]["image"]["typeDef"])
    assert "jupyter-scipy" in build["args"]["image"]["description"]
    assert "Platform" in _kind(build["args"]["platform"]["typeDef"])
    assert "Secret" in _kind(build["args"]["ca_bundle"]["typeDef"])
    assert registered["graph"]["args"]["format"]["defaultValue"] == '"text"'
    assert set(registered["publish"]["args"]) >= {"image", "address", "platforms", "tags",
                                                  "username", "password"}
    assert "Secret" in _kind(registered["publish"]["args"]["password"]["typeDef"])
    assert "Directory" in _kind(registered["build_spec"]["args"]["source"]["typeDef"])
    assert "Container" in _kind(registered["build_spec"]["returns"])
    assert "Container" in _kind(registered["test_container"]["args"]["container"]["typeDef"])
    assert set(registered["ci"]["args"]) >= {"images", "registry"}
    assert "STRING_KIND" in _kind(registered["test"]["returns"])
    assert set(registered["ci"]["args"]) >= {"since", "runner_tags"}


@pytest.mark.dagger
def test_live_engine_builds_base_as_jovyan(live_dagger) -> None:
    root = os.environ.get("NBPIPE_DAGGER_ROOT", "")
    r = subprocess.run(["dagger", "call", *(["--root", root] if root else []), "build",
                        "--image", "base", "with-exec", "--args", "id", "stdout"],
                       capture_output=True, text=True, timeout=3600, cwd=REPO)
    assert r.returncode == 0, r.stderr
    assert "uid=1000(jovyan) gid=0(root) groups=0(root),100(users)" in r.stdout


def _final_config(rows: list[tuple], user: str) -> dict:
    """What a container ends with after ``rows`` (last ENV/LABEL/... wins)."""
    cfg: dict = {"env": {}, "labels": {}, "ports": set(), "workdir": "/", "user": user,
                 "entrypoint": [], "cmd": []}
    for row in rows:
        match row:
            case ("ENV", name, value):
                cfg["env"][name] = value
            case ("LABEL", key, value):
                cfg["labels"][key] = value
            case ("EXPOSE", port):
                cfg["ports"].add(port)
            case ("WORKDIR", path):
                cfg["workdir"] = path
            case ("ENTRYPOINT", argv):
                cfg["entrypoint"] = argv
            case ("CMD", argv):
                cfg["cmd"] = argv
    return cfg


@pytest.mark.parametrize("name", ["jupyter", "codeserver-python"])
def test_reproducible_build_is_flattened_with_clamped_times(family: Catalog, name: str) -> None:
    """The flattened image ends with the config the Dockerfile chain ends with: env,
    labels (the image's own stamp last), ports, workdir, user, entrypoint and command."""
    image = family.resolve(name)
    options = BuildOptions(source_date_epoch=1234)
    sels = selections(lowering.lower(image, plat.AMD64, options, reproducible=True))
    names = [s.name for s in sels]
    root = _arg(sels[names.index("withRootfs")].args["directory"])
    # one layer, every time clamped: the built rootfs copied into an empty Directory by the
    # image's own cp, then touch -h (not Directory.withTimestamps, which follows symlinks on
    # v0.21.8, nor the rootfs as is, which keeps every step's layer and times)
    src, dst = lowering.CLAMP_FROM, lowering.CLAMP_TO
    assert root[-1] == ("directory", {"path": dst})
    assert root[-2] == ("withExec", {"args": ["sh", "-c", lowering.CLAMP_SCRIPT, "nbpipe-clamp",
                                              src, dst, "1234"]})
    assert 'cp -a "$1/." "$2/"' in lowering.CLAMP_SCRIPT
    assert 'find "$2" -exec touch -h -d "@$3" {} +' in lowering.CLAMP_SCRIPT
    assert root[-3] == ("withMountedDirectory", {"path": dst, "source": [("directory", {})]})
    assert root[-4][0] == "withMountedDirectory" and root[-4][1]["path"] == src
    built = [n for n, _ in root[-4][1]["source"]]
    assert built[:2] == ["container", "from"] and built[-1] == "rootfs"
    assert [n for n, _ in root[:-5]] == built[:-1], "the rootfs of the built image itself"
    assert root[-5] == ("withUser", {"name": "root"})
    assert not any(n == "withTimestamps" for n, _ in root)
    after = sels[names.index("withRootfs"):]
    assert [s.name for s in sels[:names.index("withRootfs")]] == ["container"]
    flat = calls_table(after[1:])
    users = [s.args["name"] for s in after if s.name == "withUser"]
    _, final_user = parsed(dockerfile.render(image, plat.AMD64, options),
                           image.parent.config(plat.AMD64).user)
    want = _final_config(dockerfile_table(image, plat.AMD64, options), final_user)
    assert _final_config(flat, users[-1]) == want
    assert want["labels"]["io.nbpipe.image"] == name
    assert want["env"]["HOME"] == "/home/jovyan" and want["user"] == "1000"
    assert want["entrypoint"] == ["/init"] and 8888 in want["ports"]
    assert [s.name for s in after[-2:]] == ["withEntrypoint", "withDefaultArgs"]


def test_ci_jobs_pull_the_nearest_unchanged_ancestor_by_content_tag(family: Catalog) -> None:
    from nbpipe.recipe.naming import content_tag

    image = family.resolve("jupyter-pytorch-full")
    sels = selections(lowering.lower(image, plat.AMD64, registry="ghcr.io/acme/",
                                     published={"base", "jupyter"}))
    jupyter = family.resolve("jupyter")
    assert (sels[1].name, sels[1].args) == (
        "from", {"address": f"ghcr.io/acme/jupyter:{content_tag(jupyter)}"})
    execs = [s.args["args"] for s in sels if s.name == "withExec"]
    want = [BuildOptions().prepare(op).argv()
            for img in ("jupyter-pytorch", "jupyter-pytorch-full")
            for op in family.resolve(img).ops(plat.AMD64) if type(op).__name__ == "Exec"]
    assert execs == want, "only the changed part of the chain is built"
    assert dagger_table(lowering.lower(image, plat.AMD64, registry="ghcr.io/acme",
                                       published={"base", "jupyter"}),
                        start_user=jupyter.config(plat.AMD64).user) == \
        dockerfile_table(image, plat.AMD64, BuildOptions())[
            len(dockerfile_table(jupyter, plat.AMD64, BuildOptions())):]
    # without a registry, or with nothing published, the whole chain from the pinned root
    for kwargs in ({}, {"registry": "ghcr.io/acme"}):
        sels = selections(lowering.lower(image, plat.AMD64, **kwargs))
        assert sels[1].args == {"address": image.root.pinned(plat.AMD64)}
