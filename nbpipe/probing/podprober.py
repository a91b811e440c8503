"""Run a built image as Kubeflow's notebook pod under `podman kube play`, and probe it
through the pod's life: ready under the default cpu limit, read by the culler, used
through the gateway, stopped as Kubernetes stops it, played again on the same volume.

The pod is the one nbpipe.probing.kubeflow writes; what Podman 4.3 ignores is emulated here
(the volume as kubelet's fsGroup change leaves it, /dev/shm as a sized tmpfs, the grace
period on stop) and listed in kubeflow.for_podman.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

from nbpipe.engines.oci import OciEngine
from nbpipe.probes.checks import Target, home_text, run_all, run_one
from nbpipe.probes.http import wait_ready
from nbpipe.probes.kubeflow import NOTEBOOK, PodFacts, culler_client, kernels_path, pod_checks
from nbpipe.probes.result import ProbeFailure, ProbeResult, ProbeSkip
from nbpipe.probing import kubeflow
from nbpipe.probing.prober import _free_port

# Ready = the first 200 on <prefix>/api/kernels, at the default cpu limit (0.6).
# Measured here (podman 4.3, 2 cores shared with other builds, load ~10): until then
# jupyter used 0.86 cpu-s and jupyter-scipy 0.94 (1.4 and 1.6 s of wall time at 0.6 on an
# idle node; 1.9 and 2.1 before rfc3987-syntax left the images), and 4.5-22 s of wall time
# on this busy machine. Cpu-seconds do not depend on the machine's load, so they carry
# the tight bound: 1.5 cpu-s is a 2.5 s start at cpu 0.6. The wall-time bound only
# catches sleeps and hangs.
READY_CPU_BOUND = 1.5
READY_WALL_BOUND = 45.0
USER_EDIT = "# edited by the user: must survive a restart\n"


def _fs_group_change(path: Path, gid: int | None) -> None:
    """What kubelet does to a volume at every mount of a pod with fsGroup (policy Always):
    group -> fsGroup, group rw (+x where the owner has it), setgid on directories."""
    if gid is None or os.geteuid() != 0:
        return
    for p in [path, *path.rglob("*")]:
        if p.is_symlink():
            continue
        st = p.stat()
        os.chown(p, st.st_uid if p != path else 0, gid)
        mode = st.st_mode & 0o7777 | 0o060 | (0o010 if st.st_mode & 0o100 else 0)
        os.chmod(p, mode | (0o2000 if p.is_dir() else 0))


def _fresh_volume(path: Path, gid: int | None) -> None:
    """A fresh PVC: an empty root-owned directory (then fsGroup'd, as above)."""
    path.mkdir()
    if os.geteuid() != 0:  # cannot chown: world-writable is the closest we get
        os.chmod(path, 0o777)
        return
    os.chmod(path, 0o755)
    _fs_group_change(path, gid)


def _mount_shm(path: Path, size: int | None) -> bool:
    """A tmpfs as large as the memory limit: what a medium Memory emptyDir is."""
    path.mkdir()
    if os.geteuid() != 0:
        return False
    opts = "mode=1777" + (f",size={size}" if size else "")
    return (
        subprocess.run(
            ["mount", "-t", "tmpfs", "-o", opts, "nbpipe-shm", str(path)], capture_output=True
        ).returncode
        == 0
    )


@dataclass(frozen=True)
class Pod:
    """One notebook pod on this machine: its names, the pod as Kubernetes has it, and the
    podman manifest, volume and port that stand in for it."""

    names: kubeflow.Names
    pod: dict
    manifest: Path
    home: Path
    port: int

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"


@contextmanager
def notebook_pod(
    engine: OciEngine,
    ref: str,
    flavor: str = "kubeflow",
    *,
    limits: bool = True,
    workdir: Path = Path("/var/tmp/nbpipe"),
) -> Iterator[Pod]:
    """The pod for ``ref`` written out, with a fresh volume and its /dev/shm, ready to
    play (engine.kube_play(pod.manifest)); removed, with its volume, on exit.
    ``limits=False``: without the resource limits (an unconstrained start)."""
    names = kubeflow.Names.random()
    pod = kubeflow.kubernetes_pod(names, ref, flavor)
    if not limits:
        pod["spec"]["containers"][0].pop("resources", None)
    workdir.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix="pod-", dir=workdir))
    home, shm, manifest = tmp / "home", tmp / "shm", tmp / "pod.yaml"
    mounted = False
    try:
        _fresh_volume(home, kubeflow.fs_group(pod))
        mounted = _mount_shm(shm, kubeflow.memory_limit(pod))
        port = _free_port()
        manifest.write_text(kubeflow.dump(kubeflow.for_podman(pod, home=home, shm=shm, port=port)))
        yield Pod(names, pod, manifest, home, port)
    finally:
        engine.kube_down(manifest)
        if mounted:
            subprocess.run(["umount", str(shm)], capture_output=True)
        shutil.rmtree(tmp, ignore_errors=True)


def probe_pod(
    engine: OciEngine,
    ref: str,
    *,
    flavor: str = "kubeflow",
    ready_cpu_bound: float = READY_CPU_BOUND,
    ready_wall_bound: float = READY_WALL_BOUND,
    ready_timeout: float = 90.0,
    grace: int = kubeflow.GRACE_SECONDS,
    workdir: Path = Path("/var/tmp/nbpipe"),
) -> tuple[list[ProbeResult], str]:
    """Every pod-mode probe against ``ref``; returns the results and the log tail."""
    labels = engine.inspect(ref).labels
    with notebook_pod(engine, ref, flavor, workdir=workdir) as played:
        return _probe(
            engine, played, labels, flavor, ready_cpu_bound, ready_wall_bound, ready_timeout, grace
        )


def _probe(
    engine: OciEngine,
    played: Pod,
    labels: dict[str, str],
    flavor: str,
    ready_cpu_bound: float,
    ready_wall_bound: float,
    ready_timeout: float,
    grace: int,
) -> tuple[list[ProbeResult], str]:
    names, pod, home, manifest = played.names, played.pod, played.home, played.manifest
    gid = kubeflow.fs_group(pod)
    container = names.container
    uid = pod["spec"]["securityContext"].get("runAsUser") if flavor == "openshift" else None
    facts = PodFacts(
        service_host=names.service_host,
        ready_cpu_bound=ready_cpu_bound,
        ready_wall_bound=ready_wall_bound,
        cpu_limit=kubeflow.cpu_limit(pod),
        started=time.monotonic(),
        uid=uid,
    )
    log = ""
    engine.kube_play(manifest)

    def exec_(argv: list[str], timeout: float = 60) -> tuple[int, str]:
        r = engine.exec(container, argv, timeout=timeout)
        return r.returncode, r.stdout + r.stderr

    target = Target(
        base_url=played.base_url,
        prefix=names.prefix + "/",
        labels=labels,
        exec=exec_,
        home=home,
        ready_timeout=ready_timeout,
        alive=lambda: engine.running(container),
    )
    ready, identity, culler, gateway = pod_checks(facts)
    checks = (
        (ready, identity, culler, gateway) if flavor == "openshift" else (ready, culler, gateway)
    )
    results = run_all(target, checks)
    edit = ""
    if flavor == "kubeflow":  # a user edits a dotfile in a terminal before the pod goes
        rc, out = exec_(["/bin/sh", "-c", f"printf '%s' '{USER_EDIT}' >> \"$HOME/.bashrc\""])
        edit = "" if rc == 0 else f"could not edit ~/.bashrc in the first pod: {out.strip()}"

    def sigterm_stop(t: Target) -> str:
        seconds = engine.stop(container, grace)
        code = engine.exit_code(container)
        log_tail = engine.logs(container)
        nonlocal log
        log = "\n".join(log_tail.splitlines()[-25:])
        if code not in (0, 143):
            raise ProbeFailure(
                f"exited {code} {seconds:.1f}s after SIGTERM (grace {grace}s): "
                "137 means it ignored SIGTERM and was killed; pid 1 must "
                "pass SIGTERM on and exit"
            )
        if seconds > grace / 3:
            raise ProbeFailure(
                f"exited {code} but only {seconds:.1f}s after SIGTERM; want "
                f"well within the {grace}s grace (at most {grace / 3:.0f}s)"
            )
        return f"exit {code} {seconds:.1f}s after SIGTERM (grace {grace}s)"

    def replay_same_volume(t: Target) -> str:
        if t.server != "jupyter":
            raise ProbeSkip("no Jupyter server: no notebook was saved to find again")
        if edit:
            raise ProbeFailure(edit)
        saved = home_text(home, NOTEBOOK)
        if saved is None:
            raise ProbeFailure(
                f"{NOTEBOOK} was not in the volume after the first pod (the gateway probe saves it)"
            )
        engine.kube_down(manifest)  # the pod is deleted, the claim stays
        _fs_group_change(home, gid)
        started = time.monotonic()
        engine.kube_play(manifest)
        seconds, last = wait_ready(culler_client(t, facts), kernels_path(t), ready_timeout)
        if isinstance(last, str) or last.status != 200:
            raise ProbeFailure(
                f"played again on the same volume, {kernels_path(t)} gave no "
                f"200 within {ready_timeout:.0f}s"
            )
        now = home_text(home, NOTEBOOK)
        if now != saved or json.loads(now)["cells"][0]["source"] == "":
            raise ProbeFailure(
                f"{NOTEBOOK} changed or vanished when the pod was played again on the same volume"
            )
        if USER_EDIT not in (home_text(home, ".bashrc") or ""):
            raise ProbeFailure(
                "the user's edit of ~/.bashrc was lost when the pod was played "
                "again: start-up must never overwrite files in the volume"
            )
        return (
            f"ready again in {time.monotonic() - started:.2f}s; {NOTEBOOK} and the "
            "edited ~/.bashrc intact"
        )

    results.append(run_one(target, sigterm_stop))
    if flavor == "kubeflow":
        results.append(run_one(target, replay_same_volume))
    if not log:
        log = "\n".join(engine.logs(container).splitlines()[-25:])
    return results, log
