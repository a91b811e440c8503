"""A downstream team, outside this repository: the built wheel (not editable) installed in a
fresh venv, next to the team's own `images/` and `pipelines/`; `nbpipe new --repo` run from
there; the scaffold's workflow against GitHub's schema and its Dagger module registered."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import textwrap
import zipfile
from pathlib import Path

import pytest
import yaml

import nbpipe
from nbpipe.cli import scaffold
from nbpipe.errors import NbpipeError
from tests.conftest import REGISTER, run

REPO = Path(__file__).resolve().parents[2]


def test_wheel_installs_only_nbpipe_with_the_family_data(wheel) -> None:
    names = zipfile.ZipFile(wheel).namelist()
    tops = {n.split("/")[0] for n in names}
    assert tops == {"nbpipe", f"nbpipe-{nbpipe.__version__}.dist-info"}, tops
    dist = f"nbpipe-{nbpipe.__version__}.dist-info"
    assert zipfile.ZipFile(wheel).read(f"{dist}/top_level.txt").decode().split() == ["nbpipe"]
    ours = {f"nbpipe/family/files/{p.name}" for p in (REPO / "images" / "files").iterdir()}
    assert ours and ours <= set(names), ours - set(names)
    assert {
        "nbpipe/family/lock.json",
        "nbpipe/family/__init__.py",
        "nbpipe/pipelines/main.py",
        "nbpipe/probes/__main__.py",
    } <= set(names)


TEAM_PROBE = textwrap.dedent("""
    import json, images, pipelines, nbpipe, nbpipe.family, nbpipe.pipelines
    from nbpipe.family import family
    from nbpipe.pipelines import Nbpipe
    try:
        from images import family as theirs
    except ImportError:
        theirs = None
    cat = family()
    print(json.dumps({
        "images": images.__file__, "pipelines": pipelines.__file__,
        "team": [images.WHO, pipelines.WHO],
        "nbpipe": nbpipe.__file__, "family": nbpipe.family.__file__,
        "module": nbpipe.pipelines.__file__, "main_object": Nbpipe.__name__,
        "ours_via_images": theirs is not None, "count": len(cat.names),
        "jupyter": cat.resolve("jupyter").digest(),
    }))
""")


def test_team_folders_named_images_and_pipelines_do_not_clash(venv, tmp_path) -> None:
    team = tmp_path / "team"
    for pkg in ("images", "pipelines"):
        (team / pkg).mkdir(parents=True)
        (team / pkg / "__init__.py").write_text(f"WHO = 'team {pkg}'\n")
    out = json.loads(run([venv / "bin" / "python", "-c", TEAM_PROBE], cwd=team).stdout)
    assert out["team"] == ["team images", "team pipelines"]
    assert Path(out["images"]).parent == team / "images"
    assert Path(out["pipelines"]).parent == team / "pipelines"
    for key in ("nbpipe", "family", "module"):
        assert Path(out[key]).is_relative_to(venv), (key, out[key])  # the wheel, not the checkout
    assert out["main_object"] == "Nbpipe" and not out["ours_via_images"]
    assert out["count"] == 17
    from nbpipe.family import family  # the checkout's family: the installed one is the same data

    assert out["jupyter"] == family().resolve("jupyter").digest()


def test_installed_version_is_the_one_version(venv, tmp_path) -> None:
    r = run([venv / "bin" / "nbpipe", "--version"], cwd=tmp_path)
    assert r.stdout.strip() == f"nbpipe {nbpipe.__version__}"
    meta = run(
        [
            venv / "bin" / "python",
            "-c",
            "import importlib.metadata as m; print(m.version('nbpipe'))",
        ],
        cwd=tmp_path,
    )
    assert meta.stdout.strip() == nbpipe.__version__


@pytest.fixture(scope="module")
def team_repo(venv, tmp_path_factory) -> Path:
    """`nbpipe new team-x --repo` with the installed wheel, outside this repository."""
    where = tmp_path_factory.mktemp("outside")
    run([venv / "bin" / "nbpipe", "new", "team-x", "--repo", "team-x"], cwd=where)
    return where / "team-x"


def test_scaffold_validates_and_exports_outside_the_repo(venv, team_repo) -> None:
    nb = venv / "bin" / "nbpipe"
    assert not team_repo.is_relative_to(REPO)
    ok = run([nb, "spec", "validate", "images/team-x.yaml"], cwd=team_repo)
    assert "images/team-x.yaml: ok: team-x on jupyter" in ok.stdout
    text = run([nb, "export", "team-x", "-f", "images/team-x.yaml"], cwd=team_repo).stdout
    assert re.search(r"^FROM localhost/nbpipe/jupyter:[0-9a-f]{16}", text, re.M), text[:300]
    assert "tabulate==0.9.0" in text and 'LABEL "io.nbpipe.image"="team-x"' in text
    readme = (team_repo / "README.md").read_text()
    assert "nbpipe spec validate images/team-x.yaml" in readme
    assert "nbpipe build -f images/team-x.yaml" in readme
    test = (team_repo / "tests" / "test_image.py").read_text()
    assert "['build', '-f', 'images/team-x.yaml']" in test
    compile(test, "test_image.py", "exec")
    # ours by its repository and tag: PyPI's "nbpipe" is another project
    assert (
        (team_repo / "requirements.txt")
        .read_text()
        .startswith(f"nbpipe @ git+https://github.com/nbpipe/nbpipe@v{nbpipe.__version__}\n")
    )


def test_python_scaffold_in_a_folder_named_images_exports(venv, tmp_path) -> None:
    """The team's `images` package and ours side by side, through the installed CLI."""
    nb = venv / "bin" / "nbpipe"
    run(
        [nb, "new", "team-y", "--repo", "team-y", "--python", "--parent", "jupyter-scipy"],
        cwd=tmp_path,
    )
    repo = tmp_path / "team-y"
    assert (repo / "images" / "team_y.py").exists() and (repo / "dagger.json").exists()
    main = (repo / ".dagger" / "src" / "team_y" / "main.py").read_text()
    assert "dag.nbpipe().build_catalog(source=source, catalog=CATALOG, image=IMAGE)" in main
    assert 'CATALOG, IMAGE = "images.team_y:catalog", "team-y"' in main
    text = run([nb, "export", "team-y", "--catalog", "images.team_y:catalog"], cwd=repo).stdout
    assert re.search(r"^FROM localhost/nbpipe/jupyter-scipy:", text, re.M)
    assert (
        "nbpipe export team-y --catalog images.team_y:catalog" in (repo / "README.md").read_text()
    )


def _validate_workflow(path: Path) -> subprocess.CompletedProcess:
    return run(
        [
            sys.executable,
            "-m",
            "check_jsonschema",
            "--builtin-schema",
            "vendor.github-workflows",
            path,
        ],
        cwd=path.parent,
        ok=False,
    )


@pytest.mark.parametrize("ci", scaffold.CI_KINDS)
def test_workflow_is_valid_for_github_actions(tmp_path, ci) -> None:
    scaffold.write_repo("team-x", "jupyter", tmp_path / "repo", ci=ci)
    workflow = tmp_path / "repo" / ".github" / "workflows" / "image.yml"
    r = _validate_workflow(workflow)
    assert r.returncode == 0, r.stdout + r.stderr
    text = workflow.read_text()
    if ci == "cli":
        assert "run: nbpipe spec validate images/team-x.yaml" in text
        assert "run: nbpipe build -f images/team-x.yaml" in text
    else:
        assert "dagger/dagger-for-github" in text and "args: test" in text
        engine = json.loads((REPO / "dagger.json").read_text())["engineVersion"]
        assert f'version: "{engine.lstrip("v")}"' in text
    # the publish job signs with a key held as a CI secret, passed by environment only
    publish = yaml.safe_load(text)["jobs"]["publish"]
    step = publish["steps"][-1]
    assert step["run"].startswith("nbpipe publish -f images/team-x.yaml --registry ghcr.io/")
    assert step["run"].endswith("--sign-key env:NBPIPE_SIGN_KEY")
    assert step["env"]["NBPIPE_SIGN_KEY"] == "${{ secrets.NBPIPE_SIGN_KEY }}"
    assert publish["needs"] == "image" and publish["if"] == "github.event_name == 'push'"
    broken = tmp_path / "broken.yml"
    broken.write_text(text.replace("runs-on: ubuntu-latest", "runs_on: ubuntu-latest"))
    assert _validate_workflow(broken).returncode != 0  # the schema check can fail


def test_dagger_json_depends_on_our_module(tmp_path) -> None:
    scaffold.write_repo("team-x", "jupyter", tmp_path)
    conf = json.loads((tmp_path / "dagger.json").read_text())
    ours = json.loads((REPO / "dagger.json").read_text())
    assert conf["engineVersion"] == ours["engineVersion"] == scaffold.DAGGER_ENGINE
    assert conf["sdk"] == {"source": "python"} and conf["source"] == ".dagger"
    assert conf["dependencies"] == [
        {"name": ours["name"], "source": f"github.com/nbpipe/nbpipe@v{nbpipe.__version__}"}
    ]
    pyproject = (tmp_path / ".dagger" / "pyproject.toml").read_text()
    assert 'dependencies = ["dagger-io"]' in pyproject  # the runtime's 0.0.0 SDK fits
    assert (
        'main_object = "team_x:TeamX"' in pyproject and "nbpipe" not in pyproject.split("[", 2)[1]
    )


def test_scaffold_refuses_bad_input_and_writes_nothing(tmp_path) -> None:
    for kw, msg in (({"ci": "jenkins"}, "--ci 'jenkins'"),):
        with pytest.raises(NbpipeError, match=re.escape(msg)):
            scaffold.write_repo("team-x", "jupyter", tmp_path / "a", **kw)
    with pytest.raises(NbpipeError, match="start it with a letter"):
        scaffold.write_repo("1team", "jupyter", tmp_path / "a")
    with pytest.raises(NbpipeError, match="is not an image name"):
        scaffold.write_repo("team-x\n", "jupyter", tmp_path / "a")
    assert not (tmp_path / "a").exists()
    (tmp_path / "b" / "tests").mkdir(parents=True)
    (tmp_path / "b" / "tests" / "test_image.py").write_text("mine\n")
    with pytest.raises(NbpipeError, match="test_image.py exists; not overwriting it"):
        scaffold.write_repo("team-x", "jupyter", tmp_path / "b")
    assert sorted(p.name for p in (tmp_path / "b").rglob("*")) == ["test_image.py", "tests"]


# Our module's registration snippet (test_dagger), loading the team's main object: what the
# runtime finds through the team module's entry point. (nbpipe's own `dagger.mod` entry point
# would win that lookup where nbpipe is installed, hence no nbpipe in the team module.)
TEAM_REGISTER = (
    textwrap.dedent("""
    import importlib.metadata, sys
    import dagger.mod.cli
    dagger.mod.cli.get_entry_point = lambda: importlib.metadata.EntryPoint(
        "main_object", sys.argv[1], "dagger.mod")
""")
    + REGISTER
)


@pytest.mark.parametrize("python", [False, True], ids=["spec", "python"])
def test_team_dagger_module_registers_with_daggers_own_code(tmp_path, python) -> None:
    pytest.importorskip("dagger")
    scaffold.write_repo("team-x", "jupyter", tmp_path, python=python)
    env = {
        "PYTHONPATH": str(tmp_path / ".dagger" / "src"),
        "DAGGER_MODULE": "team-x",
        "DAGGER_MAIN_OBJECT": "TeamX",
    }
    out = run([sys.executable, "-c", TEAM_REGISTER, "team_x:TeamX"], cwd=tmp_path, env=env).stdout
    text = json.dumps(json.loads(out))
    obj = [a["object"] for name, a in json.loads(out) if name == "withObject"][0]
    functions = {
        a["function"][0][1]["name"]: a["function"] for name, a in obj if name == "withFunction"
    }
    assert set(functions) == {"build", "test"}
    for fn in functions.values():
        source = [x[1] for x in fn if x[0] == "withArg"]
        assert [a["name"] for a in source] == ["source"]
        assert source[0]["defaultPath"] == "/" and "Directory" in json.dumps(source[0]["typeDef"])
    assert "Container" in json.dumps(functions["build"][0][1]["returnType"])
    assert "STRING_KIND" in json.dumps(functions["test"][0][1]["returnType"])
    assert "TeamX" in text


@pytest.mark.dagger
def test_team_dagger_module_calls_ours_on_a_live_engine(tmp_path, live_dagger) -> None:
    """What needs an engine: `dag.nbpipe()` exists only in the client `dagger develop`
    generates for the module's dependencies, so the queries the team module sends through
    it cannot be built offline (dagger-io has no codegen without an engine)."""
    scaffold.write_repo("team-x", "jupyter", tmp_path)
    conf = json.loads((tmp_path / "dagger.json").read_text())
    source = os.environ.get("NBPIPE_TEAM_DEP_SOURCE", "")
    if not source:
        # Our module by address needs a git host the engine can fetch from (none here). A local
        # dependency is refused by absolute path on v0.21.8 ("local module dep source path ...
        # is absolute"), and one outside the team's git repository escapes its context; so
        # this checkout's files (tracked and new, as `git ls-files` lists them) are vendored
        # into the team repository, a git repository of its own, and named by relative path.
        source = "./vendor/nbpipe"
        files = subprocess.run(
            ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
            cwd=REPO,
            capture_output=True,
            text=True,
            check=True,
        ).stdout.split("\0")
        for rel in filter(None, files):
            if (REPO / rel).is_file():
                dst = tmp_path / "vendor" / "nbpipe" / rel
                dst.parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(REPO / rel, dst)
    conf["dependencies"][0]["source"] = source
    (tmp_path / "dagger.json").write_text(json.dumps(conf))
    root = os.environ.get("NBPIPE_DAGGER_ROOT", "")
    if root:  # no Docker Hub here: our module builds on the root the engine's registry has
        main = next((tmp_path / ".dagger").rglob("main.py"))
        text = main.read_text()
        assert text.count("dag.nbpipe().") == 2  # the two calls (the docstring names it too)
        main.write_text(text.replace("dag.nbpipe().", f"dag.nbpipe(root={root!r})."))
    if source.startswith("./"):  # the team repository is the git repository it names it in
        for argv in (
            ["init", "-q"],
            ["add", "-A"],
            ["-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "team-x"],
        ):
            subprocess.run(["git", *argv], cwd=tmp_path, check=True, capture_output=True)
    r = subprocess.run(
        ["dagger", "develop"], cwd=tmp_path, capture_output=True, text=True, timeout=3600
    )
    assert r.returncode == 0, r.stderr
    assert (tmp_path / ".dagger" / "sdk").is_dir(), "dagger develop vendors the SDK"
    r = subprocess.run(
        ["dagger", "call", "build", "with-exec", "--args", "id", "stdout"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=3600,
    )
    assert r.returncode == 0, r.stderr
    assert "uid=1000(jovyan)" in r.stdout


def test_stable_api_is_listed_once_and_documented() -> None:
    for name in nbpipe.__all__:
        assert getattr(nbpipe, name) is not None, name
    readme = (REPO / "README.md").read_text()
    section = readme[readme.index("### Team API") :].split("\n## ", 1)[0]  # up to the next
    table = re.findall(r"^\| `(\w+)` \|", section.split("\n\n", 2)[2], re.M)
    assert sorted(table) == sorted(nbpipe.__all__), "README's Team API table lists nbpipe.__all__"
    changelog = (REPO / "CHANGELOG.md").read_text()
    assert f"\n## {nbpipe.__version__}\n" in changelog, "every version has its CHANGELOG section"
    assert scaffold.REQUIREMENT in readme and scaffold.REQUIREMENT in changelog


def test_import_nbpipe_needs_only_the_standard_library() -> None:
    code = (
        "import sys, nbpipe; heavy = {'yaml', 'typer', 'rich', 'dagger', 'httpx', "
        "'nbpipe.family', 'nbpipe.inputs.spec'} & set(sys.modules); print(sorted(heavy))"
    )
    assert run([sys.executable, "-c", code], cwd=REPO).stdout.strip() == "[]"
    lazy = "import nbpipe; print(nbpipe.spec.load.__module__, nbpipe.family.family.__module__)"
    assert run([sys.executable, "-c", lazy], cwd=REPO).stdout.split() == [
        "nbpipe.inputs.spec",
        "nbpipe.family",
    ]


def _calls_into_ours(source: str) -> dict[str, set[str]]:
    """Every `dag.nbpipe().<function>(<keywords>)` in a team module's source."""
    import ast

    calls: dict[str, set[str]] = {}
    for node in ast.walk(ast.parse(source)):
        if (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute)
            and isinstance(node.func.value, ast.Call)
            and ast.unparse(node.func.value.func) == "dag.nbpipe"
        ):
            assert not node.args, f"{ast.unparse(node)}: pass arguments by name"
            calls.setdefault(node.func.attr, set()).update(k.arg for k in node.keywords)
    return calls


@pytest.mark.parametrize("python", [False, True], ids=["spec", "python"])
def test_team_module_calls_only_what_our_module_registers(
    registered,  # noqa: F811  (the fixture imported above)
    tmp_path,
    python,
) -> None:
    """What can be checked offline of the team module's calls into ours: each function it
    calls through `dag.nbpipe()` is registered by our module, with those argument names
    and every required one given (the query itself: test_..._on_a_live_engine)."""
    scaffold.write_repo("team-x", "jupyter", tmp_path, python=python)
    calls = _calls_into_ours((tmp_path / ".dagger/src/team_x/main.py").read_text())
    assert set(calls) == {"build_catalog" if python else "build_spec", "test_container"}
    for fn, kwargs in calls.items():
        assert fn in registered, f"our module has no function {fn}"
        args = registered[fn]["args"]
        assert kwargs <= set(args), f"{fn}: no argument(s) {kwargs - set(args)}"
        required = {
            n
            for n, a in args.items()
            if "defaultValue" not in a
            and "defaultPath" not in a
            and '"optional": true' not in json.dumps(a)
        }
        assert required <= kwargs, f"{fn}: required argument(s) {required - kwargs} not given"
    assert "Container" in json.dumps(registered["build_spec"]["returns"])
    assert "Container" in json.dumps(registered["build_catalog"]["returns"])
    assert "Container" in json.dumps(registered["test_container"]["args"]["container"]["typeDef"])


def test_our_module_builds_and_tests_the_scaffolded_spec_with_valid_queries(tmp_path) -> None:
    """The team module's two calls, one hop short (ours called directly instead of through
    the generated `dag.nbpipe()`): build_spec on the team's repository at the path its
    module names, then test_container on the result; every query checked against the
    engine's API by the fake session of test_dagger_schema."""
    import ast

    from dagger import dag

    from nbpipe.family import family
    from nbpipe.inputs import spec as specs
    from nbpipe.pipelines import Nbpipe
    from nbpipe.pipelines.main import recipe_labels
    from nbpipe.recipe import platforms as plat
    from tests.fakes import dagger_engine as fake
    from tests.sdk.test_dagger_schema import answers, run

    scaffold.write_repo("team-x", "jupyter", tmp_path)
    main = ast.parse((tmp_path / ".dagger/src/team_x/main.py").read_text())
    path = next(
        n.value.value
        for n in main.body
        if isinstance(n, ast.Assign) and ast.unparse(n.targets[0]) == "SPEC"
    )
    session = fake.FakeSession(respond=answers())
    ctr = run(session, Nbpipe().build_spec, dag.host().directory(str(tmp_path)), path)
    image = specs.load(tmp_path / path).register(family()).resolve("team-x")
    session.labels = recipe_labels(image, plat.AMD64)
    out = run(session, Nbpipe().test_container, ctr)
    assert not session.errors, "\n\n".join(session.errors[:3])
    assert "== team-x (linux/amd64)" in out
    assert any("tabulate==0.9.0" in q for q in session.queries)  # the team's own step
