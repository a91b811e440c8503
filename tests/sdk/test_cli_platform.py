"""The CLI as a platform engineer runs it (issue 25): help that never crashes, exit codes
CI can trust, one identity per image in every command, output that pipes and pastes.

Most cases run in-process through nbpipe.cli.commands.main (the entry point); the ones about
what a pipe receives run `python -m nbpipe` as a real process with COLUMNS=80."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from nbpipe.cli import commands as cli
from nbpipe.probes.result import ProbeResult, Status
from nbpipe.recipe import platforms as plat
from nbpipe.run.settings import Settings
from nbpipe.run.report import ImageResult, Outcome
from tests.fakes.container_cli import Fake
from tests.fakes.registry import registry_fake

REPO = Path(__file__).resolve().parents[2]
SPEC = REPO / "examples" / "team-astro" / "team-astro.yaml"
USAGE, ERROR = 2, 1


@pytest.fixture()
def fake(tmp_path, monkeypatch) -> Fake:
    """A fake skopeo and podman on PATH (tests/fakes/registry.py)."""
    return registry_fake(tmp_path, monkeypatch)


@pytest.fixture(autouse=True)
def _reachability_not_kept():
    """In-process commands ask which hosts are reachable; the answers are cached for the
    process, and must not leak into later tests (some assume every host reachable)."""
    from nbpipe.engines import sources

    sources.reachable.cache_clear()
    yield
    sources.reachable.cache_clear()


def run(capsys, monkeypatch, *args: str) -> tuple[int, str, str]:
    """(exit code, stdout, stderr) of `nbpipe ARGS`, in-process."""
    monkeypatch.setattr(sys, "argv", ["nbpipe", *args])
    with pytest.raises(SystemExit) as exc:
        cli.main()
    out = capsys.readouterr()
    return exc.value.code, out.out, out.err


def piped(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    """A real process whose stdout and stderr are pipes, on an 80-column terminal setting."""
    return subprocess.run([sys.executable, "-m", "nbpipe", *args], capture_output=True,
                          text=True, timeout=120, cwd=cwd,
                          env={**os.environ, "COLUMNS": "80", "FORCE_COLOR": ""})


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


# -- 1. help is plain text: never rich markup, never a crash -----------------------------

COMMANDS = [[], ["images"], ["graph"], ["plan"], ["export"], ["build"], ["test"], ["base"],
            ["base", "bootstrap"], ["publish"], ["verify-reproducible"], ["lock"],
            ["kubeflow"], ["kubeflow", "spawner-options"], ["spec"], ["spec", "validate"],
            ["new"], ["keygen"], ["verify"], ["audit"]]
GROUPS = ([], ["base"], ["kubeflow"], ["spec"])
NOT_OURS = (["keygen"], ["verify"], ["audit"])  # issue 26's commands: no examples (yet)


@pytest.mark.parametrize("command", COMMANDS, ids=[" ".join(c) or "nbpipe" for c in COMMANDS])
def test_help_never_crashes_and_shows_no_type_placeholders(command, capsys, monkeypatch) -> None:
    for flag in ("--help", "-h"):
        code, out, err = run(capsys, monkeypatch, *command, flag)
        assert (code, err) == (0, ""), err
        assert out.startswith("Usage: nbpipe")
        assert not re.search(r"<(bool|str|int|path|list\[\w+\])>", out), out
        if command not in GROUPS + NOT_OURS:
            assert "Examples:\n    nbpipe " in out, out  # each command shows how it is used


def test_help_text_with_brackets_is_text(capsys, monkeypatch) -> None:
    """`host[:port][/namespace]` in a help line crashed publish --help (exit 70)."""
    for command in (["publish"], ["kubeflow", "spawner-options"]):
        code, out, _ = run(capsys, monkeypatch, *command, "--help")
        assert code == 0 and "host[:port][/namespace]" in out


def test_exit_codes_are_in_the_top_help(capsys, monkeypatch) -> None:
    code, out, _ = run(capsys, monkeypatch, "-h")
    words = " ".join(out.split())
    assert code == 0 and "Exit codes: 0 ok, 1 failed" in words and "2 usage, 70 a bug" in words


# -- 2. a named image not built or probed is a failure, unless allowed ---------------------


def _results(*rows: tuple[str, Outcome, str | None]) -> list[ImageResult]:
    out = []
    for name, status, by in rows:
        r = ImageResult(name, plat.AMD64, "sha256:" + "a" * 64, status=status, blocked_by=by,
                        message="needs download2.rstudio.org" if status is Outcome.UNBUILDABLE
                        else "")
        if status is Outcome.CACHED:
            r.probes = [ProbeResult("cors", Status.PASSED, "ok", 0.1)]
        out.append(r)
    return out


class _Machine:
    platform, root_name, local_root, dagger = plat.AMD64, "registry", None, None

    def describe(self) -> str:
        return "engine: fake; platform: linux/amd64; root: registry pin"


@pytest.fixture()
def fake_run(monkeypatch, tmp_path):
    """`build`/`test` with the pipeline replaced: the results given are what it returns."""
    from nbpipe.run import pipeline

    monkeypatch.chdir(tmp_path)
    got: dict = {}

    def use(results: list[ImageResult]) -> dict:
        def build(machine, names, options, settings, **kw):
            got.update(names=names, options=options, settings=settings, **kw)
            return results
        monkeypatch.setattr(pipeline, "build", build)
        monkeypatch.setattr(cli, "_machine", lambda *a, **k: _Machine())
        return got
    return use


UNBUILDABLE = [("base", Outcome.CACHED, None), ("rstudio", Outcome.UNBUILDABLE, None),
               ("rstudio-tidyverse", Outcome.BLOCKED, "rstudio")]


@pytest.mark.parametrize("command", ["build", "test"])
def test_an_unbuildable_image_asked_for_fails_the_run(command, fake_run, capsys,
                                                      monkeypatch) -> None:
    fake_run(_results(*UNBUILDABLE[:2]))
    code, _, err = run(capsys, monkeypatch, command, "rstudio")
    assert code == ERROR
    assert ("2 image(s) skipped" not in err and "1 image(s) skipped, not built or probed: "
            "rstudio (unbuildable here: needs download2.rstudio.org)") in err
    assert ("nbpipe: error: images asked for were not built or probed (see above); "
            "--allow-unbuildable accepts that") in err


def test_allow_unbuildable_exits_0_and_says_what_was_skipped(fake_run, capsys,
                                                            monkeypatch) -> None:
    fake_run(_results(*UNBUILDABLE))
    code, _, err = run(capsys, monkeypatch, "build", "rstudio-tidyverse", "--allow-unbuildable")
    assert code == 0, err
    assert ("allowed (--allow-unbuildable): 2 image(s) skipped, not built or probed: rstudio "
            "(unbuildable here: needs download2.rstudio.org); rstudio-tidyverse (blocked by "
            "rstudio, unbuildable here)") in err


def test_a_failure_is_never_allowed(fake_run, capsys, monkeypatch) -> None:
    fake_run(_results(("base", Outcome.FAILED, None), ("jupyter", Outcome.BLOCKED, "base")))
    code, _, _ = run(capsys, monkeypatch, "build", "jupyter", "--allow-unbuildable")
    assert code == ERROR


def test_everything_built_and_probed_exits_0(fake_run, capsys, monkeypatch) -> None:
    fake_run(_results(("base", Outcome.CACHED, None)))
    code, _, err = run(capsys, monkeypatch, "build", "base")
    assert code == 0 and "skipped" not in err


def test_the_pipeline_names_the_root_of_a_block(tmp_path) -> None:
    """blocked_by is the unbuildable (or failed) ancestor at the top, not the parent."""
    import anyio

    from nbpipe.recipe.catalog import Catalog
    from nbpipe.run.pipeline import Pipeline
    from tests.fakes.engine import ROOT, Engine

    cat = Catalog()
    cat.add("pin", ROOT, lambda img: img.with_download("https://example.org/x", None, "/x"))
    cat.add("kid", "pin", lambda img: img.with_env("K", "1"))
    cat.add("grandkid", "kid", lambda img: img.with_env("G", "1"))
    pipe = Pipeline.local(cat, Engine(cat), plat.AMD64, state_dir=tmp_path, probe=False)
    got = {r.name: r for r in anyio.run(pipe.run, None)}
    assert [got[n].blocked_by for n in ("pin", "kid", "grandkid")] == [None, "pin", "pin"]
    from nbpipe.run.report import verdict

    v = verdict(list(got.values()))
    assert v.failed == () and [n for n, _ in v.skipped] == ["pin", "kid", "grandkid"]


def test_test_probes_only_the_images_named(tmp_path, monkeypatch) -> None:
    """`test b` with a built: only b is probed (a has no record and is not asked for)."""
    import anyio

    from nbpipe.probing import prober
    from nbpipe.run.pipeline import Pipeline
    from tests.fakes.engine import Engine, family

    cat = family()
    calls: list[str] = []
    monkeypatch.setattr(prober, "probe", lambda engine, ref, **kw: (
        calls.append(ref.split("/")[-1].split(":")[0]) or
        [ProbeResult("cors", Status.PASSED, "ok", 0.1)], ""))
    pipe = Pipeline.local(cat, Engine(cat, built=("a", "b")), plat.AMD64, state_dir=tmp_path,
                    force_probe=True, targets=frozenset({"b"}))
    anyio.run(pipe.run, ["b"])
    assert calls == ["b"]
    calls.clear()  # an ancestor built in this run is probed, as `build` does
    pipe = Pipeline.local(cat, Engine(cat, built=()), plat.AMD64, state_dir=tmp_path / "2",
                    force_probe=True, targets=frozenset({"b"}))
    anyio.run(pipe.run, ["b"])
    assert sorted(calls) == ["a", "b"]


def test_cli_test_passes_its_targets_to_the_pipeline(fake_run, capsys, monkeypatch) -> None:
    got = fake_run(_results(("base", Outcome.CACHED, None)))
    run(capsys, monkeypatch, "test", "base")
    assert got["names"] == ["base"] and got["force_probe"] is True


def test_pipeline_build_probes_afresh_only_what_test_names(tmp_path, monkeypatch) -> None:
    """nbpipe.run.pipeline.build, as `nbpipe test b` calls it, on a machine with a and b built."""
    from types import SimpleNamespace

    from nbpipe.probing import prober
    from nbpipe.recipe.options import BuildOptions
    from nbpipe.run import pipeline
    from tests.fakes.engine import Engine, family

    cat = family()
    engine = Engine(cat, built=("a", "b"))
    calls: list[str] = []
    monkeypatch.setattr(prober, "probe", lambda engine, ref, **kw: (
        calls.append(ref.split("/")[-1].split(":")[0]) or
        [ProbeResult("cors", Status.PASSED, "ok", 0.1)], ""))
    machine = SimpleNamespace(catalog=cat, dagger=None, platform=plat.AMD64,
                              store=engine.images(), need_engine=lambda: engine)
    pipeline.build(machine, ["b"], BuildOptions(), Settings(state_dir=tmp_path), force_probe=True)
    assert calls == ["b"]


# -- 3. one identity: export and spec validate choose the root as plan and build do ------


def test_export_and_spec_validate_name_the_digests_plan_gives(capsys, monkeypatch) -> None:
    for root in ("registry", "auto"):
        code, out, err = run(capsys, monkeypatch, "plan", "--json", "--root", root, "-f",
                             str(SPEC))
        assert code == 0, err
        plan = json.loads(out)
        code, dockerfile, err = run(capsys, monkeypatch, "export", "-f", str(SPEC), "--root", root)
        assert code == 0, err
        assert f"FROM localhost/nbpipe/jupyter:{plan['digests']['jupyter'][7:23]}" in dockerfile
        assert f"# digest: {plan['digests']['team-astro']}" in dockerfile
        assert f"({plan['platform']} on the {plan['root']} root" in err  # says which root
        code, out, err = run(capsys, monkeypatch, "spec", "validate", str(SPEC), "--root", root,
                             "--json")
        assert code == 0, err
        checked = json.loads(out)
        assert (checked["root"], checked["platform"]) == (plan["root"], plan["platform"])
        assert checked["specs"][0]["digest"] == plan["digests"]["team-astro"]
        # the version label the build stamps is the content tag spec validate names
        assert (f'"org.opencontainers.image.version"="{checked["specs"][0]["content_tag"]}"'
                in dockerfile)


def test_export_platform_defaults_to_this_machine(capsys, monkeypatch) -> None:
    monkeypatch.setattr(plat, "host", lambda: plat.ARM64)
    code, out, _ = run(capsys, monkeypatch, "export", "jupyter", "--root", "registry")
    assert code == 0 and out.startswith("# nbpipe: jupyter for linux/arm64")


# -- 4. piped output: never wrapped, coloured or cut; --json on every listing --------------


def test_piped_images_table_is_whole() -> None:
    r = piped("images", "--root", "registry")
    assert r.returncode == 0, r.stderr
    assert "\x1b[" not in r.stdout and "…" not in r.stdout
    rows = [line for line in r.stdout.splitlines() if line.startswith("│")]
    assert len(rows) == 17 and all(re.search(r"│ [0-9a-f]{16} │", row) for row in rows)
    assert any("│ unbuildable │" in row for row in rows)


def test_piped_messages_are_one_line(tmp_path) -> None:
    old = write(tmp_path / "old.json", json.dumps({"platform": "linux/arm64", "root": "registry",
                                                   "digests": {}}))
    r = piped("plan", "--since", str(old), "--root", "registry", "--platform", "linux/amd64")
    assert r.returncode == 1 and r.stderr.count("\n") == 1 and len(r.stderr) > 200, r.stderr


LISTINGS = [["images", "--json"], ["plan", "--json"], ["graph", "--format", "json"],
            ["lock", "--check", "base", "--json"], ["spec", "validate", str(SPEC), "--json"]]


@pytest.mark.parametrize("argv", LISTINGS, ids=[a[0] for a in LISTINGS])
def test_every_listing_has_json(argv, capsys, monkeypatch) -> None:
    code, out, err = run(capsys, monkeypatch, *argv, *(["--root", "registry"]
                                                         if argv[0] in ("images", "plan") else []))
    assert code == 0, err
    data = json.loads(out)
    keys = {"images": {"platform", "root", "images"}, "graph": {"images"},
            "plan": {"platform", "root", "order", "digests", "states", "published"},
            "lock": {"lock_file", "missing", "unbuildable_here", "gone"},
            "spec": {"platform", "root", "specs"}}[argv[0]]
    assert set(data) == keys


def test_build_json_is_the_report(fake_run, capsys, monkeypatch) -> None:
    fake_run(_results(("base", Outcome.CACHED, None)))
    code, out, _ = run(capsys, monkeypatch, "build", "base", "--json")
    assert code == 0
    [row] = json.loads(out)
    assert row["name"] == "base" and row["status"] == "cached" and row["ok"] is True


# -- 5. lock --check and spec locks --------------------------------------------------------


def test_lock_check_honours_the_names(capsys, monkeypatch, tmp_path) -> None:
    from nbpipe.engines import sources

    monkeypatch.setattr(sources, "reachable", lambda host, assume=frozenset(): True)
    empty = tmp_path / "lock.json"
    empty.write_text(json.dumps({"locks": {}}))
    code, out, _ = run(capsys, monkeypatch, "lock", "--check", "jupyter-tensorflow", "--json",
                       "--lock-file", str(empty))
    assert code == ERROR
    images = {m["image"] for m in json.loads(out)["missing"]}
    assert images == {"base", "jupyter", "jupyter-tensorflow"}  # not the whole family
    code, out, _ = run(capsys, monkeypatch, "lock", "--check", "base", "jupyter")
    assert code == 0 and "every apt and pip step is locked" in out


def test_lock_check_lists_what_cannot_build_here_with_why_and_does_not_count_it(
    capsys, monkeypatch, tmp_path
) -> None:
    """A lock is written by building: an image whose source is out of reach here (or an
    ancestor's) is listed with the reason, not counted as unlocked (issue 19)."""
    from nbpipe.engines import sources

    monkeypatch.setattr(sources, "reachable", lambda host, assume=frozenset(): (
        host != "download.pytorch.org"))
    empty = tmp_path / "lock.json"
    empty.write_text(json.dumps({"locks": {}}))
    code, out, _ = run(capsys, monkeypatch, "lock", "--check", "jupyter-pytorch-full", "--json",
                       "--lock-file", str(empty))
    data = json.loads(out)
    assert code == ERROR  # base and jupyter build here and are not locked in that file
    assert {m["image"] for m in data["missing"]} == {"base", "jupyter"}
    cannot = {(m["image"], m["why"]) for m in data["unbuildable_here"]}
    want = "jupyter-pytorch needs download.pytorch.org, not reachable from here"
    assert cannot == {("jupyter-pytorch", want), ("jupyter-pytorch-full", want)}
    code, out, _ = run(capsys, monkeypatch, "lock", "--check", "jupyter-pytorch")
    assert code == 0
    assert f"cannot lock here: jupyter-pytorch step 0 (pip torch==2.12.0" in out and want in out
    assert "every apt and pip step is locked" in out


@pytest.mark.parametrize("argv,fragment", [
    (["lock", "--check", "nope"], "unknown image 'nope'"),
    (["lock", "-f", str(SPEC), "--check", "nope"], "unknown image 'nope'"),
    (["lock", "--check", "--lock-file", "/missing/lock.json"],
     "--lock-file /missing/lock.json: no such file"),
])
def test_lock_check_refuses(argv, fragment, capsys, monkeypatch) -> None:
    code, _, err = run(capsys, monkeypatch, *argv)
    assert code == ERROR and err.count("\n") == 1 and fragment in err


def test_step_text_is_cut_between_words() -> None:
    from nbpipe.locks.lock import brief

    text = "pip torch==2.12.0 torchvision==0.27.0 torchaudio==2.11.0 numpy==2.4.0"
    assert brief(text, 50) == "pip torch==2.12.0 torchvision==0.27.0 ..."
    assert brief("short", 50) == "short"


def test_a_team_spec_has_its_own_lock(tmp_path, capsys, monkeypatch) -> None:
    spec = write(tmp_path / "team.yaml", "name: team-l\nparent: jupyter\npip: [numpy]\n")
    code, out, err = run(capsys, monkeypatch, "spec", "validate", str(spec))
    assert code == 0 and out.startswith(f"{spec}: ok")
    assert (f"nbpipe: warning: {spec}:3: pip[0]: 'numpy' is not pinned to one version "
            "(name==version)") in err
    code, out, _ = run(capsys, monkeypatch, "lock", "-f", str(spec), "--check", "--json")
    assert code == ERROR
    data = json.loads(out)
    assert data["lock_file"] == str(tmp_path / "team.lock.json")
    assert {m["image"] for m in data["missing"]} == {"team-l"}  # its own steps, no family's
    from nbpipe.family import family
    from nbpipe.inputs import spec as specs
    from nbpipe.locks import lock

    cat = specs.load(spec).register(family())
    img = cat.resolve("team-l")
    lock.save(tmp_path / "team.lock.json", {lock.key("team-l", 0, img.steps[0]): {
        p: "numpy==2.4.0 --hash=sha256:" + "0" * 64 + "\n" for p in img.platforms}})
    code, out, _ = run(capsys, monkeypatch, "lock", "-f", str(spec), "--check")
    assert code == 0, out
    code, out, err = run(capsys, monkeypatch, "spec", "validate", str(spec), "--json")
    assert code == 0 and json.loads(out)["specs"][0]["warnings"] == []  # the lock pins it
    code, dockerfile, _ = run(capsys, monkeypatch, "export", "-f", str(spec))
    assert "--require-hashes" in dockerfile and "numpy==2.4.0" in dockerfile  # build uses it


# -- 6. plan --since made elsewhere ----------------------------------------------------------


@pytest.mark.parametrize("field,value", [("platform", "linux/arm64"), ("root", "local")])
def test_plan_since_from_another_platform_or_root_says_why(field, value, tmp_path, capsys,
                                                           monkeypatch) -> None:
    code, out, _ = run(capsys, monkeypatch, "plan", "--json", "--root", "registry",
                       "--platform", "linux/amd64")
    old = json.loads(out) | {field: value}
    path = write(tmp_path / "old.json", json.dumps(old))
    code, out, err = run(capsys, monkeypatch, "plan", "--since", str(path), "--root",
                         "registry", "--platform", "linux/amd64")
    assert code == ERROR and out == "" and err.count("\n") == 1
    assert "every digest differs" in err and f"{value}" in err


# -- 7. Kubeflow spawner options -----------------------------------------------------------

KUBEFLOW = """\
# Configuration file for the Jupyter UI.
spawnerFormDefaults:
  ################################################################
  # Jupyter-like Container Images
  ################################################################
  image:
    # the default container image
    value: kubeflownotebookswg/jupyter-scipy:v1.10.0
    # the list of available container images in the dropdown
    options:
    - kubeflownotebookswg/jupyter-scipy:v1.10.0
    - kubeflownotebookswg/jupyter-pytorch-full:v1.10.0
  ################################################################
  # VSCode-like Container Images (Group 1)
  ################################################################
  imageGroupOne:
    value: kubeflownotebookswg/codeserver-python:v1.10.0
    options:
    - kubeflownotebookswg/codeserver-python:v1.10.0
  ################################################################
  # CPU Resources
  ################################################################
  cpu:
    # CPU for user's Notebook
    value: '0.5'
    limitFactor: "1.2"
    readOnly: false
  memory:
    value: 1.0Gi
"""


@pytest.fixture()
def published(fake):
    from nbpipe.recipe.naming import content_tag
    from tests.fakes.registry import registry_has, small

    cat = small()
    raw = {"t": b'{"t": 1}', "u": b'{"u": 1}', "c": b'{"c": 1}'}
    registry_has(fake, {f"127.0.0.1:5000/team/{n}:{content_tag(cat.resolve(n))}": b
                        for n, b in raw.items()})
    return cat


def _ref(cat, name: str, raw: bytes) -> str:
    import hashlib

    from nbpipe.recipe.naming import content_tag

    return (f"127.0.0.1:5000/team/{name}:{content_tag(cat.resolve(name))}"
            f"@sha256:{hashlib.sha256(raw).hexdigest()}")


def test_spawner_merge_keeps_the_users_defaults(published, tmp_path) -> None:
    from nbpipe.run import spawner
    from tests.fakes.registry import REG

    cfg = write(tmp_path / "spawner_ui_config.yaml", KUBEFLOW)
    merged = spawner.merge(cfg, spawner.published(published, REG, ("u",)))
    data = yaml.safe_load(merged)["spawnerFormDefaults"]
    t, u, c = (_ref(published, n, f'{{"{n}": 1}}'.encode()) for n in "tuc")
    assert data["image"] == {"value": u, "options": [t, u]}
    assert data["imageGroupOne"] == {"value": c, "options": [c]}
    assert data["cpu"] == {"value": "0.5", "limitFactor": "1.2", "readOnly": False}
    assert data["memory"] == {"value": "1.0Gi"}
    assert "  # CPU Resources\n" in merged and merged.startswith("# Configuration file")
    assert merged.count("spawnerFormDefaults:") == 1


def test_spawner_blocks_never_replace_the_users_defaults(published) -> None:
    """The old output began with its own `spawnerFormDefaults:`: appended to a real file,
    YAML kept only that second key, and cpu/memory defaults were gone."""
    from nbpipe.run import spawner
    from tests.fakes.registry import REG

    text = spawner.blocks(spawner.published(published, REG))
    assert not [line for line in text.splitlines() if line[:1] not in ("#", " ")]
    appended = yaml.safe_load(KUBEFLOW + text)["spawnerFormDefaults"]
    assert appended["cpu"]["value"] == "0.5" and appended["memory"] == {"value": "1.0Gi"}
    data = yaml.safe_load("spawnerFormDefaults:\n" + text)["spawnerFormDefaults"]
    assert data["image"]["value"] == _ref(published, "t", b'{"t": 1}')


@pytest.mark.parametrize("defaults,fragment", [(("r",), "--default r: not published"),
                                               (("t", "u"), "t and u are in the same dropdown"),
                                               (("nope",), "unknown image 'nope'")])
def test_spawner_default_is_checked(published, defaults, fragment) -> None:
    from nbpipe.errors import NbpipeError
    from nbpipe.run import spawner
    from tests.fakes.registry import REG

    with pytest.raises(NbpipeError, match=re.escape(fragment)):
        spawner.published(published, REG, defaults)


# -- 8. nbpipe new writes specs that build ---------------------------------------------------


@pytest.mark.parametrize("parent", ["base", "codeserver", "rstudio", "jupyter"])
def test_new_spec_validates_on_every_server_parent(parent, tmp_path, capsys,
                                                   monkeypatch) -> None:
    code, _, err = run(capsys, monkeypatch, "new", f"team-{parent}", "--parent", parent,
                       "--out", str(tmp_path), "--python")
    assert code == 0, err
    spec = tmp_path / f"team-{parent}.yaml"
    assert ("pip:" in spec.read_text()) == (parent == "jupyter")
    code, out, err = run(capsys, monkeypatch, "spec", "validate", str(spec), "--root", "registry")
    assert code == 0 and "ok" in out and "warning" not in err, err
    module = (tmp_path / f"team_{parent}.py").read_text()
    assert ("with_pip" in module) == (parent == "jupyter")


def test_a_pip_step_on_a_parent_without_venv_is_refused(tmp_path, capsys, monkeypatch) -> None:
    spec = write(tmp_path / "t.yaml", "name: t\nparent: base\npip: [a==1]\n")
    code, _, err = run(capsys, monkeypatch, "spec", "validate", str(spec))
    assert code == ERROR and err.count("\n") == 1
    assert f"{spec}:3: pip: the parent base has no Python environment at /opt/venv" in err


def test_new_with_a_family_name_is_refused_up_front(tmp_path, capsys, monkeypatch) -> None:
    code, _, err = run(capsys, monkeypatch, "new", "jupyter", "--out", str(tmp_path))
    assert code == ERROR and "'jupyter' is already an image of the family" in err
    assert list(tmp_path.iterdir()) == []
    spec = write(tmp_path / "j.yaml", "# a team's copy\nname: jupyter\nparent: base\n")
    code, _, err = run(capsys, monkeypatch, "spec", "validate", str(spec))
    assert code == ERROR and f"{spec}:2: name: 'jupyter' is already an image" in err


def test_ci_without_repo_is_a_usage_error(tmp_path, capsys, monkeypatch) -> None:
    code, _, err = run(capsys, monkeypatch, "new", "team-x", "--ci", "dagger", "--out",
                       str(tmp_path))
    assert code == USAGE and "Invalid value for '--ci'" in err and "--repo" in err
    assert list(tmp_path.iterdir()) == []


# -- 9. a team image's labels are the team's ---------------------------------------------


def test_team_image_labels_name_the_team_repo_and_parent(tmp_path) -> None:
    from nbpipe.engines import dockerfile
    from nbpipe.family import family
    from nbpipe.inputs import spec as specs
    from nbpipe.recipe.options import BuildOptions
    from nbpipe.run import origin

    repo = tmp_path / "team"
    spec = write(repo / "team.yaml", "name: team-p\nparent: jupyter\n")
    git = ["git", "-c", "user.name=t", "-c", "user.email=t@t", "-C", str(repo)]
    subprocess.run([*git, "init", "-q"], check=True)
    subprocess.run([*git, "remote", "add", "origin",
                    "https://bot:s3cret@github.com/acme/team.git"], check=True)
    subprocess.run([*git, "add", "."], check=True)
    subprocess.run([*git, "commit", "-qm", "x"], check=True)
    head = subprocess.run([*git, "rev-parse", "HEAD"], capture_output=True, text=True).stdout
    cat = specs.load(spec).register(family())
    found = origin.team_images(cat, {"team-p": repo})
    assert found == (origin.Origin("team-p", "https://github.com/acme/team",
                                           head.strip()),)
    options = BuildOptions(labels=(("org.opencontainers.image.source", "https://ours"),),
                           origins=found)
    labels = dict(re.findall(r'^LABEL "([^"]+)"="([^"]*)"$',
                             dockerfile.render(cat.resolve("team-p"), plat.AMD64,
                                               options).text, re.M))
    assert labels["org.opencontainers.image.source"] == "https://github.com/acme/team"
    assert labels["org.opencontainers.image.revision"] == head.strip()
    assert labels["org.opencontainers.image.base.name"].startswith("localhost/nbpipe/jupyter:")
    ours = dict(re.findall(r'^LABEL "([^"]+)"="([^"]*)"$', dockerfile.render(
        cat.resolve("jupyter"), plat.AMD64, options).text, re.M))
    assert ours["org.opencontainers.image.source"] == "https://ours"  # the family stays ours


@pytest.mark.parametrize("remote,url", [
    ("git@github.com:acme/team.git", "https://github.com/acme/team"),
    ("https://x-token:ghp_abc@github.com/acme/team.git", "https://github.com/acme/team"),
    ("ssh://git@host.example/acme/team", "ssh://host.example/acme/team"),
])
def test_remotes_become_label_urls_without_credentials(remote, url) -> None:
    from nbpipe.run.origin import public_url

    assert public_url(remote) == url


def test_build_passes_the_team_origins(fake_run, capsys, monkeypatch, tmp_path) -> None:
    got = fake_run(_results(("team-astro", Outcome.CACHED, None)))
    code, _, err = run(capsys, monkeypatch, "build", "-f", str(SPEC))
    assert code == 0, err
    assert [p.name for p in got["options"].origins] == ["team-astro"]


@pytest.mark.parametrize("command", ["build", "test"])
def test_build_registry_fills_the_package_store_from_there(
    command, fake_run, capsys, monkeypatch
) -> None:
    got = fake_run(_results(("base", Outcome.CACHED, None)))
    code, _, err = run(capsys, monkeypatch, command, "base", "--registry", "127.0.0.1:5000/acme")
    assert code == 0, err
    assert got["registry"].address == "127.0.0.1:5000/acme"
    code, _, _ = run(capsys, monkeypatch, command, "base")
    assert got["registry"] is None


# -- 10. errors and usage ------------------------------------------------------------------

CHOICES = [(["graph", "--format", "svg"], "--format"), (["plan", "--engine", "foo"], "--engine"),
           (["plan", "--root", "nowhere"], "--root"), (["test", "x", "--as", "docker"], "--as"),
           (["new", "x", "--repo", "r", "--ci", "gitlab"], "--ci"),
           (["publish", "x", "--registry", "r.io", "--compression", "xz"], "--compression"),
           (["plan", "--platform", "linux/s390x"], "--platform")]


@pytest.mark.parametrize("argv,option", CHOICES, ids=[c[1] for c in CHOICES])
def test_a_bad_choice_is_a_usage_error_with_one_wording(argv, option, capsys,
                                                        monkeypatch) -> None:
    code, _, err = run(capsys, monkeypatch, *argv)
    last = err.rstrip("\n").splitlines()[-1]
    assert code == USAGE and re.fullmatch(
        rf"Error: Invalid value for '{option}': '{re.escape(argv[-1])}': use one of .+", last), err


@pytest.mark.parametrize("argv,fragment", [
    (["build", "--jobs", "-3"], "Invalid value for '--jobs'"),
    (["build", "--jobs", "0"], "Invalid value for '--jobs'"),
    (["plan", "--registry", "bad reg"], "Invalid value for '--registry': 'bad reg'"),
    (["kubeflow", "spawner-options", "--registry", "Acme/UPPER"], "Invalid value for '--registry'"),
])
def test_bad_values_are_usage_errors_before_any_work(argv, fragment, capsys, monkeypatch) -> None:
    code, _, err = run(capsys, monkeypatch, *argv)
    assert code == USAGE and fragment in err.splitlines()[-1] and "internal error" not in err


def test_spec_validate_checks_every_file(tmp_path, capsys, monkeypatch) -> None:
    bad1 = write(tmp_path / "a.yaml", "name: a\nparent: jupyter\napt: ['Bad Name']\n")
    good = write(tmp_path / "b.yaml", "name: b\nparent: jupyter\n")
    bad2 = write(tmp_path / "c.yaml", "name: c\nparent: jupyter\nenv: {'1A': x}\n")
    code, out, err = run(capsys, monkeypatch, "spec", "validate", str(bad1), str(good), str(bad2))
    assert code == ERROR
    assert out.startswith(f"{good}: ok: b on jupyter")
    errors = [line for line in err.splitlines() if line.startswith("nbpipe: error: ")]
    # each field said once: "apt: 'Bad Name' ...", never "apt: apt: ..."
    assert errors == [f"nbpipe: error: {bad1}:3: apt: 'Bad Name' is not a Debian package name "
                      "(name or name=version)",
                      f"nbpipe: error: {bad2}:3: env.1A: '1A' is not a valid variable name"]


def test_an_unreachable_registry_is_one_sentence(fake, capsys, monkeypatch) -> None:
    fake.on("inspect", rc=1, stderr=(
        'time="2026-12-06T23:00:00Z" level=fatal msg="Error parsing image name \\"docker://'
        'localhost:5999/x:y\\": pinging container registry localhost:5999: Get \\"https://'
        'localhost:5999/v2/\\": dial tcp [::1]:5999: connect: connection refused"\n'))
    code, _, err = run(capsys, monkeypatch, "plan", "base", "--root", "registry", "--registry",
                       "localhost:5999")
    assert code == ERROR and err.count("\n") == 1 and "level=fatal" not in err
    assert err == ("nbpipe: error: registry localhost:5999 is not reachable: nothing answers "
                   "at that address (is the registry running, and the port right?)\n")


def test_skopeo_fatal_lines_are_reduced_to_their_message(fake, capsys, monkeypatch) -> None:
    fake.on("inspect", rc=1, stderr=('time="2026-12-06T23:00:00Z" level=fatal msg="reading '
                                     'manifest y in localhost:5999/x: toomanyrequests: slow '
                                     'down \\"now\\""\n'))
    code, _, err = run(capsys, monkeypatch, "plan", "base", "--root", "registry", "--registry",
                       "localhost:5999")
    assert code == ERROR and err.endswith(
        ': reading manifest y in localhost:5999/x: toomanyrequests: slow down "now"\n'), err
    assert "level=fatal" not in err and "time=" not in err


def test_spawner_options_command_merges_a_given_file(published, tmp_path, capsys,
                                                     monkeypatch) -> None:
    cfg = write(tmp_path / "spawner_ui_config.yaml", KUBEFLOW)
    code, out, err = run(capsys, monkeypatch, "kubeflow", "spawner-options", "--registry",
                         "127.0.0.1:5000/team", "--catalog", "tests.sdk.test_publish:small",
                         "--default", "u", "--merge-into", str(cfg), "--root", "registry")
    assert code == 0, err
    data = yaml.safe_load(out)["spawnerFormDefaults"]
    assert data["image"]["value"] == _ref(published, "u", b'{"u": 1}')
    assert data["cpu"]["value"] == "0.5"


def test_lock_missing_locks_only_the_images_with_gaps_on_their_parents_as_locked(
    capsys, monkeypatch, tmp_path
) -> None:
    """`nbpipe lock --missing`: only images whose steps lack an entry for this platform are
    re-resolved (the rest stay as locked); nothing at all when nothing is missing."""
    from nbpipe.engines import sources
    from nbpipe.run import locking

    monkeypatch.setattr(sources, "reachable", lambda host, assume=frozenset(): True)
    monkeypatch.setattr(cli, "_machine", lambda *a, **k: _Machine())
    asked: dict = {}

    def refresh(machine, names, lock_file, options, on_event, *, only=None):
        asked.update(names=names, only=only)
        return {}

    monkeypatch.setattr(locking, "refresh", refresh)
    from nbpipe import family as images

    data = json.loads(images.LOCK_FILE.read_text())  # ours, less the tensorflow image's
    data["locks"] = {k: v for k, v in data["locks"].items()
                     if not k.startswith("jupyter-tensorflow")}
    lock_file = tmp_path / "lock.json"
    lock_file.write_text(json.dumps(data))
    code, out, err = run(capsys, monkeypatch, "lock", "--missing", "jupyter-tensorflow",
                         "--lock-file", str(lock_file))
    assert code == 0, err
    # base and jupyter are locked in that file: only the tensorflow image moves
    assert asked == {"names": ["jupyter-tensorflow"], "only": ["jupyter-tensorflow"]}
    asked.clear()
    code, out, _ = run(capsys, monkeypatch, "lock", "--missing", "base", "jupyter",
                       "--lock-file", str(lock_file))
    assert code == 0 and asked == {} and "nothing to lock for linux/amd64" in out
