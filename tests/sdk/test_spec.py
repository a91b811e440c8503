"""YAML specs and Binder repos: good ones become images; each bad one gets one line that
names the file, the line and the field."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from nbpipe import family as images
from nbpipe.inputs import binder as repo2docker, spec
from nbpipe.errors import SpecError

EXAMPLE = Path(__file__).parents[2] / "examples" / "team-astro"

GOOD = """\
name: team-x
parent: jupyter
apt: [libcfitsio10]
pip: [astropy==8.0.2]
env: {A: "1"}
"""

# (spec text, expected message fragment): every error says file:line: field: problem
BAD = [
    ("parent: jupyter\n", ":1: name: required"),
    ("name: x\n", ":1: parent: required"),
    ("name: x\nparent: jupyter\npackages: [a]\n", ":3: packages: unknown key; allowed here: name"),
    ("name: x\nparent: jupyter\npip: numpy\n", ":3: pip: must be a list"),
    ("name: x\nparent: jupyter\npip: [numpy=1.0]\n", ":3: pip: 'numpy=1.0' is not a requirement"),
    ("name: x\nparent: jupyter\napt: [Not_A_Package]\n", ":3: apt: 'Not_A_Package' is not a Debian package"),
    ("name: x\nparent: jupyter\nenv: {A: 1}\n", ":3: env.A: '1' is not a string: quote it"),
    ("name: x\nparent: jupyter\nenv: {9A: x}\n", ":3: env.9A: '9A' is not a valid variable name"),
    ("name: x\nparent: jupyter\nservices:\n  web: {finish: x}\n", ":4: services.web: a service needs a 'run' script"),
    ("name: x\nparent: jupyter\nservices:\n  web: {run: x, port: 1}\n", ":4: services.web.port: unknown key; allowed here: run, finish"),
    ("name: x\nparent: jupyter\nplatforms: [linux/s390x]\n", ":3: platforms[0]: 'linux/s390x': use linux/amd64 or linux/arm64"),
    ("name: x\nparent: jupyter\nfiles:\n  - {path: /a}\n", ":4: files[0]: give exactly one of 'source'"),
    ("name: x\nparent: jupyter\nfiles:\n  - {path: /a, content: x, mode: '999'}\n", ":4: files[0].mode: '999' is not an octal mode"),
    ("name: x\nparent: jupyter\nfiles:\n  - {path: /a, content: x, mode: '10000'}\n", ":4: files[0].mode: '10000' is not a file mode"),
    ("name: x\nparent: jupyter\nfiles:\n  - {path: /a, source: nope.txt}\n", ":4: files[0].source: no such file 'nope.txt' next to the spec"),
    ("name: x\nparent: jupyter\ninit_scripts:\n  10-x: echo hi\n", ":4: init_scripts.10-x: an init script starts with a #! line"),
    ("name: X Y\nparent: jupyter\n", ":1: name: 'X Y' is not an image name"),
    ("name: x\nparent: ghcr.io/acme/img:latest\n", ":2: parent: 'ghcr.io/acme/img:latest' is not a digest-pinned image reference"),
    ("name: x\nparent: jupyter\nprobes: {imports: numpy}\n", ":3: probes.imports: must be a list"),
    ("name: x\nparent: [jupyter\n", ":2: not valid YAML"),
    ("name: x\nparent: jupyter\npip: {requirements: nope.txt}\n", ":3: pip.requirements: no such file"),
    ("name: x\nparent: jupyter\npip: {packages: [a==1], installer: conda}\n",
     ":3: pip.installer: 'conda' is not an installer; give one of uv, pip"),
    ("name: x\nparent: jupyter\npip: {installer: pip}\n",
     ":3: pip: give either requirements: FILE or packages: [...]"),
    ("name: x\nparent: jupyter\npip: {packages: [a==1], index: x}\n",
     ":3: pip.index: unknown key; allowed here: requirements, packages, installer, beside"),
    ("name: x\nparent: jupyter\npip: {packages: [a==1], beside: 'yes'}\n",
     ":3: pip.beside: must be true or false"),
    ("name: x\nparent: jupyter\npip: {packages: [a==1], beside: [true]}\n",
     ":3: pip.beside: must be true or false"),
    ("name: x\nparent: jupyter\npip: {packages: [a==1], beside: true}\n",
     ":3: pip.beside: true runs pip at the same time as this spec's apt step, and it has none"),
]


def write(tmp_path: Path, text: str, name: str = "team.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def test_good_spec_becomes_an_image_on_its_parent(tmp_path) -> None:
    sp = spec.load(write(tmp_path, GOOD))
    cat = sp.register(images.family())
    img = cat.resolve("team-x")
    assert cat.parent_name("team-x") == "jupyter"
    assert img.parent == cat.resolve("jupyter")
    assert [st.describe() for st in img.steps[:3]] == [
        "apt libcfitsio10", "pip astropy==8.0.2", "env A=1"]


def test_a_spec_may_keep_pip_as_its_installer(tmp_path) -> None:
    (tmp_path / "req.txt").write_text("astropy==8.0.2\n")
    for pip in ("{packages: [astropy==8.0.2], installer: pip}",
                "{requirements: req.txt, installer: pip}"):
        sp = spec.load(write(tmp_path, f"name: team-x\nparent: jupyter\npip: {pip}\n"))
        step = sp.register(images.family()).resolve("team-x").steps[0]
        assert (step.installer, step.packages) == ("pip", ("astropy==8.0.2",))
    sp = spec.load(write(tmp_path, GOOD))
    assert sp.register(images.family()).resolve("team-x").steps[1].installer == "uv"


def test_a_spec_may_run_its_pip_step_beside_its_apt_step(tmp_path) -> None:
    text = "name: team-x\nparent: jupyter\napt: [libcfitsio10]\npip: {packages: [astropy==8.0.2], beside: %s}\n"
    for given, want in (("true", True), ("false", False)):
        img = spec.load(write(tmp_path, text % given)).register(images.family()).resolve("team-x")
        assert img.steps[1].beside is want
        runs = [op for op in img.ops("linux/amd64") if op.__class__.__name__ == "Exec"]
        assert len(runs) == (1 if want else 2)  # one RUN for both, or one each


@pytest.mark.parametrize("text,message", BAD, ids=[m for _, m in BAD])
def test_bad_spec_names_file_line_and_field(tmp_path, text: str, message: str) -> None:
    path = write(tmp_path, text)
    with pytest.raises(SpecError) as exc:
        spec.load(path).register(images.family())
    assert str(exc.value).startswith(str(path))
    assert message in str(exc.value)
    assert "\n" not in str(exc.value)


def test_unknown_parent_lists_the_family(tmp_path) -> None:
    path = write(tmp_path, "name: x\nparent: jupyterr\n")
    with pytest.raises(SpecError, match="parent: unknown image 'jupyterr'; use one of base"):
        spec.load(path).register(images.family())


def test_pinned_ref_parent_is_a_root(tmp_path) -> None:
    digest = "sha256:" + "a" * 64
    sp = spec.load(write(tmp_path, f"name: x\nparent: ghcr.io/acme/img@{digest}\npip: [a==1]\n"))
    img = sp.register(images.family()).resolve("x")
    assert img.root.pinned("linux/amd64") == f"ghcr.io/acme/img@{digest}"


def test_example_spec_and_module_are_the_same_image() -> None:
    sys.path.insert(0, str(EXAMPLE))
    try:
        import team_astro
    finally:
        sys.path.remove(str(EXAMPLE))
    from_yaml = spec.load(EXAMPLE / "team-astro.yaml").register(images.family())
    assert from_yaml.resolve("team-astro").digest() == \
        team_astro.catalog().resolve("team-astro").digest()


def test_spec_validate_cli_one_line(tmp_path) -> None:
    path = write(tmp_path, "name: x\nparent: jupyter\npip: [numpy=1.0]\n")
    r = subprocess.run([sys.executable, "-m", "nbpipe", "spec", "validate", str(path)],
                       capture_output=True, text=True)
    assert r.returncode == 1 and r.stderr.count("\n") == 1
    assert f"{path}:3: pip:" in r.stderr
    ok = subprocess.run([sys.executable, "-m", "nbpipe", "spec", "validate",
                         str(EXAMPLE / "team-astro.yaml")], capture_output=True, text=True)
    assert ok.returncode == 0 and ": ok: team-astro on jupyter" in ok.stdout


def test_new_writes_a_spec_that_validates(tmp_path) -> None:
    r = subprocess.run([sys.executable, "-m", "nbpipe", "new", "team-b", "--parent",
                        "jupyter-scipy", "--out", str(tmp_path)], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    sp = spec.load(tmp_path / "team-b.yaml")
    assert sp.parent == "jupyter-scipy"
    sp.register(images.family()).resolve("team-b")


def test_repo2docker_conda_only_packages_are_reported(tmp_path) -> None:
    (tmp_path / "environment.yml").write_text("dependencies:\n  - numpy\n  - gdal=3.8\n")
    with pytest.raises(SpecError, match="conda-only packages numpy, gdal=3.8"):
        repo2docker.from_repo(tmp_path)


def test_a_file_mode_up_to_7777_is_kept(tmp_path) -> None:
    sp = spec.load(write(tmp_path, GOOD + "files:\n  - {path: /a, content: x, mode: '7777'}\n"))
    img = sp.register(images.family()).resolve("team-x")
    assert [st.mode for st in img.steps if st.kind == "file"] == [0o7777]


def test_a_source_file_over_64_mib_is_refused(tmp_path) -> None:
    big = tmp_path / "big.bin"
    with big.open("wb") as f:
        f.truncate((64 << 20) + 1)  # sparse: no 64 MiB written
    with pytest.raises(SpecError) as exc:
        spec.load(write(tmp_path, GOOD + "files:\n  - {path: /a, source: big.bin}\n"))
    assert str(exc.value) == (f"{tmp_path / 'team.yaml'}:7: files[0].source: larger than "
                              "67,108,864 bytes; nbpipe refuses bigger files")
