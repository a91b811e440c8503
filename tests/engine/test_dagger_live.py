"""Our Dagger module on a live engine: `dagger call build / test / publish / ci`, a
reproducible build twice, and `nbpipe build --engine dagger` under `dagger run`.

SKIPPED with the reason unless a `dagger` CLI on PATH reaches a running engine within a few
seconds (the `live_dagger` fixture). Here that is the engine `.ci/setup-dagger.sh` builds
(`source /opt/nbpipe-dagger/env` first); it has no Docker Hub, so $NBPIPE_DAGGER_ROOT names
the Debian root its own registry serves, and the module builds on it (`--root`).
"""

from __future__ import annotations

import json
import os
import subprocess
import tarfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
HOST_CA = Path("/etc/ssl/certs/ca-certificates.crt")
IMAGES = os.environ.get("NBPIPE_DAGGER_IMAGES", "jupyter").split(",")

pytestmark = [pytest.mark.dagger, pytest.mark.slow]


def call(
    *args: str, env: dict | None = None, cwd: Path = REPO, check: bool = True, timeout: int = 3600
) -> subprocess.CompletedProcess:
    """`dagger call` on this checkout, on the root this engine can pull."""
    root = os.environ.get("NBPIPE_DAGGER_ROOT", "")
    argv = ["dagger", "call", "--progress", "plain", *(["--root", root] if root else []), *args]
    r = subprocess.run(
        argv,
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, **(env or {})},
    )
    if check:
        assert r.returncode == 0, f"{' '.join(argv)}: exit {r.returncode}\n{r.stderr[-4000:]}"
    return r


def ca() -> list[str]:
    """The TLS-intercepting proxy's CA for the build steps (a build secret, never stored)."""
    return ["--ca-bundle", f"file:{HOST_CA}"] if HOST_CA.exists() else []


def manifest_digest(tar: Path) -> str:
    """The image's manifest digest as `Container.export` wrote it (its OCI index)."""
    with tarfile.open(tar) as t:
        index = json.load(t.extractfile("index.json"))
    return index["manifests"][0]["digest"]


@pytest.mark.parametrize("name", IMAGES)
def test_build_exports_an_image_and_test_probes_it(live_dagger, tmp_path, name: str) -> None:
    out = tmp_path / f"{name}.tar"
    call("build", "--image", name, *ca(), "export", "--path", str(out))
    with tarfile.open(out) as t:
        assert "index.json" in t.getnames()
    r = call("test", "--image", name, *ca())
    assert "FAIL" not in r.stdout.replace("FAILED 0", ""), r.stdout
    assert "from a probe container, over HTTP" in r.stdout and "inside the container" in r.stdout


def test_build_runs_as_jovyan(live_dagger) -> None:
    r = call("build", "--image", "base", "with-exec", "--args", "id", "stdout")
    assert "uid=1000(jovyan) gid=0(root) groups=0(root),100(users)" in r.stdout


def test_publish_with_secrets_to_a_registry_with_auth(live_dagger) -> None:
    registry = os.environ.get("NBPIPE_DAGGER_PUBLISH_REGISTRY")
    creds = os.environ.get("NBPIPE_DAGGER_PUBLISH_CREDENTIALS")
    if not (registry and creds and Path(creds).is_file()):
        pytest.skip(
            "no registry with auth for this engine ($NBPIPE_DAGGER_PUBLISH_REGISTRY, "
            "$NBPIPE_DAGGER_PUBLISH_CREDENTIALS: bash .ci/setup-dagger.sh start)"
        )
    user, password = Path(creds).read_text().strip().split(":", 1)
    address = f"{registry}/nbpipe/base"
    refused = call(
        "publish",
        "--image",
        "base",
        "--address",
        address,
        "--platforms",
        "linux/amd64",
        check=False,
    )
    assert refused.returncode != 0, "a registry with auth refuses an anonymous push"
    r = call(
        "publish",
        "--image",
        "base",
        "--address",
        address,
        "--platforms",
        "linux/amd64",
        "--username",
        user,
        "--password",
        "env:NBPIPE_TEST_REGISTRY_PASSWORD",
        env={"NBPIPE_TEST_REGISTRY_PASSWORD": password},
    )
    refs = r.stdout.strip().splitlines()
    assert refs and all(ref.startswith(f"{address}:sha-") for ref in refs), r.stdout
    assert password not in r.stdout + r.stderr
    host = registry.replace("localhost", "127.0.0.1")
    tag = refs[0].split("@")[0].rsplit(":", 1)[1]
    inspect = [
        "skopeo",
        "inspect",
        "--tls-verify=false",
        "--creds",
        f"{user}:{password}",
        f"docker://{host}/nbpipe/base:{tag}",
    ]
    anonymous = subprocess.run(
        [*inspect[:3], *inspect[5:]], capture_output=True, text=True, timeout=120
    )
    assert anonymous.returncode != 0, "the registry holds it behind its auth"
    got = subprocess.run(inspect, capture_output=True, text=True, timeout=120)
    assert got.returncode == 0, got.stderr
    # one platform variant: Dagger pushes it as a plain manifest, not a one-entry list
    assert json.loads(got.stdout)["Architecture"] == "amd64"


def test_ci_builds_and_probes_what_it_is_asked(live_dagger) -> None:
    r = call("ci", "--images", "base", *ca())
    assert [ln.split() for ln in r.stdout.strip().splitlines()] == [["base", "ok"]]


def image_parts(tar: Path) -> tuple[list[str], dict, list[tarfile.TarInfo]]:
    """An exported image's layer digests (diff_ids), its config, and its one layer's entries."""
    with tarfile.open(tar) as t:
        blob = lambda d: t.extractfile("blobs/sha256/" + d.split(":", 1)[1])  # noqa: E731
        index = json.load(t.extractfile("index.json"))
        manifest = json.load(blob(index["manifests"][0]["digest"]))
        config = json.load(blob(manifest["config"]["digest"]))
        assert len(manifest["layers"]) == 1, "a reproducible build is flattened to one layer"
        with tarfile.open(fileobj=blob(manifest["layers"][0]["digest"]), mode="r|*") as layer:
            entries = list(layer)
    return config["rootfs"]["diff_ids"], config, entries


def test_reproducible_build_twice_gives_one_digest(live_dagger, tmp_path) -> None:
    """Two builds of base with the engine's cache pruned in between (a real rebuild, not a
    cache hit), flattened to one layer with every file time clamped: the same layer digest
    and the same config but for its times.

    Not the same manifest digest: v0.21.8's Container.export writes `created` and
    `history[].created` from the time the engine made each snapshot (time.Now(); its
    exportCommitOpts never sets an epoch: engine/engineutil/containerimage.go), and the
    Container API has no option for either, so two real rebuilds always differ there.
    """
    parts = []
    for n in (1, 2):
        prune = subprocess.run(
            ["dagger", "query", "--progress", "plain"],
            input="{ engine { localCache { prune } } }",
            text=True,
            capture_output=True,
            timeout=600,
        )
        assert prune.returncode == 0, prune.stderr
        out = tmp_path / f"base-{n}.tar"
        call("build", "--image", "base", "--reproducible", *ca(), "export", "--path", str(out))
        parts.append(image_parts(out))
        print(f"build {n}: manifest {manifest_digest(out)}, layers {parts[-1][0]}")
    (layers1, config1, entries1), (layers2, config2, entries2) = parts
    assert {int(e.mtime) for e in entries1} == {0}, "every time clamped to SOURCE_DATE_EPOCH"
    assert [(e.name, e.mode, e.uid, e.gid) for e in entries1] == [
        (e.name, e.mode, e.uid, e.gid) for e in entries2
    ]
    assert layers1 == layers2, "the same file system, byte for byte"
    untimed = lambda c: {k: v for k, v in c.items() if k not in ("created", "history")}  # noqa: E731
    assert untimed(config1) == untimed(config2)
    assert [h.get("created_by") for h in config1["history"]] == [
        h.get("created_by") for h in config2["history"]
    ]


def test_nbpipe_build_engine_dagger_under_dagger_run(live_dagger, tmp_path) -> None:
    nbpipe = REPO / ".venv" / "bin" / "nbpipe"
    if not nbpipe.exists():
        pytest.skip(f"no {nbpipe}: bash .ci/setup")
    r = subprocess.run(
        [
            "dagger",
            "run",
            "--progress",
            "plain",
            str(nbpipe),
            "build",
            "base",
            "--engine",
            "dagger",
            "--report-dir",
            str(tmp_path),
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=3600,
    )
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    report = json.loads((tmp_path / "nbpipe-report.json").read_text())
    assert {i["name"]: i["status"] for i in report}["base"] == "built", report
