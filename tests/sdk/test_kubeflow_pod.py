"""The pod Kubeflow's controller makes, its podman stand-in, and the culler's strict decode
of /api/kernels (offline: no container runs here)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from nbpipe.probing import kubeflow
from nbpipe.probes.kubeflow import decode_kernels, rfc3339
from nbpipe.probes.result import ProbeFailure

NAMES = kubeflow.Names("demo", "team-a")
GOOD = {"id": "0b6f", "name": "python3", "last_activity": "2026-11-27T09:39:16.199123Z",
        "execution_state": "idle", "connections": 0}


def test_kubeflow_pod_is_what_the_controller_makes() -> None:
    pod = kubeflow.kubernetes_pod(NAMES, "img:1")
    spec = pod["spec"]
    c = spec["containers"][0]
    assert pod["metadata"]["name"] == "demo-0"
    assert pod["metadata"]["labels"]["statefulset"] == "demo"
    assert c["workingDir"] == "/home/jovyan"
    assert c["ports"] == [{"containerPort": 8888, "name": "notebook-port", "protocol": "TCP"}]
    assert {"name": "NB_PREFIX", "value": "/notebook/team-a/demo"} in c["env"]
    assert spec["securityContext"] == {"fsGroup": 100}
    assert c["resources"] == {"requests": {"cpu": "0.5", "memory": "1.0Gi"},
                              "limits": {"cpu": "0.6", "memory": "1.2Gi"}}
    assert {"name": "dshm", "emptyDir": {"medium": "Memory"}} in spec["volumes"]
    assert {"name": "demo-workspace", "persistentVolumeClaim": {"claimName": "demo-workspace"}} \
        in spec["volumes"]
    assert spec["terminationGracePeriodSeconds"] == 30
    assert "command" not in c and "args" not in c
    assert not any(k.endswith("Probe") for k in c)


def test_openshift_pod_has_no_fs_group_100_but_the_scc_identity() -> None:
    pod = kubeflow.kubernetes_pod(NAMES, "img:1", "openshift")
    sc = pod["spec"]["securityContext"]
    assert sc["runAsUser"] == kubeflow.OPENSHIFT_UID and sc["fsGroup"] == kubeflow.OPENSHIFT_UID
    csc = pod["spec"]["containers"][0]["securityContext"]
    assert csc == {"allowPrivilegeEscalation": False, "runAsNonRoot": True,
                   "runAsUser": kubeflow.OPENSHIFT_UID, "capabilities": {"drop": ["ALL"]}}
    with pytest.raises(ValueError):
        kubeflow.kubernetes_pod(NAMES, "img:1", "gke")


def test_podman_manifest_emulates_what_podman_ignores(tmp_path: Path) -> None:
    pod = kubeflow.kubernetes_pod(NAMES, "img:1")
    out = kubeflow.for_podman(pod, home=tmp_path / "h", shm=tmp_path / "s", port=4242)
    spec = out["spec"]
    vols = {v["name"]: v for v in spec["volumes"]}
    assert vols["demo-workspace"] == {"name": "demo-workspace", "hostPath": {
        "path": str(tmp_path / "h"), "type": "Directory"}}
    assert vols["dshm"]["hostPath"]["path"] == str(tmp_path / "s")
    assert spec["securityContext"]["supplementalGroups"] == [100]
    limits = spec["containers"][0]["resources"]["limits"]
    assert limits == {"cpu": "0.6", "memory": str(1288490189)}
    port = spec["containers"][0]["ports"][0]
    assert port["hostPort"] == 4242 and port["hostIP"] == "127.0.0.1"
    assert pod["spec"]["volumes"][0].get("persistentVolumeClaim")  # the input is untouched
    assert yaml.safe_load(kubeflow.dump(out)) == out


@pytest.mark.parametrize("q, n", [("1.2Gi", 1288490189), ("1Gi", 2**30), ("512Mi", 2**29),
                                  ("1.5G", 1_500_000_000), ("1000", 1000)])
def test_memory_quantities(q: str, n: int) -> None:
    assert kubeflow.memory_bytes(q) == n


def test_a_jupyter_kernels_body_decodes() -> None:
    body = json.dumps([GOOD, {**GOOD, "id": "x", "execution_state": "busy", "connections": 2,
                              "extra": [1]}]).encode()
    assert [k["id"] for k in decode_kernels(body)] == ["0b6f", "x"]
    assert decode_kernels(b"[]") == []
    assert decode_kernels(json.dumps([{**GOOD, "ID": "y"}]).encode())[0]["id"] == "0b6f"


@pytest.mark.parametrize("body, words", [
    (b'{"kernels": []}', "not an array"),
    (b"null", "not an array"),
    (b"<html>", "not JSON"),
    (b"[1]", "not an object"),
    (json.dumps([{**GOOD, "connections": 1.0}]).encode(), "connections is 1.0"),
    (json.dumps([{**GOOD, "connections": "1"}]).encode(), "connections"),
    (json.dumps([{**GOOD, "connections": 2**63}]).encode(), "connections"),
    (json.dumps([{**GOOD, "id": 7}]).encode(), "id is 7"),
    (json.dumps([{k: v for k, v in GOOD.items() if k != "execution_state"}]).encode(),
     "no 'execution_state'"),
    (json.dumps([{**GOOD, "last_activity": "2026-11-27 09:39:16Z"}]).encode(), "RFC 3339"),
    (json.dumps([{**GOOD, "last_activity": "2026-11-27T09:39:16"}]).encode(), "RFC 3339"),
    (json.dumps([{**GOOD, "last_activity": "2026-13-27T09:39:16Z"}]).encode(), "last_activity"),
])
def test_what_the_culler_cannot_decode_fails(body: bytes, words: str) -> None:
    with pytest.raises(ProbeFailure) as exc:
        decode_kernels(body)
    assert words in str(exc.value)


def test_rfc3339_offsets_and_fractions() -> None:
    assert rfc3339("2026-11-27T09:39:16+05:30").utcoffset().total_seconds() == 19800
    assert rfc3339("2026-11-27T09:39:16.5Z").microsecond == 500000
    with pytest.raises(ValueError):
        rfc3339("2026-11-27T09:39:16+24:00")


def test_publish_refuses_an_unknown_compression_before_building() -> None:
    from nbpipe.errors import NbpipeError
    from nbpipe.family import family
    from nbpipe.recipe.options import BuildOptions
    from nbpipe.run.machine import Machine
    from nbpipe.run.publish import publish
    from nbpipe.run.settings import Settings
    from nbpipe.engines.registry import Registry

    with pytest.raises(NbpipeError, match="--compression lz4: use one of gzip, zstd"):
        publish(Machine(family(), "linux/amd64", None), ["jupyter"], Registry.parse("127.0.0.1:1"),
                platforms=None, options=BuildOptions(), settings=Settings(), compression="lz4")


@pytest.mark.parametrize("types, want", [
    (["application/vnd.oci.image.layer.v1.tar+zstd"] * 2, "zstd"),
    (["application/vnd.docker.image.rootfs.diff.tar.gzip"], "gzip"),
    (["application/vnd.oci.image.layer.v1.tar+gzip", "application/vnd.oci.image.layer.v1.tar+zstd"],
     "mixed"),
])
def test_layer_compression_from_a_manifest(types: list[str], want: str) -> None:
    from nbpipe.run.publish import layer_compression

    raw = json.dumps({"layers": [{"mediaType": t} for t in types]}).encode()
    assert layer_compression(raw) == want
