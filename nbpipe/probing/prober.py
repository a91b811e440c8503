"""Start a built image the way Kubernetes would, and run the contract probes against it.

An EMPTY bind-mounted home owned as an fsGroup leaves it (root:100, setgid, group
writable; a named volume would first copy the image's files in, so it would not test
this), a random NB_PREFIX, two cont-init.d scripts of our own, and one file that was in
the volume before start and must survive it.
"""

from __future__ import annotations

import os
import secrets
import shutil
import socket
import tempfile
import time
from pathlib import Path

from nbpipe.engines.oci import OciEngine
from nbpipe.probes.checks import INIT_MARKER, PROBE_INIT_SCRIPTS, Target, run_all
from nbpipe.probes.result import ProbeResult
from nbpipe.probes.smoke import SCRIPTS, runner_tags
from nbpipe.recipe import contract

SENTINEL = (".bashrc", "# this file was in the volume before start: nbpipe probe sentinel\n")
GPU_FLAGS = {
    "cuda": ["--device", "nvidia.com/gpu=all"],
    "gaudi": ["--device", "/dev/accel", "-e", "HABANA_VISIBLE_DEVICES=all"],
}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def probe(
    engine: OciEngine,
    ref: str,
    *,
    tags: set[str] | None = None,
    ready_timeout: float = 90.0,
    workdir: Path = Path("/var/tmp/nbpipe"),
) -> tuple[list[ProbeResult], str]:
    """Run every probe against ``ref``; returns the results and the container's log tail."""
    labels = engine.inspect(ref).labels
    workdir.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix="probe-", dir=workdir))
    home = tmp / "home"
    home.mkdir()
    uid_ok = os.geteuid() == 0
    if uid_ok:  # what a fresh PVC with fsGroup: 100 looks like
        os.chown(home, 0, contract.USERS_GID)
    os.chmod(home, 0o2775 if uid_ok else 0o777)
    (home / SENTINEL[0]).write_text(SENTINEL[1])
    if uid_ok:
        os.chown(home / SENTINEL[0], contract.NB_UID, contract.USERS_GID)
    mounts = [f"{home}:{contract.HOME}"]
    for name in PROBE_INIT_SCRIPTS:
        script = tmp / name
        script.write_text(f'#!/bin/sh\necho {name} >> "$HOME/{INIT_MARKER}"\n')
        script.chmod(0o755)
        mounts.append(f"{script}:{contract.CONT_INIT_DIR}/{name}:ro")
    prefix = f"/notebook/nbpipe-probe/{secrets.token_hex(4)}"
    port = _free_port()
    name = f"nbpipe-probe-{secrets.token_hex(4)}"
    started = time.monotonic()
    container = engine.run_detached(
        ref,
        env={"NB_PREFIX": prefix},
        mounts=mounts,
        port=port,
        container_port=contract.PORT,
        name=name,
    )
    try:

        def exec_(argv: list[str], timeout: float = 60) -> tuple[int, str]:
            r = engine.exec(container, argv, timeout=timeout)
            return r.returncode, r.stdout + r.stderr

        def smoke(tag: str) -> tuple[int, str]:
            r = engine.run_once(ref, ["python3", "-c", SCRIPTS[tag]], extra=GPU_FLAGS[tag])
            return r.returncode, r.stdout + r.stderr

        target = Target(
            base_url=f"http://127.0.0.1:{port}",
            prefix=prefix + "/",
            labels=labels,
            exec=exec_,
            home=home,
            sentinel=SENTINEL,
            probe_init=True,
            runner_tags=runner_tags() if tags is None else tags,
            smoke=smoke,
            ready_timeout=ready_timeout,
            alive=lambda: engine.running(container),
        )
        target.startup_seconds = time.monotonic() - started  # time spent in `run` itself
        results = run_all(target)
        log = engine.logs(container)
        return results, "\n".join(log.splitlines()[-25:])
    finally:
        engine.remove_container(container)
        shutil.rmtree(tmp, ignore_errors=True)
