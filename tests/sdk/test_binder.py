"""Binder repositories, offline: what the recipe and its Dockerfile hold for our test
repositories (tests/binder/), and the one-line errors for what nbpipe does not build."""

from __future__ import annotations

import json
import shutil
import stat
from pathlib import Path

import pytest

from nbpipe.recipe import contract
from nbpipe.inputs import binder as repo2docker
from nbpipe import family as images
from nbpipe.recipe import platforms as plat
from nbpipe.recipe import steps as s
from nbpipe.recipe.catalog import Catalog
from nbpipe.engines import dockerfile
from nbpipe.errors import NbpipeError, SpecError

REPOS = Path(__file__).parents[1] / "binder"
REPO = REPOS / "repo"
SHIPPED = [".gitignore", "README.md", "binder/apt.txt", "binder/postBuild",
           "binder/requirements.txt", "binder/runtime.txt", "binder/start", "data/table.csv",
           "fails.ipynb", "passes.ipynb"]


@pytest.fixture()
def repo(tmp_path: Path) -> Path:
    """A copy of tests/binder/repo to change."""
    out = tmp_path / "repo"
    shutil.copytree(REPO, out)
    return out


def build(path: Path, _family: Catalog, **kw):
    """The repository's image on a fresh family (so one test may build several)."""
    spec = repo2docker.from_repo(path, name="r", **kw)
    return spec.register(images.family()).resolve("r")


def test_every_binder_file_becomes_its_step(family: Catalog) -> None:
    img = build(REPO, family)
    apt, pip, tree, post, server, *labels = img.steps
    assert apt == s.Apt(packages=("tree",))
    assert pip == s.Pip(packages=("python-slugify==8.0.4",))
    assert [rel for rel, _, _ in tree.files] == SHIPPED
    # postBuild: once, as jovyan, in the repository as shipped, with HOME there
    assert post.user == str(contract.NB_UID) and post.network
    assert post.script.splitlines()[:3] == [
        f"cd {contract.SKEL}", f"export HOME={contract.SKEL} "
        "XDG_CACHE_HOME=/tmp/nbpipe-postbuild-cache", "./binder/postBuild"]
    # start wraps the server: the parent's run script, its final exec through start
    assert isinstance(server, s.Service) and server.name == "jupyterlab"
    assert server.run.splitlines()[-1] == \
        f"exec {contract.SKEL}/binder/start /opt/venv/bin/jupyter lab"
    assert "exec 2>&1" in server.run  # the redirection is not the server's exec
    cfg = img.config().label_dict()
    assert cfg[contract.LABEL_DISTRIBUTIONS] == "python-slugify"
    assert json.loads(cfg[contract.LABEL_NOTEBOOKS]) == ["fails.ipynb", "passes.ipynb"]
    assert cfg[contract.LABEL_IMPORTS] == "jupyterlab,notebook,ipykernel"  # the parent's kept


def test_files_are_jovyans_group_writable_and_scripts_executable(family: Catalog,
                                                                 tmp_path: Path) -> None:
    tree = build(REPO, family).steps[2]
    modes = {rel: mode for rel, _, mode in tree.files}
    assert modes["binder/start"] == modes["binder/postBuild"] == 0o775
    assert modes["passes.ipynb"] == modes["data/table.csv"] == 0o664
    assert dict((r, c) for r, c, _ in tree.files)["fails.ipynb"] == \
        (REPO / "fails.ipynb").read_bytes()
    rendered = dockerfile.render(build(REPO, family), plat.AMD64)
    [copy] = [line for line in rendered.text.splitlines() if "/etc/nbpipe/skel/" in line]
    folder = json.loads(copy.split(" ", 2)[2])[0]
    assert copy.startswith("COPY --chown=1000:0 [") and "--chmod" not in copy  # modes kept
    assert json.loads(copy.split(" ", 2)[2])[1] == f"{contract.SKEL}/"
    rendered.write(tmp_path / "ctx")
    ctx = tmp_path / "ctx" / folder
    assert sorted(str(p.relative_to(ctx)) for p in ctx.rglob("*") if p.is_file()) == SHIPPED
    assert stat.S_IMODE((ctx / "binder" / "start").stat().st_mode) == 0o775
    assert stat.S_IMODE((ctx / "passes.ipynb").stat().st_mode) == 0o664
    assert stat.S_IMODE((ctx / "data").stat().st_mode) == 0o775


def test_a_changed_notebook_changes_the_digest_and_only_the_repository_layers(
        repo: Path, family: Catalog) -> None:
    before = build(repo, family)
    (repo / "passes.ipynb").write_text((repo / "passes.ipynb").read_text() + "\n")
    after = build(repo, family)
    assert before.digest() != after.digest()
    assert before.steps[:2] == after.steps[:2]  # apt and pip layers stay cached


def test_gitignored_paths_git_folders_and_links_out_are_not_shipped(
        repo: Path, family: Catalog) -> None:
    (repo / "scratch").mkdir()
    (repo / "scratch" / "big.bin").write_bytes(b"\0" * 10)
    (repo / "run.tmp").write_text("ignored by *.tmp\n")
    (repo / "data" / ".gitignore").write_text("private.csv\n")
    (repo / "data" / "private.csv").write_text("secret\n")
    (repo / ".git").mkdir()
    (repo / ".git" / "config").write_text("[core]\n")
    (repo / "table-link.csv").symlink_to("data/table.csv")  # inside: shipped as the file
    tree = build(repo, family).steps[2]
    files = {rel: content for rel, content, _ in tree.files}
    assert sorted(files) == sorted([*SHIPPED, "data/.gitignore", "table-link.csv"])
    assert files["table-link.csv"] == (repo / "data" / "table.csv").read_bytes()
    (repo / "passwd").symlink_to("/etc/passwd")
    with pytest.raises(SpecError, match=r"repo/passwd: 'passwd' leads outside .*repo "
                                        r"\(symlinks are followed\)"):
        build(repo, family)


def test_runtime_txt_is_honoured_when_the_parent_has_that_python(repo: Path,
                                                                  family: Catalog) -> None:
    (repo / "binder" / "runtime.txt").write_text("python-3.11.4\n")  # X.Y is what counts
    build(repo, family)
    (repo / "binder" / "runtime.txt").write_text("python-3.10\n")
    with pytest.raises(SpecError) as exc:
        build(repo, family)
    msg = str(exc.value)
    assert msg.startswith(f"{repo / 'binder' / 'runtime.txt'}: asks for python-3.10, but the "
                          "parent jupyter has Python 3.11"), msg
    assert "\n" not in msg


@pytest.mark.parametrize("text, words", [
    ("r-4.1-2022-01-01", "asks for R (r-4.1-2022-01-01)"),
    ("julia-1.9", "'julia-1.9' is not a runtime nbpipe knows; write python-X.Y"),
])
def test_other_runtimes_are_named(repo: Path, family: Catalog, text: str, words: str) -> None:
    (repo / "binder" / "runtime.txt").write_text(text + "\n")
    with pytest.raises(SpecError, match="runtime.txt: " + words.replace("(", r"\(")
                       .replace(")", r"\)")):
        build(repo, family)


def test_python_and_server_must_exist_in_the_parent(repo: Path, family: Catalog) -> None:
    with pytest.raises(SpecError, match="asks for python-3.11, but the parent base declares "
                                        "no Python"):
        build(repo, family, parent="base")
    (repo / "binder" / "runtime.txt").unlink()
    with pytest.raises(SpecError, match="start wraps the server, but the parent base declares "
                                        "no supervised server"):
        build(repo, family, parent="base")


def test_codeserver_start_wraps_code_server(repo: Path, family: Catalog) -> None:
    img = build(repo, family, parent="codeserver-python")
    [server] = [st for st in img.steps if isinstance(st, s.Service)]
    assert server.name == "code-server"
    assert f"exec {contract.SKEL}/binder/start /usr/local/bin/code-server \\" in server.run


def test_unsupported_binder_files_are_all_named(repo: Path, family: Catalog) -> None:
    (repo / "binder" / "install.R").write_text('install.packages("ggplot2")\n')
    (repo / "binder" / "Project.toml").write_text("[deps]\n")
    with pytest.raises(SpecError) as exc:
        build(repo, family)
    assert str(exc.value) == (
        f"--from-repo {repo}: Binder files nbpipe does not build: binder/install.R (R "
        "packages), binder/Project.toml (Julia packages); remove them, or put what they "
        "install in requirements.txt or apt.txt")


def test_binder_folder_takes_precedence_over_the_top_level(repo: Path, family: Catalog) -> None:
    (repo / "requirements.txt").write_text("not-read==1.0\n")
    (repo / "install.R").write_text("# not read either: binder/ holds the configuration\n")
    assert build(repo, family).steps[1] == s.Pip(packages=("python-slugify==8.0.4",))
    (repo / "binder").rename(repo / ".binder")  # .binder/ works the same way
    img = build(repo, family)
    assert img.steps[1] == s.Pip(packages=("python-slugify==8.0.4",))
    assert img.steps[3].script.splitlines()[2] == "./.binder/postBuild"
    (repo / "binder").mkdir()
    with pytest.raises(SpecError, match="has both binder/ and .binder/"):
        build(repo, family)


def test_environment_yml_takes_precedence_over_requirements_txt(family: Catalog) -> None:
    img = build(REPOS / "conda", family)
    assert img.steps[0] == s.Pip(packages=("python-slugify==8.0.4",))  # not requirements.txt
    assert [rel for rel, _, _ in img.steps[1].files] == ["README.md", "environment.yml",
                                                         "requirements.txt"]
    assert img.config().label_dict()[contract.LABEL_DISTRIBUTIONS] == "python-slugify"
    assert contract.LABEL_NOTEBOOKS not in img.config().label_dict()  # it ships none


def test_environment_yml_python_pin_is_checked(tmp_path: Path, family: Catalog) -> None:
    shutil.copytree(REPOS / "conda", tmp_path / "conda")
    env = tmp_path / "conda" / "environment.yml"
    env.write_text(env.read_text().replace("python=3.11", "python=3.9"))
    with pytest.raises(SpecError, match=r"environment.yml: asks for python=3.9, but the parent "
                                        r"jupyter has Python 3.11"):
        build(tmp_path / "conda", family)


@pytest.mark.parametrize("settings, notebooks", [
    ("probes:\n  notebooks: false\n", None),
    ("probes:\n  notebooks: [passes.ipynb]\n  notebook_timeout: 120\n", ["passes.ipynb"]),
])
def test_notebooks_probe_opt_out_or_choice(repo: Path, family: Catalog, settings: str,
                                           notebooks: list[str] | None) -> None:
    (repo / "binder" / "nbpipe.yaml").write_text(settings)
    labels = build(repo, family).config().label_dict()
    got = labels.get(contract.LABEL_NOTEBOOKS)
    assert (json.loads(got) if got else None) == notebooks
    assert labels.get(contract.LABEL_NOTEBOOK_TIMEOUT) == ("120" if notebooks else None)


@pytest.mark.parametrize("settings, words", [
    ("probes:\n  notebooks: [missing.ipynb]\n", "'missing.ipynb' is not a notebook the "
     "repository ships"),
    ("probes:\n  notebooks: yes please\n", "give false, or a list of notebooks"),
    ("probes:\n  notebook_timeout: -1\n", "notebook_timeout: give seconds"),
    ("build: fast\n", "only 'probes:' with 'notebooks:'"),
])
def test_bad_settings_are_one_line(repo: Path, family: Catalog, settings: str,
                                   words: str) -> None:
    (repo / "binder" / "nbpipe.yaml").write_text(settings)
    with pytest.raises(SpecError, match=f"binder/nbpipe.yaml: .*{words}"):
        build(repo, family)


def test_home_tree_paths_stay_in_home() -> None:
    for bad in ("../x", "/etc/passwd", "a//b", "./a", "a\nb", ""):
        with pytest.raises(NbpipeError, match="must be a plain path relative to"):
            s.HomeTree(files=((bad, b"", 0o644),))


def test_yaml_specs_and_recipes_declare_notebooks_too(tmp_path: Path, family: Catalog) -> None:
    from nbpipe.inputs import spec

    (tmp_path / "t.yaml").write_text(
        "name: t\nparent: jupyter\nprobes:\n  notebooks: [/opt/team/check.ipynb]\n"
        "  notebook_timeout: 300\n  distributions: [python-slugify]\n")
    labels = spec.load(tmp_path / "t.yaml").register(family).resolve("t").config().label_dict()
    assert json.loads(labels[contract.LABEL_NOTEBOOKS]) == ["/opt/team/check.ipynb"]
    assert labels[contract.LABEL_NOTEBOOK_TIMEOUT] == "300"
    (tmp_path / "t.yaml").write_text("name: t\nparent: jupyter\nprobes:\n"
                                     "  notebooks: [check.py]\n")
    with pytest.raises(SpecError, match=r"t.yaml:4: probes.notebooks: 'check.py' is not a "
                                        "path to a .ipynb file"):
        spec.load(tmp_path / "t.yaml")
    img = family.resolve("jupyter").with_probes(notebooks=("a.ipynb",))
    img = img.with_probes(notebooks=("b.ipynb", "a.ipynb"))  # added to, never replaced
    assert json.loads(img.config().label_dict()[contract.LABEL_NOTEBOOKS]) == ["a.ipynb",
                                                                                "b.ipynb"]


def test_dagger_lowering_copies_the_tree_with_owner_and_modes(family: Catalog) -> None:
    pytest.importorskip("dagger")
    from nbpipe.engines import dagger as lowering

    img = build(REPO, family)
    sels = list(lowering.lower(img, plat.AMD64)._ctx.selections)
    [copy] = [x for x in sels if x.name == "withDirectory"]
    assert copy.args["path"] == contract.SKEL and copy.args["owner"] == "1000:0"
    made = {f.args["path"]: f.args.get("permissions") for f in copy.args["source"]._ctx.selections
            if f.name in ("withNewFile", "withNewDirectory")}
    assert made["binder/start"] == 0o775 and made["passes.ipynb"] == 0o664
    assert made["data"] == 0o775
