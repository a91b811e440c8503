"""The GitHub workflow: valid against GitHub's workflow schema, and every call it makes is one
the module (or the nbpipe CLI) really accepts, with the settings a real runner needs."""

from __future__ import annotations

import json
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

WORKFLOW = Path(__file__).resolve().parents[2] / ".github" / "workflows" / "images.yml"


@pytest.fixture(scope="module")
def wf() -> dict:
    return yaml.safe_load(WORKFLOW.read_text())


def check_jsonschema() -> str:
    exe = shutil.which("check-jsonschema", path=str(Path(sys.executable).parent)) \
        or shutil.which("check-jsonschema")
    if exe is None:
        pytest.skip("check-jsonschema is not installed (it is in the test extra)")
    return exe


WORKFLOWS = sorted(p.name for p in WORKFLOW.parent.glob("*.y*ml"))


def test_every_workflow_is_checked_here() -> None:
    """The schema test below takes every file in .github/workflows (a new one is covered)."""
    assert {"images.yml", "lock-refresh.yml", "tests.yml"} <= set(WORKFLOWS), WORKFLOWS


@pytest.mark.parametrize("workflow", WORKFLOWS)
@pytest.mark.parametrize("broken", [None, ("runs-on:", "runs_on:"), ("steps:", "stepz:")])
def test_workflow_matches_github_s_schema(tmp_path: Path, broken, workflow: str) -> None:
    text = (WORKFLOW.parent / workflow).read_text()
    if broken:  # the check can fail: a misspelled key is refused
        text = text.replace(*broken, 1)
    path = tmp_path / workflow
    path.write_text(text)
    r = subprocess.run([check_jsonschema(), "--builtin-schema", "vendor.github-workflows",
                        str(path)], capture_output=True, text=True, timeout=120)
    assert (r.returncode == 0) == (broken is None), r.stdout + r.stderr


def test_pull_requests_run_the_offline_tests() -> None:
    """tests.yml: every pull request runs tests/sdk and tests/integration on Python 3.11 with
    the test extra and CI=true (the derandomized Hypothesis profile); no engine is set up."""
    tests = yaml.safe_load((WORKFLOW.parent / "tests.yml").read_text())
    on = tests[True]  # YAML 1.1 reads the key `on` as true
    assert "pull_request" in on
    (job,) = tests["jobs"].values()
    assert str(job["env"]["CI"]) == "true"
    steps = job["steps"]
    setup = next(s for s in steps if str(s.get("uses", "")).startswith("actions/setup-python"))
    assert setup["with"]["python-version"] == "3.11"
    runs = [s["run"] for s in steps if "run" in s]
    assert "pip install -e '.[test]'" in runs
    (pytest_run,) = [r for r in runs if r.startswith("pytest")]
    assert shlex.split(pytest_run)[1:] == ["tests/sdk", "tests/integration"]
    assert not any("dagger" in str(s.get("uses", "")) for s in steps)


def dagger_calls(wf: dict) -> list[tuple[str, dict, dict]]:
    """(job, step, {flag: value}) of every `dagger call` step."""
    out = []
    for name, job in wf["jobs"].items():
        for step in job["steps"]:
            if str(step.get("uses", "")).startswith("dagger/dagger-for-github"):
                args = re.sub(r"\$\{\{.*?\}\}", "X", step["with"]["args"])
                out.append((name, step, shlex.split(args)))
    return out


def test_every_dagger_call_names_a_function_and_its_flags(wf, registered) -> None:
    calls = dagger_calls(wf)
    assert {fn for _, _, (fn, *_) in calls} == {"ci", "test", "publish"}
    for job, step, (fn, *rest) in calls:
        assert step["with"]["verb"] == "call"
        flags = {a[2:].replace("-", "_") for a in rest if a.startswith("--")}
        assert flags <= set(registered[fn]["args"]), (job, flags - set(registered[fn]["args"]))


def test_gpu_jobs_switch_on_dagger_gpu_support(wf) -> None:
    job = wf["jobs"]["cuda-smoke"]
    assert "cuda" in job["runs-on"]
    step = next(s for s in job["steps"] if "dagger-for-github" in s.get("uses", ""))
    assert "--runner-tags cuda" in step["with"]["args"]
    env = {**job.get("env", {}), **step.get("env", {})}
    assert env.get("_EXPERIMENTAL_DAGGER_GPU_SUPPORT")


def test_gaudi_runs_podman_and_no_device_is_skipped_not_passed(wf) -> None:
    job = wf["jobs"]["gaudi-smoke"]
    assert "gaudi" in job["runs-on"]
    assert not any("dagger" in s.get("uses", "") for s in job["steps"]), \
        "Dagger passes no HPU into containers"
    test = next(s for s in job["steps"] if "nbpipe test" in s.get("run", ""))
    assert "--engine podman" in test["run"] and test["env"]["NBPIPE_RUNNER_TAGS"] == "gaudi"
    assert test["if"] == "steps.device.outputs.present == 'true'"
    skip = next(s for s in job["steps"] if s.get("name", "").startswith("SKIPPED"))
    assert skip["if"] == "steps.device.outputs.present != 'true'"
    assert "::notice title=SKIPPED" in skip["run"] and "exit 1" not in skip["run"]
    report = next(s for s in job["steps"] if "nbpipe-report.json" in s.get("run", ""))
    assert 'select(.status == "skipped")' in report["run"]


def test_skipped_probes_are_spelled_as_the_report_writes_them() -> None:
    from nbpipe.probes.result import Status

    assert Status.SKIPPED.value == "skipped"


def test_publish_logs_in_with_a_secret(wf) -> None:
    job = wf["jobs"]["publish"]
    step = next(s for s in job["steps"] if "dagger-for-github" in s.get("uses", ""))
    args = step["with"]["args"]
    assert "--password env:REGISTRY_PASSWORD" in args and "--username" in args
    assert step["env"]["REGISTRY_PASSWORD"] == "${{ secrets.GITHUB_TOKEN }}"
    assert "secrets." not in args, "the token itself never goes on the command line"


def test_ci_fans_out_one_job_per_affected_image(wf) -> None:
    ci = wf["jobs"]["ci"]
    assert ci["strategy"]["matrix"]["image"] == "${{ fromJSON(needs.plan.outputs.images) }}"
    args = next(s for s in ci["steps"] if "dagger-for-github" in s.get("uses", ""))["with"]["args"]
    assert "--images ${{ matrix.image }}" in args and "--registry" in args
    assert "--since previous/plan.json" in args


def test_the_plan_job_s_commands_give_the_matrix(tmp_path: Path) -> None:
    """The plan step's own commands, run here: `.order` of the --since plan is the list of
    images whose digest changed."""
    nbpipe = [sys.executable, "-m", "nbpipe"]
    flags = ["--root", "registry", "--platform", "linux/amd64", "--json"]
    r = subprocess.run([*nbpipe, "plan", *flags], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    plan = json.loads(r.stdout)
    plan["digests"]["jupyter-scipy"] = "sha256:" + "0" * 64
    (tmp_path / "plan.json").write_text(json.dumps(plan))
    r = subprocess.run([*nbpipe, "plan", *flags, "--since", str(tmp_path / "plan.json")],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["order"] == ["jupyter-scipy"]
