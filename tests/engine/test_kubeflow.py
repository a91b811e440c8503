"""Our images as Kubeflow's notebook pod (podman kube play): jupyter passes as the
kubeflow pod and as OpenShift's restricted pod, and each pod probe fails on a small image
derived from jupyter and broken for that one rule. Reuses the session's built chain."""

from __future__ import annotations

import os
import shutil

import pytest

from nbpipe.family.base import FILES
from nbpipe.probes.result import Status
from nbpipe.probing.podprober import probe_pod
from nbpipe.recipe import naming

from .conftest import run_pipeline

pytestmark = pytest.mark.engine

CONFIG = "/opt/venv/etc/jupyter/jupyter_server_config.py"
GOOD_CONFIG = (FILES / "jupyter_server_config.py").read_text()
# A server whose kernel list says "2026-11-27 10:00:00Z" (a space, not RFC 3339's T)
SPACE_TIME = (
    GOOD_CONFIG
    + """
from jupyter_server.services.kernels.kernelmanager import MappingKernelManager as _M
_model = _M.kernel_model
def _kernel_model(self, kernel_id):
    m = _model(self, kernel_id)
    m["last_activity"] = m["last_activity"].replace("T", " ")
    return m
_M.kernel_model = _kernel_model
"""
)
BURN = (
    "#!/bin/sh\npython3 -c 'import time\nt = time.process_time()\n"
    "while time.process_time() - t < 4: pass'\n"
)
# name: (recipe on jupyter, flavor, probe_pod keywords, the probe that must fail, words
# its message holds: one of a|b)
BROKEN = {
    "kf-heavy-start": (
        lambda i: i.with_init_script("50-warm-up", BURN),
        "kubeflow",
        {},
        "pod-ready",
        "cpu-s",
    ),
    "kf-culler-time": (
        lambda i: i.with_file(CONFIG, SPACE_TIME),
        "kubeflow",
        {},
        "culler-decode",
        "RFC 3339",
    ),
    "kf-readonly-root": (
        lambda i: i.with_file(CONFIG, GOOD_CONFIG + '\nc.ServerApp.root_dir = "/usr/share"\n'),
        "kubeflow",
        {},
        "gateway-notebook",
        "saving",
    ),
    "kf-no-sigterm": (
        lambda i: i.with_file(
            "/usr/local/bin/start", '#!/bin/sh\n/init "$@"\n', mode=0o755
        ).with_entrypoint("/usr/local/bin/start"),
        "kubeflow",
        {"grace": 6},
        "sigterm-stop",
        "exited 137",
    ),
    "kf-reset-home": (
        lambda i: i.with_init_script("00-reset", '#!/bin/sh\ncp -rf /etc/nbpipe/skel/. "$HOME"/\n'),
        "kubeflow",
        {},
        "replay-same-volume",
        "~/.bashrc was lost",
    ),
    # state in a folder only uid 1000 may write (not its group 0): fine as jovyan, not as
    # OpenShift's arbitrary uid
    "kf-uid-1000-only": (
        lambda i: i.with_run(
            "install -d -o 1000 -g 0 -m 0755 /var/lib/app", user="root"
        ).with_init_script("10-state", "#!/bin/sh\necho up > /var/lib/app/state\n"),
        "openshift",
        {"ready_timeout": 20},
        "pod-ready",
        "no 200|no longer running",
    ),
}
KUBEFLOW = {"pod-ready", "culler-decode", "gateway-notebook", "sigterm-stop", "replay-same-volume"}
OPENSHIFT = {"pod-ready", "openshift-identity", "culler-decode", "gateway-notebook", "sigterm-stop"}
# jupyter always; jupyter-scipy too unless CI is short of time (NBPIPE_POD_IMAGES=jupyter)
IMAGES = os.environ.get("NBPIPE_POD_IMAGES", "jupyter,jupyter-scipy").split(",")


@pytest.fixture(scope="module", autouse=True)
def _podman(engine):
    if engine.kind != "podman" or shutil.which("podman") is None:
        pytest.skip(
            f"the pod mode plays pods with podman (kube play); this engine is {engine.kind}"
        )


@pytest.mark.parametrize("flavor", ["kubeflow", "openshift"])
@pytest.mark.parametrize("name", IMAGES)
def test_image_passes_as_the_pod(engine, chain, name: str, flavor: str) -> None:
    assert chain[name].ok, chain[name].message
    results, log = probe_pod(engine, chain[name].ref, flavor=flavor)
    by_name = {p.name: p for p in results}
    failed = {n: p.message for n, p in by_name.items() if p.status is not Status.PASSED}
    assert not failed, (failed, log)
    assert set(by_name) == (KUBEFLOW if flavor == "kubeflow" else OPENSHIFT)


@pytest.fixture(scope="module")
def broken(local_family, engine, platform, options, state_dir, chain):
    cat = local_family
    for name, (recipe, *_rest) in BROKEN.items():
        cat.add(name, "jupyter", recipe)
    try:
        built = run_pipeline(cat, engine, platform, options, state_dir, list(BROKEN), probe=False)
        yield {n: r.ref for n, r in built.items() if n in BROKEN}
    finally:
        for n in BROKEN:
            engine.remove(naming.local_ref(cat.resolve(n), platform))


@pytest.mark.parametrize("name", list(BROKEN))
def test_each_pod_probe_fails_on_an_image_broken_for_its_rule(engine, broken, name) -> None:
    _, flavor, kw, probe, words = BROKEN[name]
    results, log = probe_pod(engine, broken[name], flavor=flavor, **kw)
    got = {p.name: p for p in results}[probe]
    assert got.status is Status.FAILED, (got, log)
    assert any(w in got.message for w in words.split("|")), got.message
