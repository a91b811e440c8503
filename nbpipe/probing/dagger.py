"""The contract probes through Dagger: the notebook container as a service, reached over
HTTP from a second container (as Kubeflow reaches it), then the probes run inside it for
processes and files. Used by the Dagger module (`test`, `test-container`, `ci`) and by
`nbpipe build` in a Dagger session: one way to probe on Dagger."""

from __future__ import annotations

import json
import secrets

import dagger
from dagger import dag

from nbpipe.engines import dagger as lowering
from nbpipe.probes.result import ProbeResult, Status
from nbpipe.probes.smoke import SCRIPTS, SKIP, plan
from nbpipe.recipe import contract
from nbpipe.recipe.image import Image
from nbpipe.recipe.steps import apt_install

PROBE_SOURCE = "/opt/nbpipe-src"
DEVICES = {"cuda"}  # experimentalWithAllGPUs is NVIDIA only; Dagger has no HPU
ADD_TAG = "pass --runner-tags {tag}"
NO_DEVICE = "Dagger passes no {tag} device into containers; run `nbpipe test` with Podman"


def results(stdout: str) -> list[ProbeResult]:
    """The results `python3 -m nbpipe.probes` printed as its JSON line ([] if none)."""
    for line in reversed(stdout.splitlines()):
        if line.startswith('{"results"'):
            return [
                ProbeResult(r["name"], Status(r["status"]), r["message"], r["seconds"])
                for r in json.loads(line)["results"]
            ]
    return []


def merged(outside: list[ProbeResult], inside: list[ProbeResult]) -> list[ProbeResult]:
    """One result per check: a failure anywhere wins, then a pass, then a skip."""
    rank = {Status.FAILED: 0, Status.PASSED: 1, Status.SKIPPED: 2}
    out: dict[str, ProbeResult] = {}
    for r in [*outside, *inside]:
        if r.name not in out or rank[r.status] < rank[out[r.name].status]:
            out[r.name] = r
    return list(out.values())


def _failed(found: list[ProbeResult]) -> bool:
    return any(r.status is Status.FAILED for r in found)


async def probe(
    container: dagger.Container,
    platform: str,
    labels: dict[str, str],
    runner_tags: str,
    source: dagger.Directory,
    base: Image,
) -> tuple[list[ProbeResult], str]:
    """Every probe against ``container``; ``source`` is nbpipe's own package folder (the
    probes run from it), ``base`` the image whose root the outside probe container uses.
    Returns the results and the report as text."""
    name = labels.get(contract.LABEL_NAME, "container")
    prefix = f"/notebook/nbpipe-probe/{secrets.token_hex(4)}"
    nb = container.with_env_variable("NB_PREFIX", prefix).with_mounted_directory(
        contract.HOME, dag.directory(), owner=f"{contract.NB_UID}:{contract.USERS_GID}"
    )
    smokes = plan(
        contract.listed(labels, contract.LABEL_RUNNER_TAGS),
        [t for t in runner_tags.split(",") if t],
        devices=DEVICES,
        add_tag=ADD_TAG,
        no_device=NO_DEVICE,
    )
    if None in smokes.values():  # a smoke test runs: give the container the GPUs
        nb = nb.experimental_with_all_gp_us()
    args = ["--prefix", prefix, "--labels", json.dumps(labels)]
    # an image that runs no server (base) never opens the port: as a service, Dagger would
    # wait for it without end, so it is probed from inside only
    serves = bool(labels.get(contract.LABEL_SERVER))
    outside = (
        lowering.root_container(base, platform)
        .with_exec(["sh", "-c", " && ".join(apt_install("python3"))])
        .with_directory(f"{PROBE_SOURCE}/nbpipe", source)
        .with_env_variable("PYTHONPATH", PROBE_SOURCE)
        .with_service_binding(
            "nb", nb.with_exposed_port(contract.PORT).as_service(use_entrypoint=True)
        )
        .with_exec(
            ["python3", "-m", "nbpipe.probes", "--url", "http://nb:8888", *args],
            expect=dagger.ReturnType.ANY,
        )
    )
    if serves:
        out_text = await outside.stdout()
        report = [f"== {name} ({platform}): from a probe container, over HTTP", out_text]
    else:
        out_text = ""
        report = [
            f"== {name} ({platform}): no server (no {contract.LABEL_SERVER} label): "
            "probed from inside only"
        ]
    inside = (
        nb.with_directory(f"{PROBE_SOURCE}/nbpipe", source)
        .with_env_variable("PYTHONPATH", PROBE_SOURCE)
        .with_env_variable("NBPIPE_RUNNER_TAGS", runner_tags)
        .with_exec(
            [
                "sh",
                "-c",
                "if ! command -v python3 >/dev/null; then echo "
                "'SKIPPED inside: the image has no python3 to run the probes'; "
                "exit 0; fi; /init >/tmp/nbpipe-init.log 2>&1 & exec python3 -m "
                'nbpipe.probes --url http://127.0.0.1:8888 --inside "$@"',
                "probe",
                *args,
            ],
            expect=dagger.ReturnType.ANY,
        )
    )
    in_text = await inside.stdout()
    report += [f"== {name} ({platform}): inside the container", in_text]
    outside_found, inside_found = results(out_text), results(in_text)
    found = merged(outside_found, inside_found)
    # a run that printed no results never counts as passed
    if serves and (not outside_found or (await outside.exit_code() and not _failed(found))):
        why = out_text.strip()[-300:] or "no output"
        found.append(ProbeResult("probes-outside", Status.FAILED, f"no results: {why}"))
    if in_text.startswith("SKIPPED inside"):
        found.append(ProbeResult("probes-inside", Status.SKIPPED, in_text.strip()))
    elif not inside_found or (await inside.exit_code() and not _failed(found)):
        why = in_text.strip()[-300:] or "no output"
        found.append(ProbeResult("probes-inside", Status.FAILED, f"no results: {why}"))
    for tag, skip in smokes.items():
        if skip is not None:
            found.append(ProbeResult(f"smoke-{tag}", Status.SKIPPED, skip))
        else:
            smoke = nb.with_exec(["python3", "-c", SCRIPTS[tag]], expect=dagger.ReturnType.ANY)
            text, rc = (await smoke.stdout()).strip(), await smoke.exit_code()
            if rc == SKIP:  # no device or framework: never counted as passed
                found.append(ProbeResult(f"smoke-{tag}", Status.SKIPPED, text or "no device"))
            else:
                status = Status.FAILED if rc else Status.PASSED
                found.append(ProbeResult(f"smoke-{tag}", status, text))
    for r in found:
        if r.name.startswith("smoke-"):
            mark = "SKIPPED " if r.status is Status.SKIPPED else ""
            report.append(f"{mark}{r.name}: {r.message}")
    return found, "\n".join(report)
