"""The contract checks, one function each, run against a live container.

Every check gets a Target (how to reach the container: HTTP from outside, an exec
inside, the host side of its empty home volume) and either returns a short "what was
seen" message, or raises ProbeFailure with what is wrong, or ProbeSkip with why it does
not apply. Order matters: the service-restart check runs last, it kills the server.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from nbpipe.probes import kernel, run_notebook
from nbpipe.probes.csp import refusal as frame_ancestors_refusal
from nbpipe.probes.http import Client, wait_ready
from nbpipe.probes.result import ProbeFailure, ProbeResult, ProbeSkip, Status
from nbpipe.probes.smoke import ADD_TAG, SCRIPTS, SKIP, skip_reason
from nbpipe.recipe import contract

# runs argv in the container: (exit code, output); takes timeout= (seconds) when given
Exec = Callable[..., "tuple[int, str]"]

PROBE_INIT_SCRIPTS = ("zz-nbpipe-probe-1", "zz-nbpipe-probe-2")
INIT_MARKER = ".nbpipe-probe-init"


@dataclass
class Target:
    base_url: str  # http://127.0.0.1:PORT
    prefix: str  # NB_PREFIX with a trailing slash
    labels: dict[str, str]
    exec: Exec | None  # runs argv in the container as its default user
    home: Path | None = None  # host side of the empty volume mounted on /home/jovyan
    sentinel: tuple[str, str] | None = None  # a file put in the volume before start
    probe_init: bool = False  # whether PROBE_INIT_SCRIPTS were mounted into cont-init.d
    runner_tags: set[str] = field(default_factory=set)
    smoke: Callable[[str], "tuple[int, str]"] | None = None  # run a smoke script on the accelerator
    ready_timeout: float = 90.0
    alive: Callable[[], bool] = lambda: True  # is the container still running?
    startup_seconds: float | None = None
    client: Client = field(init=False)

    def __post_init__(self) -> None:
        self.client = Client(self.base_url)

    @property
    def server(self) -> str:
        return self.labels.get(contract.LABEL_SERVER, "")

    @property
    def service(self) -> str:
        return self.labels.get(contract.LABEL_SERVICE, "")

    def run(self, argv: list[str], timeout: float | None = None) -> "tuple[int, str]":
        if self.exec is None:
            raise ProbeSkip("this probe has no way to run commands in the container")
        return self.exec(argv) if timeout is None else self.exec(argv, timeout=timeout)

    def sh(self, script: str) -> str:
        rc, out = self.run(["/bin/sh", "-c", script])
        if rc != 0:
            raise ProbeFailure(f"`{script}` exited {rc} in the container: {out.strip()[-300:]}")
        return out

    def ready_path(self) -> str:
        return self.prefix if self.server == "jupyter" else "/"


def _need_server(t: Target) -> None:
    if not t.server:
        raise ProbeSkip("this image runs no server (no io.nbpipe.server label)")


def _need_jupyter(t: Target) -> None:
    _need_server(t)
    if t.server != "jupyter":
        raise ProbeSkip(f"{t.server} is not a Jupyter server")


# -- HTTP, from outside the container ---------------------------------------------------
def http_ready(t: Target) -> str:
    _need_server(t)
    seconds, last = wait_ready(t.client, t.ready_path(), t.ready_timeout)
    if isinstance(last, str) or last.status != 200:
        got = last if isinstance(last, str) else f"HTTP {last.status}"
        raise ProbeFailure(
            f"GET {t.ready_path()} gave no 200 within {t.ready_timeout:.0f}s "
            f"(last: {got}); is the server listening on 0.0.0.0:{contract.PORT}?"
        )
    t.startup_seconds = (t.startup_seconds or 0) + seconds
    return f"200 on {t.ready_path()} after {t.startup_seconds:.2f}s from start"


def served_under_prefix(t: Target) -> str:
    _need_jupyter(t)
    inside = t.client.get(t.prefix + "lab")
    if inside.status != 200 or b"<html" not in inside.body.lower():
        raise ProbeFailure(
            f"GET {t.prefix}lab answered {inside.status}, not the JupyterLab "
            "page: the server must serve under $NB_PREFIX (ServerApp.base_url)"
        )
    outside = t.client.get("/lab")
    if outside.status == 200:
        raise ProbeFailure(
            "GET /lab (outside NB_PREFIX) answered 200: the server ignores "
            "NB_PREFIX; set ServerApp.base_url from it"
        )
    return f"{t.prefix}lab 200, /lab {outside.status}"


def api_kernels(t: Target) -> str:
    _need_jupyter(t)
    r = t.client.get(t.prefix + "api/kernels")
    if r.status != 200:
        raise ProbeFailure(
            f"GET {t.prefix}api/kernels answered {r.status}: Kubeflow's culler "
            "polls it; it must answer 200 without a token"
        )
    try:
        kernels = r.json()
    except ValueError:
        raise ProbeFailure(f"{t.prefix}api/kernels did not answer JSON") from None
    if not isinstance(kernels, list):
        raise ProbeFailure(f"{t.prefix}api/kernels answered {type(kernels).__name__}, not a list")
    return f"200, {len(kernels)} kernel(s)"


def cors(t: Target) -> str:
    _need_server(t)
    if t.server != "jupyter":
        raise ProbeSkip(
            f"{t.server} has no setting for Access-Control-Allow-Origin; Kubeflow "
            "serves it same-origin through its gateway"
        )
    paths = [t.prefix + "api/kernels", t.prefix + "lab"]
    for path in paths:
        r = t.client.get(path, headers={"Origin": "https://dashboard.example.org"})
        got = r.headers.get("access-control-allow-origin")
        if got != "*":
            raise ProbeFailure(
                f"GET {path} has Access-Control-Allow-Origin {got!r}, want '*' "
                "(Jupyter: ServerApp.allow_origin = '*')"
            )
    return "Access-Control-Allow-Origin: * on " + ", ".join(paths)


def frameable(t: Target) -> str:
    _need_server(t)
    path = t.prefix + "lab" if t.server == "jupyter" else "/"
    r = t.client.get(path)
    xfo = r.headers.get("x-frame-options", "")
    if xfo.upper() in ("DENY", "SAMEORIGIN"):
        raise ProbeFailure(
            f"GET {path} sends X-Frame-Options: {xfo}: the Kubeflow dashboard cannot frame it"
        )
    csp = r.headers.get("content-security-policy", "")
    sources = frame_ancestors_refusal(csp)
    if sources is not None:
        raise ProbeFailure(
            f"GET {path} sends CSP {' '.join(['frame-ancestors', *sources])}: "
            "only those origins may frame it, and the dashboard may be on any "
            "host and port, over http or https; allow '*' (tornado_settings "
            "headers)"
        )
    return f"frameable (CSP: {csp or 'none'}; X-Frame-Options: {xfo or 'none'})"


# -- the process and its files, from inside --------------------------------------------
def _service_pid(t: Target) -> int:
    if not t.service:
        raise ProbeSkip("no supervised service declared (io.nbpipe.service label)")
    out = t.sh(f"s6-svstat -o up,pid /tmp/nbpipe-services/{t.service}").split()
    if len(out) != 2 or out[0] != "true" or out[1] == "-1":
        raise ProbeFailure(f"service {t.service} is not up under s6 (s6-svstat: {' '.join(out)})")
    return int(out[1])


def process_user(t: Target) -> str:
    if t.sh("id -u").strip() == "0":
        raise ProbeFailure(
            "the container runs as root (uid 0); the contract says uid "
            f"{contract.NB_UID} ({contract.NB_USER}): end the image as USER "
            f"{contract.NB_UID}"
        )
    if t.service:
        pid = _service_pid(t)
        status = t.sh(f"cat /proc/{pid}/status")
        fields = dict(line.split(":", 1) for line in status.splitlines() if ":" in line)
        uid = fields["Uid"].split()[0]
        gid = fields["Gid"].split()[0]
        groups = fields.get("Groups", "").split()
        what = f"service {t.service} (pid {pid})"
    else:
        uid, gid, groups = t.sh("id -u").strip(), t.sh("id -g").strip(), t.sh("id -G").split()
        what = "the container's user"
    if uid == "0":
        raise ProbeFailure(f"{what} runs as root; the contract says uid {contract.NB_UID}")
    if uid != str(contract.NB_UID) or gid != str(contract.NB_GID):
        raise ProbeFailure(
            f"{what} runs as uid {uid} gid {gid}; want uid {contract.NB_UID} "
            f"with primary gid {contract.NB_GID}"
        )
    if str(contract.USERS_GID) not in groups:
        raise ProbeFailure(
            f"{what} lacks supplementary group {contract.USERS_GID} (users): groups are {groups}"
        )
    name = t.sh(f"getent passwd {uid} | cut -d: -f1").strip()
    if name != contract.NB_USER:
        raise ProbeFailure(f"uid {uid} is named {name!r} in /etc/passwd, want {contract.NB_USER}")
    return f"{what}: {name} uid {uid} gid {gid} groups {','.join(groups)}"


def home_env(t: Target) -> str:
    if t.service:
        pid = _service_pid(t)
        env = dict(
            kv.split("=", 1)
            for kv in t.sh(f"tr '\\0' '\\n' < /proc/{pid}/environ").splitlines()
            if "=" in kv
        )
    else:
        env = dict(kv.split("=", 1) for kv in t.sh("env").splitlines() if "=" in kv)
    if env.get("HOME") != contract.HOME:
        raise ProbeFailure(f"HOME is {env.get('HOME')!r}, want {contract.HOME}")
    return f"HOME={env['HOME']}"


def skeleton_copied(t: Target) -> str:
    if t.home is None:
        raise ProbeSkip("no empty volume was mounted on the home directory")
    wanted = [
        line[2:]
        for line in t.sh(f"cd {contract.SKEL} && find . -mindepth 1 -type f").splitlines()
        if line.startswith("./")
    ]
    if not wanted:
        raise ProbeFailure(f"the skeleton {contract.SKEL} is empty: nothing would reach $HOME")
    missing = [rel for rel in wanted if not (t.home / rel).exists()]
    if missing:
        raise ProbeFailure(
            f"{len(missing)} skeleton file(s) not copied into the empty home: "
            f"{', '.join(missing[:5])}; /init must copy {contract.SKEL} into $HOME"
        )
    return f"{len(wanted)} skeleton file(s) copied into the empty volume"


def home_text(home: Path, rel: str) -> str | None:
    """A file the container wrote into the home volume, or None if there is none. The
    image is not ours to trust: a symlink it leaves there is never followed out of the
    volume (it could name a file of this machine), and the read is bounded."""
    from nbpipe.errors import NbpipeError
    from nbpipe.inputs.safe_io import inside, read_text

    if not (home / rel).exists() and not (home / rel).is_symlink():
        return None
    try:
        return read_text(inside(home, rel, f"~/{rel}"), f"~/{rel}")
    except NbpipeError as exc:
        raise ProbeFailure(f"{exc} (written by the container into its home volume)") from None


def existing_kept(t: Target) -> str:
    if t.home is None or t.sentinel is None:
        raise ProbeSkip("no pre-existing file was placed in the home volume")
    rel, content = t.sentinel
    now = home_text(t.home, rel)
    if now != content:
        raise ProbeFailure(
            f"~/{rel} existed in the volume before start and was overwritten "
            "(or removed): the skeleton copy must never replace user files"
        )
    return f"~/{rel} kept as it was"


def cont_init_order(t: Target) -> str:
    if not t.probe_init or t.home is None:
        raise ProbeSkip("no probe cont-init.d scripts were mounted")
    got = (home_text(t.home, INIT_MARKER) or "").split()
    want = list(PROBE_INIT_SCRIPTS)
    if got != want:
        raise ProbeFailure(
            f"cont-init.d scripts ran as {got or 'nothing'}, want {want} in that "
            "order: /init must run /etc/cont-init.d/* sorted, before services"
        )
    return "ran " + " then ".join(got)


def kernel_runs_code(t: Target) -> str:
    _need_jupyter(t)
    out = kernel.run_code(t.client, t.prefix, "import os\nprint(6 * 7, os.getuid(), os.getcwd())")
    answer, uid, cwd = (out.split() + ["", "", ""])[:3]
    if answer != "42":
        raise ProbeFailure(f"kernel printed {out!r}, want '42 ...'")
    if uid != str(contract.NB_UID):
        raise ProbeFailure(f"the kernel runs as uid {uid}, want {contract.NB_UID}")
    return f"python3 kernel ran 6*7 = 42 as uid {uid} in {cwd}"


def imports(t: Target) -> str:
    mods = contract.listed(t.labels, contract.LABEL_IMPORTS)
    if not mods:
        raise ProbeSkip("the image declares no key Python packages")
    code = (
        "import importlib, sys\nbad = []\nfor m in sys.argv[1:]:\n    try:\n"
        "        importlib.import_module(m)\n    except Exception as e:\n"
        "        bad.append(f'{m} ({type(e).__name__}: {e})')\n"
        "print('; '.join(bad))\nsys.exit(1 if bad else 0)"
    )
    rc, out = t.run(["python3", "-c", code, *mods])
    if rc != 0:
        raise ProbeFailure(f"import failed: {out.strip()[-500:]}")
    return f"{len(mods)} module(s) import: {', '.join(mods)}"


def distributions(t: Target) -> str:
    dists = contract.listed(t.labels, contract.LABEL_DISTRIBUTIONS)
    if not dists:
        raise ProbeSkip("the image declares no Python distributions to import")
    rc, out = t.run(["python3", "-c", DISTRIBUTIONS_CODE, *dists], timeout=300)
    if rc != 0:
        raise ProbeFailure(f"{out.strip()[-600:]}")
    return out.strip().splitlines()[-1] if out.strip() else f"{len(dists)} distribution(s)"


# In the image: each distribution's top-level modules (importlib.metadata), imported.
DISTRIBUTIONS_CODE = """\
import importlib, importlib.metadata as md, re, sys
norm = lambda n: re.sub(r"[-_.]+", "-", n).lower()
mods = {}
for mod, dists in md.packages_distributions().items():
    for d in dists:
        mods.setdefault(norm(d), set()).add(mod)
bad, good = [], []
for d in sys.argv[1:]:
    names = sorted(m for m in mods.get(norm(d), ()) if m.isidentifier() and m[0] != "_")
    if not names:
        try:
            md.distribution(d)
        except md.PackageNotFoundError:
            bad.append(f"{d} is not installed")
            continue
    for m in names:
        try:
            importlib.import_module(m)
        except Exception as e:
            bad.append(f"{m} (from {d}): {type(e).__name__}: {e}")
    good.append(f"{d} -> {', '.join(names) or '(no modules)'}")
if bad:
    print("; ".join(bad))
    sys.exit(1)
print(f"{len(good)} distribution(s) import: " + "; ".join(good))
"""


def notebooks(t: Target) -> str:
    paths = json.loads(t.labels.get(contract.LABEL_NOTEBOOKS, "[]"))
    if not paths:
        raise ProbeSkip("the image declares no notebooks to run")
    timeout = float(t.labels.get(contract.LABEL_NOTEBOOK_TIMEOUT, contract.NOTEBOOK_TIMEOUT))
    code = Path(run_notebook.__file__).read_text()
    try:  # run with the server's environment, as its own kernels do
        server = [str(_service_pid(t))]
    except (ProbeSkip, ProbeFailure):  # no server (or it is down: that is reported elsewhere)
        server = []
    failed, ran = [], []
    for path in paths:
        try:
            rc, out = t.run(
                ["python3", "-c", code, path, str(timeout), *server], timeout=timeout + 60
            )
        except Exception as exc:  # the exec itself timed out or broke
            failed.append(f"{path}: {exc}")
            continue
        result = next(
            (
                json.loads(line[len(run_notebook.MARK) :])
                for line in reversed(out.splitlines())
                if line.startswith(run_notebook.MARK)
            ),
            None,
        )
        if result is None:
            failed.append(f"{path}: exited {rc} without a result: {out.strip()[-200:]}")
        elif rc != 0:
            where = f"cell {result['cell']}: " if result.get("cell") else ""
            failed.append(f"{path}: {where}{result.get('error', '')}")
        else:
            ran.append(f"{path} ({result['cells']} cells, {result['seconds']}s)")
    if failed:
        raise ProbeFailure(
            f"{len(failed)} of {len(paths)} notebook(s) failed: " + "; ".join(failed)
        )
    return f"{len(ran)} notebook(s) ran top to bottom: " + ", ".join(ran)


def python_version(t: Target) -> str:
    want = t.labels.get(contract.LABEL_PYTHON, "")
    if not want:
        raise ProbeSkip("the image declares no Python version (io.nbpipe.python label)")
    got = t.sh("python3 -c 'import sys; print(\"%d.%d\" % sys.version_info[:2])'").strip()
    if got != want:
        raise ProbeFailure(
            f"python3 is {got}, but the image declares {contract.LABEL_PYTHON}="
            f"{want}: fix the label (runtime.txt checks rely on it)"
        )
    return f"python3 is {got}, as declared"


def r_libraries(t: Target) -> str:
    libs = contract.listed(t.labels, contract.LABEL_R_LIBRARIES)
    if not libs:
        raise ProbeSkip("the image declares no R packages")
    expr = "; ".join(f"suppressPackageStartupMessages(library({lib}))" for lib in libs)
    rc, out = t.run(["Rscript", "-e", expr])
    if rc != 0:
        raise ProbeFailure(f"R library load failed: {out.strip()[-400:]}")
    return f"{len(libs)} R package(s) load: {', '.join(libs)}"


def commands(t: Target) -> str:
    cmds = json.loads(t.labels.get(contract.LABEL_COMMANDS, "[]"))
    if not cmds:
        raise ProbeSkip("the image declares no probe commands")
    for cmd in cmds:
        rc, out = t.run(["/bin/sh", "-c", cmd])
        if rc != 0:
            raise ProbeFailure(f"`{cmd}` exited {rc}: {out.strip()[-300:]}")
    return f"{len(cmds)} command(s) ran: " + "; ".join(cmds)


def smoke(tag: str) -> Callable[[Target], str]:
    def check(t: Target) -> str:
        why = skip_reason(
            tag,
            contract.listed(t.labels, contract.LABEL_RUNNER_TAGS),
            t.runner_tags,
            devices=() if t.smoke is None else SCRIPTS,
            add_tag=ADD_TAG,
            no_device="the engine cannot give the container a {tag} device",
        )
        if why is not None:
            raise ProbeSkip(why)
        assert t.smoke is not None  # skip_reason sees no devices without it
        rc, out = t.smoke(tag)
        if rc == SKIP:
            raise ProbeSkip(out.strip() or f"no {tag} device visible in the container")
        if rc != 0:
            raise ProbeFailure(f"{tag} smoke test failed (exit {rc}): {out.strip()[-400:]}")
        return out.strip().splitlines()[-1]

    check.__name__ = f"smoke_{tag}"
    return check


def service_restarts(t: Target) -> str:
    old = _service_pid(t)
    t.sh(f"kill -9 {old}")
    deadline = time.monotonic() + 30
    new = None
    while time.monotonic() < deadline:
        rc, out = t.run(["s6-svstat", "-o", "up,pid", f"/tmp/nbpipe-services/{t.service}"])
        fields = out.split()
        if (
            rc == 0
            and len(fields) == 2
            and fields[0] == "true"
            and fields[1] not in ("-1", str(old))
        ):
            new = int(fields[1])
            break
        time.sleep(0.2)
    if new is None:
        raise ProbeFailure(
            f"after kill -9 of {t.service} (pid {old}) s6 did not start it again within 30s"
        )
    if t.server:
        seconds, last = wait_ready(t.client, t.ready_path(), t.ready_timeout)
        if isinstance(last, str) or last.status != 200:
            raise ProbeFailure(
                f"{t.service} restarted (pid {new}) but {t.ready_path()} did not answer 200 again"
            )
        return f"killed pid {old}; s6 restarted it as pid {new}, serving again in {seconds:.1f}s"
    return f"killed pid {old}; s6 restarted it as pid {new}"


CHECKS: tuple[Callable[[Target], str], ...] = (
    http_ready,
    served_under_prefix,
    api_kernels,
    cors,
    frameable,
    process_user,
    home_env,
    skeleton_copied,
    existing_kept,
    cont_init_order,
    kernel_runs_code,
    python_version,
    imports,
    distributions,
    r_libraries,
    commands,
    notebooks,
    smoke("cuda"),
    smoke("gaudi"),
    service_restarts,
)


def run_one(t: Target, check: Callable[[Target], str]) -> ProbeResult:
    """One check, timed; whatever it raises becomes a clear FAILED (or SKIPPED) result."""
    name = check.__name__.replace("_", "-")
    start = time.monotonic()
    try:
        message = check(t)
        status = Status.PASSED
    except ProbeSkip as e:
        status, message = Status.SKIPPED, str(e)
    except ProbeFailure as e:
        status, message = Status.FAILED, str(e)
    except Exception as e:  # a probe bug or a dead container: still a clear failure
        status, message = Status.FAILED, f"{type(e).__name__}: {e}"
    return ProbeResult(name, status, message, round(time.monotonic() - start, 3))


def run_all(t: Target, checks=CHECKS) -> list[ProbeResult]:
    results: list[ProbeResult] = []
    for check in checks:
        if not t.alive():
            results.append(
                ProbeResult(
                    check.__name__.replace("_", "-"),
                    Status.FAILED,
                    "the container is no longer running (it exited; see its log below)",
                )
            )
            continue
        results.append(run_one(t, check))
    return results
