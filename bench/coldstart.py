"""Time to the first notebook on a node that has never pulled the image (a script, not a
test; it prints the cold-node table for the README):

    .venv/bin/python bench/coldstart.py [--ready-runs 3]

For jupyter, jupyter-scipy and the naive hand-written image of jupyter-scipy's packages
(bench/handwritten.Dockerfile, built in the same run): push to a local registry with gzip
and with zstd layers (compressed sizes from the manifests), then on a "cold node" (a
podman store of its own, empty: nothing shared with this machine's store) pull, and play
Kubeflow's pod (nbpipe.probing.kubeflow, its default limits: cpu 0.6) until the culler's GET of
<prefix>/api/kernels answers 200; also without limits. Layer sharing: jupyter-scipy is
pushed after jupyter, and the registry's own blob store says what that second push added.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field, replace
from pathlib import Path

ROOT_DIR = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT_DIR))
sys.path.insert(0, str(ROOT_DIR / "bench"))

from fresh import registry  # noqa: E402

from nbpipe.family import family  # noqa: E402
from nbpipe.probes.checks import Target  # noqa: E402
from nbpipe.probes.http import Client, wait_ready  # noqa: E402
from nbpipe.probes.kubeflow import cpu_seconds  # noqa: E402
from nbpipe.probing.podprober import notebook_pod  # noqa: E402
from nbpipe.recipe.options import BuildOptions  # noqa: E402
from nbpipe.run.machine import detect  # noqa: E402
from nbpipe.run.pipeline import build  # noqa: E402
from nbpipe.run.publish import COMPRESSIONS  # noqa: E402

NAIVE = "localhost/bench/handwritten:latest"
CA = Path("/etc/ssl/certs/ca-certificates.crt")


def row(*cells: str) -> None:
    print("| " + " | ".join(cells) + " |", flush=True)


def blobs(data: Path) -> set[str]:
    """The blobs the registry stores (a cross-repository mount adds none)."""
    return {p.name for p in (data / "docker/registry/v2/blobs/sha256").glob("*/*")}


def manifest(ref: str) -> dict:
    r = subprocess.run(
        ["skopeo", "inspect", "--raw", "--tls-verify=false", f"docker://{ref}"],
        capture_output=True,
        text=True,
        check=True,
    )
    return json.loads(r.stdout)


def build_naive(engine, root_ref: str) -> float:
    """The hand-written Dockerfile, as a person would build it (layer cache allowed)."""
    start = time.monotonic()
    cmd = [
        engine.binary,
        "build",
        "--network",
        "host",
        "-q",
        "--layers",
        "-f",
        str(ROOT_DIR / "bench/handwritten.Dockerfile"),
        "--build-arg",
        f"ROOT={root_ref}",
        "-t",
        NAIVE,
    ]
    if CA.exists():
        cmd += ["--secret", f"id=ca,src={CA}"]
    subprocess.run([*cmd, str(ROOT_DIR)], check=True, stdout=subprocess.DEVNULL)
    return time.monotonic() - start


def ready_seconds(node, ref: str, limits: bool) -> tuple[float, float | None]:
    """From `kube play` to the culler's first 200, on the cold node, image present; and
    the cpu-seconds the container used until then (what an idle node's start costs)."""
    with notebook_pod(node, ref, limits=limits) as pod:
        start = time.monotonic()
        node.kube_play(pod.manifest)
        client = Client(pod.base_url, headers={"Host": pod.names.service_host})
        _, last = wait_ready(client, pod.names.prefix + "/api/kernels", 180)
        took = time.monotonic() - start
        if isinstance(last, str) or last.status != 200:
            raise SystemExit(f"{ref}: no 200 within 180 s ({last})")

        def exec_(argv: list[str]) -> tuple[int, str]:
            r = node.exec(pod.names.container, argv)
            return r.returncode, r.stdout + r.stderr

        return took, cpu_seconds(Target(pod.base_url, "/", {}, exec_))


@dataclass
class ColdNode:
    """What `cold_node` measured, by (name, compression) and (name, limits)."""

    sizes: dict[tuple[str, str], int] = field(default_factory=dict)  # compressed layers
    pulls: dict[tuple[str, str], float] = field(default_factory=dict)
    ready: dict[tuple[str, bool], list[tuple[float, float | None]]] = field(default_factory=dict)
    sharing: str = ""

    def first_notebook(self, name: str, comp: str) -> float:
        """Pull plus the median ready time at Kubeflow's limits: the cold node's first
        notebook."""
        return self.pulls[name, comp] + statistics.median(w for w, _ in self.ready[name, True])


def cold_node(
    engine, refs: dict[str, str], compressions, ready_runs: int, work: Path, both: bool = True
) -> ColdNode:
    """Each of ``refs`` (name -> ref in ``engine``'s store) pushed to a loopback registry
    per compression, then pulled into a podman store that has pulled nothing else, and
    played as Kubeflow's pod ``ready_runs`` times (``both``: also without limits)."""
    # one registry per compression: podman 4.3 has no --force-compression, and reuses a
    # layer the registry already holds in the other compression
    node = replace(engine, graph_root=str(work / "node"))  # a store that has pulled nothing
    out = ColdNode()
    pulled: list[str] = []
    with contextlib.ExitStack() as stack:
        regs = {c: stack.enter_context(registry(work / c)) for c in compressions}
        try:
            for comp in compressions:
                for name, ref in refs.items():
                    _one(engine, node, out, work, regs[comp], comp, name, ref, pulled)
                    if comp == compressions[0]:  # ready does not depend on the layers' travel
                        if not out.ready:  # the node's first pod also makes podman's pause
                            ready_seconds(node, pulled[-1], True)  # image: not counted
                        for limits in (True, False) if both else (True,):
                            out.ready[name, limits] = [
                                ready_seconds(node, pulled[-1], limits) for _ in range(ready_runs)
                            ]
                    print(
                        f"  {name} {comp}: {out.sizes[name, comp] / 1e6:,.0f} MB, pull "
                        f"{out.pulls[name, comp]:.1f} s",
                        flush=True,
                    )
        finally:
            node.drop_store()
    return out


def _one(engine, node, out: ColdNode, work, reg, comp, name, ref, pulled) -> None:
    """Push ``ref`` to ``reg`` with ``comp`` layers, then pull it into the emptied node."""
    repo = f"{reg}/{name.split()[0]}:bench"
    before = blobs(work / comp / "data")
    engine.push(ref, f"docker://{repo}", ["--tls-verify=false", "--compression-format", comp])
    added = blobs(work / comp / "data") - before
    layers = manifest(repo)["layers"]
    out.sizes[name, comp] = sum(x["size"] for x in layers)
    if name == "jupyter-scipy" and comp == "gzip" and "jupyter" in {n for n, _ in out.sizes}:
        parent = {x["digest"] for x in manifest(f"{reg}/jupyter:bench")["layers"]}
        own = [x for x in layers if x["digest"] not in parent]
        sent = [x for x in layers if x["digest"].split(":")[1] in added]
        out.sharing = (
            f"jupyter-scipy pushed after jupyter: {len(layers)} layers, "
            f"{len(layers) - len(own)} of them jupyter's; the registry "
            f"received {len(sent)} layer(s), "
            f"{sum(x['size'] for x in sent) / 1e6:,.0f} MB "
            f"(its own: {len(own)}, {sum(x['size'] for x in own) / 1e6:,.0f} MB)"
        )
    for old in pulled:  # the node holds nothing of ours before each pull
        node.remove(old)
    pulled.clear()
    out.pulls[name, comp] = node.pull(repo, ["--tls-verify=false"])
    pulled.append(repo)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--ready-runs", type=int, default=3)
    ap.add_argument(
        "--quick",
        action="store_true",
        help="jupyter alone (a check of the script, no table for the README)",
    )
    args = ap.parse_args()
    m = detect(family(), engine="podman")
    engine = m.engine
    assert engine is not None and m.local_root is not None, "needs podman and the local root"
    print(
        f"podman, {m.platform}, root {m.local_root.pinned(m.platform)}; "
        f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}"
    )
    top = "jupyter" if args.quick else "jupyter-scipy"
    res = {r.name: r for r in build(m, [top], BuildOptions.from_flags(), m.settings, probe=False)}
    refs = {"jupyter": res["jupyter"].ref}
    if not args.quick:
        naive_build = build_naive(engine, m.local_root.pinned(m.platform))
        refs.update({"jupyter-scipy": res["jupyter-scipy"].ref, "naive (hand-written)": NAIVE})
        print(f"naive image built in {naive_build:.0f} s (podman build, layer cache allowed)")
    print(f"built: {', '.join(f'{n} {r.status.value}' for n, r in res.items())}\n")

    work = Path(tempfile.mkdtemp(prefix="coldstart-", dir="/var/tmp"))
    try:
        cold = cold_node(engine, refs, COMPRESSIONS, args.ready_runs, work)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    sizes, pulls, ready = cold.sizes, cold.pulls, cold.ready

    print()
    row(
        "image",
        "uncompressed",
        "gzip",
        "zstd",
        "pull gzip",
        "pull zstd",
        f"ready at cpu 0.6 (median of {args.ready_runs}; cpu-s used)",
        "ready, no limits",
        "cold total (zstd pull + ready at 0.6)",
    )
    row(*["---"] * 9)
    for name, ref in refs.items():
        limited = [w for w, _ in ready[name, True]]
        free = [w for w, _ in ready[name, False]]
        cpu = [c for _, c in ready[name, True] if c is not None]
        row(
            name,
            f"{engine.inspect(ref).size / 1e6:,.0f} MB",
            f"{sizes[name, 'gzip'] / 1e6:,.0f} MB",
            f"{sizes[name, 'zstd'] / 1e6:,.0f} MB",
            f"{pulls[name, 'gzip']:.1f} s",
            f"{pulls[name, 'zstd']:.1f} s",
            f"{statistics.median(limited):.2f} s ({min(limited):.2f}-{max(limited):.2f}; "
            f"{statistics.median(cpu) if cpu else float('nan'):.2f} cpu-s)",
            f"{statistics.median(free):.2f} s ({min(free):.2f}-{max(free):.2f})",
            f"{pulls[name, 'zstd'] + statistics.median(limited):.1f} s",
        )
    naive = "naive (hand-written)"
    if naive not in refs:
        return
    for comp in COMPRESSIONS:
        print(
            f"\njupyter-scipy / naive, {comp}: "
            f"{sizes['jupyter-scipy', comp] / sizes[naive, comp]:.2f}",
            end="",
        )
    print(f"\n{cold.sharing}")


if __name__ == "__main__":
    main()
