"""Accelerator smoke tests: a matrix product on the GPU (cuda) or HPU (gaudi).

Runnable on its own with the Python that has the framework:
    python3 -m nbpipe.probes.smoke cuda
Prints one line and exits 0 on success, 1 on a wrong result, 77 when the accelerator or
framework is absent (the runner should then report the test SKIPPED, never passed).
"""

from __future__ import annotations

import os
import shutil
import sys
from collections.abc import Iterable

SKIP = 77

CUDA = r"""
import sys, time
try:
    import torch
except ImportError:
    torch = None
if torch is not None:
    if not torch.cuda.is_available():
        print("torch sees no CUDA device"); sys.exit(77)
    a = torch.randn(2048, 2048, device="cuda"); b = torch.randn(2048, 2048, device="cuda")
    c = a @ b; torch.cuda.synchronize()
    ref = (a.double().cpu() @ b.double().cpu())
    err = (c.double().cpu() - ref).abs().max().item() / ref.abs().max().item()
    t = time.perf_counter()
    for _ in range(10): a @ b
    torch.cuda.synchronize()
    tflops = 10 * 2 * 2048**3 / (time.perf_counter() - t) / 1e12
    print(f"cuda ok: {torch.cuda.get_device_name(0)}, torch {torch.__version__}, "
          f"rel err {err:.1e}, {tflops:.1f} TFLOP/s fp32")
    sys.exit(0 if err < 1e-2 else 1)
import tensorflow as tf
gpus = tf.config.list_physical_devices("GPU")
if not gpus:
    print("tensorflow sees no GPU"); sys.exit(77)
with tf.device("/GPU:0"):
    a = tf.random.normal((2048, 2048)); b = tf.random.normal((2048, 2048)); c = a @ b
err = float(tf.reduce_max(tf.abs(tf.cast(c, tf.float64) - tf.cast(a, tf.float64) @ tf.cast(b, tf.float64))))
print(f"cuda ok: tensorflow {tf.__version__} on {gpus[0].name}, abs err {err:.1e}")
sys.exit(0 if err < 1.0 else 1)
"""  # noqa: E501 (the probe script as it runs)

GAUDI = r"""
import sys
try:
    import torch, habana_frameworks.torch.core as htcore
except ImportError as e:
    print(f"no Gaudi software: {e}"); sys.exit(77)
import habana_frameworks.torch.hpu as hpu
if not hpu.is_available():
    print("no HPU device"); sys.exit(77)
a = torch.randn(1024, 1024).to("hpu"); b = torch.randn(1024, 1024).to("hpu")
c = (a @ b).cpu()
err = (c - a.cpu() @ b.cpu()).abs().max().item()
print(f"gaudi ok: {hpu.get_device_name()}, abs err {err:.1e}")
sys.exit(0 if err < 1e-1 else 1)
"""

SCRIPTS = {"cuda": CUDA, "gaudi": GAUDI}

# how a user gives this runner a tag, for runner_tags() below (skip_reason fills in {tag})
ADD_TAG = "set NBPIPE_RUNNER_TAGS={tag}"


def runner_tags() -> set[str]:
    """The tags this runner carries: $NBPIPE_RUNNER_TAGS, else what the host shows."""
    declared = os.environ.get("NBPIPE_RUNNER_TAGS")
    if declared is not None:
        return {t.strip() for t in declared.split(",") if t.strip()}
    tags = set()
    if shutil.which("nvidia-smi") or os.path.exists("/dev/nvidiactl"):
        tags.add("cuda")
    if shutil.which("hl-smi") or os.path.exists("/dev/accel/accel0"):
        tags.add("gaudi")
    return tags


def skip_reason(
    tag: str,
    needed: Iterable[str],
    runner: Iterable[str],
    *,
    devices: Iterable[str],
    add_tag: str,
    no_device: str,
) -> str | None:
    """Why the ``tag`` smoke test does not run here, or None when it runs.

    ``needed``: the tags the image's runner-tags label names; ``runner``: the tags this
    runner carries; ``devices``: the tags whose device the engine can pass into a
    container; ``add_tag``: how a user gives a runner a tag (``{tag}`` is filled in);
    ``no_device``: why, when the engine passes no such device (``{tag}`` filled in).
    """
    if tag not in set(needed):
        return f"the image needs no {tag} runner"
    if tag not in set(runner):
        how = add_tag.format(tag=tag)
        return f"this runner has no '{tag}' tag ({how} on a runner with that accelerator)"
    if tag not in set(devices):
        return no_device.format(tag=tag)
    return None


def plan(
    needed: Iterable[str],
    runner: Iterable[str],
    *,
    devices: Iterable[str],
    add_tag: str,
    no_device: str,
) -> dict[str, str | None]:
    """For each tag the image needs, sorted: None to run its smoke test, else why it is
    skipped (see skip_reason)."""
    needed, runner, devices = set(needed), set(runner), set(devices)
    return {
        tag: skip_reason(tag, needed, runner, devices=devices, add_tag=add_tag, no_device=no_device)
        for tag in sorted(needed)
    }


def main(argv: list[str]) -> int:
    if len(argv) != 1 or argv[0] not in SCRIPTS:
        print(f"usage: python3 -m nbpipe.probes.smoke {{{'|'.join(SCRIPTS)}}}")
        return 2
    code = compile(SCRIPTS[argv[0]], f"<smoke-{argv[0]}>", "exec")
    try:
        exec(code, {"__name__": "__smoke__"})
    except SystemExit as e:
        return int(e.code or 0)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
