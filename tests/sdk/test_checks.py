"""The contract checks, offline: every check in probes/checks.py runs against a real HTTP
server on 127.0.0.1 and a fake exec (tests/fakes/notebook.py). A good server passes all of
them; a server broken for one rule FAILS exactly the check for that rule, and says which
rule in its message. Nothing else changes status."""

from __future__ import annotations

import json
import re
from dataclasses import replace
from pathlib import Path

import pytest

from nbpipe.recipe import contract
from nbpipe.probes import checks
from nbpipe.probes.checks import INIT_MARKER, PROBE_INIT_SCRIPTS, Target, run_all
from nbpipe.probes.result import ProbeResult, Status

from tests.fakes.notebook import Behaviour, FakeNotebook, labels

SENTINEL = (".bashrc", "# the user's own bashrc, there before start\n")
IMAGE_LABELS = {
    contract.LABEL_IMPORTS: "numpy,jupyterlab",
    contract.LABEL_R_LIBRARIES: "tidyverse",
    contract.LABEL_COMMANDS: json.dumps(["echo hi", "tool --version"]),
    contract.LABEL_RUNNER_TAGS: "cuda",
    contract.LABEL_PYTHON: "3.11",
    # installed where the tests run: the real mapping code finds their modules
    contract.LABEL_DISTRIBUTIONS: "PyYAML,typer",
    contract.LABEL_NOTEBOOKS: json.dumps(["work/analysis.ipynb", "intro.ipynb"]),
}
ALL_NAMES = [c.__name__.replace("_", "-") for c in checks.CHECKS]


class Clock:
    """time for the checks module: sleeping advances it, so a 30 s wait takes no time."""

    def __init__(self) -> None:
        self.now = 1000.0

    def monotonic(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture()
def start(tmp_path):
    started: list[FakeNotebook] = []

    def start(b: Behaviour = Behaviour(), *, smoke=lambda tag: (0, f"{tag} ok: fake device\n"),
              runner_tags=frozenset({"cuda"}), image_labels=IMAGE_LABELS,
              **target) -> tuple[Target, FakeNotebook]:
        work = tmp_path / f"c{len(started)}"
        home = work / "home"
        home.mkdir(parents=True)
        (home / SENTINEL[0]).write_text(SENTINEL[1])
        scripts = []
        for name in PROBE_INIT_SCRIPTS:
            script = work / name
            script.write_text(f'#!/bin/sh\necho {name} >> "$HOME/{INIT_MARKER}"\n')
            scripts.append(script)
        fake = FakeNotebook(b, home)
        url = fake.start(init_scripts=scripts)
        started.append(fake)
        t = Target(**{"base_url": url, "prefix": b.prefix + "/",
                      "labels": labels(b, **image_labels), "exec": fake.exec, "home": home,
                      "sentinel": SENTINEL, "probe_init": True, "runner_tags": set(runner_tags),
                      "smoke": smoke, "ready_timeout": 5.0, **target})
        return t, fake

    yield start
    for fake in started:
        fake.stop()


def statuses(results: list[ProbeResult]) -> dict[str, Status]:
    return {r.name: r.status for r in results}


GOOD = {name: Status.PASSED for name in ALL_NAMES} | {"smoke-gaudi": Status.SKIPPED}


def test_a_good_server_passes_every_check(start) -> None:
    t, fake = start()
    results = run_all(t)
    assert [r.name for r in results] == ALL_NAMES
    assert all(0 <= r.seconds < 60 for r in results), [r.seconds for r in results]
    assert statuses(results) == GOOD, [r for r in results if r.status is not GOOD[r.name]]
    msg = {r.name: r.message for r in results}
    assert msg["cors"] == (f"Access-Control-Allow-Origin: * on {t.prefix}api/kernels, "
                           f"{t.prefix}lab")
    assert msg["process-user"] == "service jupyterlab (pid 4242): jovyan uid 1000 gid 0 groups 0,100"
    assert msg["home-env"] == "HOME=/home/jovyan"
    assert msg["skeleton-copied"] == "2 skeleton file(s) copied into the empty volume"
    assert msg["existing-kept"] == "~/.bashrc kept as it was"
    assert msg["cont-init-order"] == "ran zz-nbpipe-probe-1 then zz-nbpipe-probe-2"
    assert msg["kernel-runs-code"] == "python3 kernel ran 6*7 = 42 as uid 1000 in /home/jovyan"
    assert msg["imports"] == "2 module(s) import: numpy, jupyterlab"
    assert msg["python-version"] == "python3 is 3.11, as declared"
    assert msg["r-libraries"] == "1 R package(s) load: tidyverse"
    assert msg["commands"] == "2 command(s) ran: echo hi; tool --version"
    assert msg["distributions"] == "2 distribution(s) import: PyYAML -> yaml; typer -> typer"
    assert msg["notebooks"] == ("2 notebook(s) ran top to bottom: work/analysis.ipynb "
                                "(4 cells, 0.5s), intro.ipynb (4 cells, 0.5s)")
    # each notebook ran with the server's environment (its pid), within its timeout
    assert fake.notebook_runs == [["work/analysis.ipynb", "600.0", "4242"],
                                  ["intro.ipynb", "600.0", "4242"]]
    assert msg["smoke-cuda"] == "cuda ok: fake device"
    assert msg["smoke-gaudi"] == "the image needs no gaudi runner"
    assert msg["served-under-prefix"] == f"{t.prefix}lab 200, /lab 404"
    assert msg["api-kernels"] == "200, 0 kernel(s)"
    assert msg["frameable"] == "frameable (CSP: frame-ancestors 'self' *; X-Frame-Options: none)"
    assert msg["service-restarts"].startswith("killed pid 4242; s6 restarted it as pid 4243, "
                                              "serving again in ")
    assert msg["http-ready"].startswith(f"200 on {t.prefix} after ")
    # the probe asked with an Origin, and the kernel it started was shut down again
    assert any(h.get("Origin") == "https://dashboard.example.org" for _, _, h in fake.requests)
    assert fake.kernels == {"k1": False}
    assert fake.killed == [4242]


# (what is broken, the checks that must fail, words their message must contain)
BROKEN = [
    ("cors-other-origin", dict(cors="https://x"), {"cors"},
     "Access-Control-Allow-Origin 'https://x', want '*'"),
    ("cors-missing", dict(cors=None), {"cors"}, "Access-Control-Allow-Origin None, want '*'"),
    ("cors-missing-on-the-page", dict(cors_on_lab=False), {"cors"},
     "lab has Access-Control-Allow-Origin None"),
    ("csp-self-only", dict(csp="default-src 'self'; frame-ancestors 'self'"), {"frameable"},
     "sends CSP frame-ancestors 'self': only those origins may frame it"),
    ("csp-wildcard-subdomain", dict(csp="frame-ancestors https://*.example.org"), {"frameable"},
     "sends CSP frame-ancestors https://*.example.org: only those origins may frame it"),
    ("csp-https-only", dict(csp="frame-ancestors https:"), {"frameable"},
     "sends CSP frame-ancestors https:: only those origins may frame it, and the dashboard "
     "may be on any host and port, over http or https"),
    ("csp-one-port", dict(csp="frame-ancestors 'self' https://kubeflow.example.org:8443"),
     {"frameable"}, "frame-ancestors 'self' https://kubeflow.example.org:8443: only those"),
    ("csp-none", dict(csp="frame-ancestors 'none'"), {"frameable"},
     "sends CSP frame-ancestors 'none': only those origins may frame it"),
    ("csp-second-policy", dict(csp="frame-ancestors *, frame-ancestors 'self'"), {"frameable"},
     "sends CSP frame-ancestors 'self': only those origins may frame it"),
    ("xfo-deny", dict(xfo="DENY"), {"frameable"}, "sends X-Frame-Options: DENY"),
    ("xfo-sameorigin", dict(xfo="sameorigin"), {"frameable"}, "sends X-Frame-Options: sameorigin"),
    ("root", dict(uid=0), {"process-user", "kernel-runs-code"}, "runs as root (uid 0)"),
    ("wrong-uid", dict(uid=1001), {"process-user", "kernel-runs-code"},
     "runs as uid 1001 gid 0; want uid 1000 with primary gid 0"),
    ("wrong-gid", dict(gid=100), {"process-user"}, "runs as uid 1000 gid 100; want uid 1000 "
     "with primary gid 0"),
    ("no-users-group", dict(groups=(0,)), {"process-user"},
     "lacks supplementary group 100 (users): groups are ['0']"),
    ("wrong-user-name", dict(user_name="nobody"), {"process-user"},
     "uid 1000 is named 'nobody' in /etc/passwd, want jovyan"),
    ("wrong-home", dict(home="/root"), {"home-env"}, "HOME is '/root', want /home/jovyan"),
    ("skeleton-not-copied", dict(copy_skeleton=False), {"skeleton-copied"},
     "1 skeleton file(s) not copied into the empty home: .jupyter/lab/user-settings/x.json"),
    ("skeleton-empty", dict(skeleton={}), {"skeleton-copied"},
     "the skeleton /etc/nbpipe/skel is empty"),
    ("existing-overwritten", dict(overwrite=True), {"existing-kept"},
     "~/.bashrc existed in the volume before start and was overwritten"),
    ("cont-init-reversed", dict(init_order="reversed"), {"cont-init-order"},
     "ran as ['zz-nbpipe-probe-2', 'zz-nbpipe-probe-1'], want ['zz-nbpipe-probe-1', "
     "'zz-nbpipe-probe-2'] in that order"),
    ("cont-init-not-run", dict(init_order="none"), {"cont-init-order"}, "ran as nothing"),
    ("service-not-restarted", dict(restarts=False), {"service-restarts"},
     "after kill -9 of jupyterlab (pid 4242) s6 did not start it again within 30s"),
    ("service-down", dict(service_up=False), {"process-user", "home-env", "service-restarts"},
     "service jupyterlab is not up under s6 (s6-svstat: false -1)"),
    ("prefix-ignored", dict(ignore_prefix=True), {"served-under-prefix"},
     "GET /lab (outside NB_PREFIX) answered 200: the server ignores NB_PREFIX"),
    ("kernels-forbidden", dict(kernels_status=403), {"api-kernels"},
     "api/kernels answered 403: Kubeflow's culler polls it"),
    ("kernels-not-json", dict(kernels_body=b"<html>"), {"api-kernels"},
     "api/kernels did not answer JSON"),
    ("kernels-not-a-list", dict(kernels_body=b"{}"), {"api-kernels"},
     "api/kernels answered dict, not a list"),
    ("kernel-wrong-answer", dict(kernel_output="41 1000 /home/jovyan\n"), {"kernel-runs-code"},
     "kernel printed '41 1000 /home/jovyan\\n', want '42 ...'"),
    ("missing-module", dict(modules=frozenset({"jupyterlab"})), {"imports"},
     "import failed: numpy (ModuleNotFoundError: No module named 'numpy')"),
    ("other-python", dict(python="3.12"), {"python-version"},
     "python3 is 3.12, but the image declares io.nbpipe.python=3.11"),
    ("missing-r-package", dict(r_libraries=frozenset()), {"r-libraries"},
     "R library load failed: Error: there is no package called 'tidyverse'"),
    ("failing-command", dict(failing_commands=frozenset({"tool --version"})), {"commands"},
     "`tool --version` exited 1: sh: tool --version: failed"),
    ("failing-notebook", dict(failing_notebooks={"intro.ipynb": (3, "ZeroDivisionError: x")}),
     {"notebooks"}, "1 of 2 notebook(s) failed: intro.ipynb: cell 3: ZeroDivisionError: x"),
]


@pytest.mark.parametrize("broken,fail,words", [b[1:] for b in BROKEN], ids=[b[0] for b in BROKEN])
def test_a_server_broken_for_one_rule_fails_that_check(start, monkeypatch, broken, fail,
                                                       words) -> None:
    monkeypatch.setattr(checks, "time", Clock())
    t, _ = start(replace(Behaviour(), **broken))
    results = run_all(t)
    got = statuses(results)
    assert {n for n, s in got.items() if s is Status.FAILED} == fail
    assert {n: s for n, s in got.items() if n not in fail} == \
        {n: s for n, s in GOOD.items() if n not in fail}
    first = [r for r in results if r.name in fail][0]
    assert words in first.message


@pytest.mark.parametrize("broken,words", [
    (dict(gid=100), "the container's user runs as uid 1000 gid 100"),
    (dict(groups=(0,)), "the container's user lacks supplementary group 100"),
    (dict(uid=0), "runs as root (uid 0)"),
])
def test_without_a_service_the_exec_user_is_checked(start, broken, words) -> None:
    t, _ = start(replace(Behaviour(service=None), **broken))
    [r] = run_all(t, (checks.process_user,))
    assert r.status is Status.FAILED and words in r.message


def test_without_a_service_user_env_and_restart_say_so(start) -> None:
    t, _ = start(Behaviour(service=None))
    got = {r.name: (r.status, r.message) for r in
           run_all(t, (checks.process_user, checks.home_env, checks.service_restarts))}
    assert got == {
        "process-user": (Status.PASSED, "the container's user: jovyan uid 1000 gid 0 groups 0,100"),
        "home-env": (Status.PASSED, "HOME=/home/jovyan"),
        "service-restarts": (Status.SKIPPED, "no supervised service declared "
                                             "(io.nbpipe.service label)"),
    }


@pytest.mark.parametrize("rc,out,status,words", [
    (77, "torch sees no CUDA device\n", Status.SKIPPED, "torch sees no CUDA device"),
    (77, "", Status.SKIPPED, "no cuda device visible in the container"),
    (1, "rel err 3.0e-01\n", Status.FAILED, "cuda smoke test failed (exit 1): rel err 3.0e-01"),
    (0, "warming up\ncuda ok: H100\n", Status.PASSED, "cuda ok: H100"),
])
def test_a_smoke_test_without_a_device_is_skipped_never_passed(start, rc, out, status,
                                                               words) -> None:
    t, _ = start(smoke=lambda tag: (rc, out))
    [r] = run_all(t, (checks.smoke("cuda"),))
    assert (r.name, r.status, r.message) == ("smoke-cuda", status, words)


def test_smoke_tests_need_the_runner_tag_and_an_engine_that_gives_devices(start) -> None:
    calls = []
    t, _ = start(runner_tags=frozenset(), smoke=lambda tag: calls.append(tag) or (0, "ok"))
    [r] = run_all(t, (checks.smoke("cuda"),))
    assert (r.status, r.message) == (Status.SKIPPED, "this runner has no 'cuda' tag (set "
                                     "NBPIPE_RUNNER_TAGS=cuda on a runner with that accelerator)")
    t, _ = start(smoke=None)
    [r] = run_all(t, (checks.smoke("cuda"),))
    assert (r.status, r.message) == (Status.SKIPPED, "the engine cannot give the container "
                                                     "a cuda device")
    assert calls == []


def test_one_rule_says_which_smoke_tests_run_on_either_engine() -> None:
    """probes/smoke.py decides for the Podman checks and the Dagger probe alike: the
    image's tags, then the runner's, then the engine's devices; the hint and the engine's
    words are the caller's."""
    from nbpipe.probes.smoke import ADD_TAG, plan, skip_reason
    from nbpipe.probing.dagger import ADD_TAG as DAGGER_ADD_TAG, DEVICES, NO_DEVICE

    assert skip_reason("gaudi", {"cuda"}, {"cuda", "gaudi"}, devices={"gaudi"},
                       add_tag=ADD_TAG, no_device="x") == "the image needs no gaudi runner"
    assert plan(["gaudi", "cuda"], ["cuda", "gaudi"], devices=DEVICES,
                add_tag=DAGGER_ADD_TAG, no_device=NO_DEVICE) == {
        "cuda": None,
        "gaudi": "Dagger passes no gaudi device into containers; run `nbpipe test` with Podman",
    }
    assert plan(["cuda"], [], devices=DEVICES, add_tag=DAGGER_ADD_TAG, no_device=NO_DEVICE) == {
        "cuda": "this runner has no 'cuda' tag (pass --runner-tags cuda on a runner with "
                "that accelerator)"}
    assert plan([], ["cuda"], devices=DEVICES, add_tag=ADD_TAG, no_device="x") == {}


def test_a_server_that_never_answers_fails_http_ready(start) -> None:
    t, fake = start()
    fake.stop()
    t = Target(base_url=t.base_url, prefix=t.prefix, labels=t.labels, exec=None,
               ready_timeout=0.3)
    [r] = run_all(t, (checks.http_ready,))
    assert r.status is Status.FAILED
    assert r.message.startswith(f"GET {t.prefix} gave no 200 within 0s (last: ")
    assert "is the server listening on 0.0.0.0:8888?" in r.message


def test_a_non_jupyter_server_skips_the_jupyter_checks(start) -> None:
    b = Behaviour(server="codeserver", service="code-server", cors=None)
    t, _ = start(b, image_labels={})
    got = statuses(run_all(t))
    skipped = {"served-under-prefix", "api-kernels", "cors", "kernel-runs-code", "imports",
               "python-version", "distributions", "notebooks",
               "r-libraries", "commands", "smoke-cuda", "smoke-gaudi"}
    assert {n for n, s in got.items() if s is Status.SKIPPED} == skipped
    assert {n for n, s in got.items() if s is Status.PASSED} == set(ALL_NAMES) - skipped
    assert t.ready_path() == "/"


def test_an_image_with_no_server_skips_http(start) -> None:
    t, _ = start(image_labels={})
    t.labels = {}
    results = {r.name: r for r in run_all(t, (checks.http_ready, checks.frameable, checks.cors))}
    assert {r.status for r in results.values()} == {Status.SKIPPED}
    assert results["http-ready"].message == "this image runs no server (no io.nbpipe.server label)"


def test_checks_that_need_exec_or_a_volume_skip_without_them(start) -> None:
    t, _ = start()
    bare = Target(base_url=t.base_url, prefix=t.prefix, labels=t.labels, exec=None)
    got = {r.name: (r.status, r.message) for r in run_all(bare, (
        checks.process_user, checks.skeleton_copied, checks.existing_kept,
        checks.cont_init_order, checks.imports))}
    assert got == {
        "process-user": (Status.SKIPPED, "this probe has no way to run commands in the container"),
        "skeleton-copied": (Status.SKIPPED, "no empty volume was mounted on the home directory"),
        "existing-kept": (Status.SKIPPED, "no pre-existing file was placed in the home volume"),
        "cont-init-order": (Status.SKIPPED, "no probe cont-init.d scripts were mounted"),
        "imports": (Status.SKIPPED, "this probe has no way to run commands in the container"),
    }


def test_a_dead_container_fails_every_check_and_a_probe_bug_is_a_failure(start) -> None:
    t, _ = start()
    t.alive = lambda: False
    results = run_all(t, checks.CHECKS[:3])
    assert {(r.status, r.message) for r in results} == {
        (Status.FAILED, "the container is no longer running (it exited; see its log below)")}

    def broken_probe(t: Target) -> str:
        raise KeyError("Uid")

    t.alive = lambda: True
    [r] = run_all(t, (broken_probe,))
    assert (r.name, r.status, r.message) == ("broken-probe", Status.FAILED, "KeyError: 'Uid'")


def test_a_failing_exec_names_the_command(start) -> None:
    t, _ = start()
    t.exec = lambda argv: (2, "boom\n")
    [r] = run_all(t, (checks.home_env,))
    assert (r.status, r.message) == (Status.FAILED,
                                     "`s6-svstat -o up,pid /tmp/nbpipe-services/jupyterlab` "
                                     "exited 2 in the container: boom")


def test_labels_without_probes_skip_with_the_reason(start) -> None:
    t, _ = start(image_labels={})
    got = {r.name: (r.status, r.message) for r in run_all(t, (
        checks.imports, checks.python_version, checks.r_libraries, checks.commands,
        checks.smoke("gaudi")))}
    assert got == {
        "imports": (Status.SKIPPED, "the image declares no key Python packages"),
        "python-version": (Status.SKIPPED, "the image declares no Python version "
                                           "(io.nbpipe.python label)"),
        "r-libraries": (Status.SKIPPED, "the image declares no R packages"),
        "commands": (Status.SKIPPED, "the image declares no probe commands"),
        "smoke-gaudi": (Status.SKIPPED, "the image needs no gaudi runner"),
    }


def test_probe_results_serialise_with_plain_status() -> None:
    r = ProbeResult("cors", Status.FAILED, "no", 0.5)
    assert r.to_dict() == {"name": "cors", "status": "failed", "message": "no", "seconds": 0.5}


def test_the_prober_starts_the_image_as_kubernetes_would_and_cleans_up(tmp_path,
                                                                      monkeypatch) -> None:
    """prober.probe on a fake engine whose container is the fake notebook: an empty home
    volume with a sentinel file, the two cont-init.d scripts mounted read-only, a random
    NB_PREFIX, every check run, the log's last 25 lines, and nothing left behind."""
    import subprocess
    from types import SimpleNamespace

    from nbpipe.probing import prober

    seen: dict = {}

    class Engine:
        def inspect(self, ref):
            return SimpleNamespace(labels=labels(Behaviour(), **IMAGE_LABELS))

        def run_detached(self, ref, *, env, mounts, port, container_port, name, extra=()):
            seen.update(ref=ref, env=env, mounts=mounts, container_port=container_port)
            home = Path(mounts[0].split(":")[0])
            seen["sentinel"] = (home / ".bashrc").read_text()
            fake = FakeNotebook(replace(Behaviour(), prefix=env["NB_PREFIX"]), home)
            fake.start(port, [Path(m.split(":")[0]) for m in mounts[1:]])
            seen["fake"] = fake
            return "cid-1"

        def exec(self, container, argv, *, user=None, timeout=60):
            rc, out = seen["fake"].exec(list(argv))
            return subprocess.CompletedProcess(argv, rc, out, "")

        def run_once(self, ref, argv, *, extra=(), timeout=600):
            seen["smoke"] = list(extra)
            return subprocess.CompletedProcess(argv, 0, "cuda ok: fake GPU\n", "")

        def running(self, container):
            return True

        def logs(self, container):
            return "".join(f"log {i}\n" for i in range(40))

        def remove_container(self, container):
            seen["removed"] = container
            seen["fake"].stop()

    results, log = prober.probe(Engine(), "localhost/nbpipe/x:1", tags={"cuda"},
                                workdir=tmp_path / "work",
                                ready_timeout=5)
    assert statuses(results) == GOOD, [r for r in results if r.status is not GOOD[r.name]]
    assert log.splitlines() == [f"log {i}" for i in range(15, 40)]
    assert seen["ref"] == "localhost/nbpipe/x:1" and seen["container_port"] == 8888
    assert re.fullmatch(r"/notebook/nbpipe-probe/[0-9a-f]{8}", seen["env"]["NB_PREFIX"])
    assert seen["mounts"][0].endswith(":/home/jovyan")
    assert [m.split(":", 1)[1] for m in seen["mounts"][1:]] == [
        f"/etc/cont-init.d/{n}:ro" for n in PROBE_INIT_SCRIPTS]
    assert seen["sentinel"] == prober.SENTINEL[1]
    assert seen["smoke"] == ["--device", "nvidia.com/gpu=all"]
    assert seen["removed"] == "cid-1"
    assert list((tmp_path / "work").iterdir()) == []  # the volume and scripts are gone
