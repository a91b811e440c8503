"""Every conversion of input is guarded and every message is plain (issue 21, kinds 5
and 6): numbers, dates and tags refused naming file, line and field; YAML merge keys
merged as YAML does; environment.yml named in its own errors; a UTF-8 BOM accepted as
pip accepts it; file names never printed with raw control characters."""

from __future__ import annotations

import datetime
import time
import tracemalloc
from pathlib import Path

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from nbpipe.inputs import binder as repo2docker, requirements, safe_io, spec
from nbpipe.engines import dockerfile
from nbpipe.errors import NbpipeError, SpecError
from nbpipe.family import family
from tests.sdk import bounded

HEAD = "name: team\nparent: jupyter\n"


def load(tmp_path: Path, body: str) -> spec.Spec:
    path = tmp_path / "team.yaml"
    path.write_text(HEAD + body)
    return spec.load(path)


def export(sp: spec.Spec) -> str:
    return dockerfile.render(sp.register(family()).resolve(sp.name), "linux/amd64").text


# -- numbers ---------------------------------------------------------------------------

@pytest.mark.parametrize("value", ['"²"', '"٣"', "9" * 5000, '"0x10"', "-5", '"1e3"', '" 60"',
                                   "0", "86401", "[60]"])
def test_notebook_timeout_is_refused_naming_file_line_field(tmp_path: Path, value: str) -> None:
    with pytest.raises(SpecError) as exc:
        load(tmp_path, f"probes:\n  notebook_timeout: {value}\n")
    message = str(exc.value)
    assert message.startswith(f"{tmp_path / 'team.yaml'}:4: probes.notebook_timeout: ")
    assert "\n" not in message and len(message) < 400


def test_a_good_notebook_timeout_is_kept(tmp_path: Path) -> None:
    img = load(tmp_path, "probes:\n  notebook_timeout: 600\n").register(family()).resolve("team")
    assert img.config().label_dict()["io.nbpipe.probe.notebook-timeout"] == "600"


def test_superscript_two_through_the_cli_is_one_line(tmp_path: Path) -> None:
    (tmp_path / "team.yaml").write_text(HEAD + 'probes: {notebook_timeout: "²"}\n')
    run = bounded.nbpipe("spec", "validate", "team.yaml", cwd=tmp_path, timeout=20)
    run.one_line_error("team.yaml:3: probes.notebook_timeout: '²' is not a number of seconds")


@pytest.mark.parametrize("mode", ['"０６４４"', '"' + "7" * 5000 + '"', '"0o644"', '"-644"'])
def test_file_modes_are_ascii_octal_of_a_modes_length(tmp_path: Path, mode: str) -> None:
    with pytest.raises(SpecError, match=r"team.yaml:3: files\[0\].mode: .* is not an octal mode"):
        load(tmp_path, f"files: [{{path: /a, content: x, mode: {mode}}}]\n")


@pytest.mark.parametrize("text,field", [
    ("probes:\n  notebook_timeout: " + "9" * 5000 + "\n", "2: probes.notebook_timeout: a number "
     "of 5,000 digits"),
    ("probes:\n  notebook_timeout: 1_000_000_" + "0" * 200 + "\n", "2: probes.notebook_timeout: "
     "a number of 207 digits"),
    ("probes:\n  notebooks: false\n  notebook_timeout: 1." + "5" * 500 + "\n",
     "3: probes.notebook_timeout: a number of 502 characters"),
])
def test_numbers_in_nbpipe_yaml_are_guarded(tmp_path: Path, text: str, field: str) -> None:
    (tmp_path / "requirements.txt").write_text("numpy==2.1.0\n")
    (tmp_path / "nbpipe.yaml").write_text(text)
    with pytest.raises(SpecError) as exc:
        repo2docker.from_repo(tmp_path)
    assert str(exc.value).startswith(f"{tmp_path / 'nbpipe.yaml'}:{field}")


# -- dates, tags, keys -----------------------------------------------------------------

@pytest.mark.parametrize("text,line", [("name: 2024-02-30\n", "1: name"),
                                       ("a:\n  when: [ok, 2023-02-29]\n", "2: a.when[1]"),
                                       ("at: 2024-01-01 25:61:00\n", "1: at")])
def test_impossible_dates_are_refused_naming_line_and_field(text: str, line: str) -> None:
    with pytest.raises(NbpipeError) as exc:
        safe_io.load_yaml_text(text, "x.yml")
    assert str(exc.value).startswith(f"x.yml:{line}: ") and "not a valid timestamp" in str(exc.value)


def test_real_dates_and_plain_values_still_load() -> None:
    doc = "d: 2024-02-29\nn: 0x1F\nf: .inf\nb: yes\nz: ~\ns: '2024-02-30'\nt: 1:30\n"
    assert safe_io.load_yaml_text(doc, "x.yml") == yaml.safe_load(doc) == {
        "d": datetime.date(2024, 2, 29), "n": 31, "f": float("inf"), "b": True, "z": None,
        "s": "2024-02-30", "t": 90}


@pytest.mark.parametrize("text,words", [
    ("a: !!binary aGk=\n", "!!binary"), ("a: !!set {x, y}\n", "!!set"),
    ("a: !!omap [{x: 1}]\n", "!!omap"), ("a: !team x\n", "!team"),
    ("a: !!python/object:os.system x\n", "python/object"),
    ("? [a, b]\n: 1\n", "a key must be plain text"),
    ("a: 1\nb: 2\na: 3\n", "3: a: given twice"),
    ("a: {<<: 1}\n", "1: a: a merge key (<<) takes a mapping"),
    ("a: {<<: [{x: 1}, 2]}\n", "a merge key (<<) takes a mapping or a list of mappings"),
])
def test_odd_yaml_is_refused_in_words(text: str, words: str) -> None:
    with pytest.raises(NbpipeError) as exc:
        safe_io.load_yaml_text(text, "x.yml")
    message = str(exc.value)
    assert words in message and message.startswith("x.yml:") and "Node" not in message


# -- merge keys --------------------------------------------------------------------------

def test_merge_keys_in_a_spec_merge_as_yaml_does(tmp_path: Path) -> None:
    merged = load(tmp_path, "labels: &d {team: astro, tier: '1'}\n"
                            "env:\n  <<: [*d, {extra: 'x', team: other}]\n  tier: '2'\n")
    written = load(tmp_path, "labels: {team: astro, tier: '1'}\n"
                             "env: {team: astro, tier: '2', extra: 'x'}\n")
    env = [line for line in export(merged).splitlines() if line.startswith("ENV ")]
    assert sorted(env) == sorted(line for line in export(written).splitlines()
                                 if line.startswith("ENV "))
    assert 'ENV team="astro"' in env and 'ENV tier="2"' in env  # first listed, then explicit


def test_a_mapping_where_an_env_value_goes_is_refused_in_words(tmp_path: Path) -> None:
    with pytest.raises(SpecError) as exc:
        load(tmp_path, "env: {A: {<<: {x: 1}}}\n")
    assert str(exc.value) == f"{tmp_path / 'team.yaml'}:3: env.A: must be a string"


SCALARS = st.one_of(st.integers(-10**6, 10**6), st.booleans(), st.none(),
                    st.text(alphabet="abcxyz -:", max_size=6), st.dates(),
                    st.floats(allow_nan=False, allow_infinity=False, width=32))
KEYS = st.sampled_from(["a", "b", "c", "d", "e"])


@settings(max_examples=60, deadline=None,
          suppress_health_check=[HealthCheck.too_slow])
@given(bases=st.lists(st.dictionaries(KEYS, SCALARS, max_size=4), min_size=1, max_size=4),
       docs=st.lists(st.tuples(st.lists(st.integers(0, 3), min_size=1, max_size=3),
                               st.dictionaries(KEYS, SCALARS, max_size=3)), max_size=5),
       reuse=st.lists(st.integers(0, 3), max_size=6))
def test_anchors_aliases_and_merges_load_as_pyyaml_loads_them(bases, docs, reuse) -> None:
    """A differential property: whatever PyYAML's own loader makes of a document with
    anchors, aliases and merge keys, nbpipe's guarded reader makes the same."""
    lines = []
    for i, b in enumerate(bases):
        lines.append(f"base{i}: &b{i} " + yaml.safe_dump(b, default_flow_style=True,
                                                         width=10**6).strip())
    for j, (merge, own) in enumerate(docs):
        names = [f"*b{k % len(bases)}" for k in merge]
        body = yaml.safe_dump(own, default_flow_style=True, width=10**6).strip()[1:-1]
        lines.append(f"doc{j}: {{<<: [{', '.join(names)}]{', ' if body else ''}{body}}}")
    lines.append("again: [" + ", ".join(f"*b{k % len(bases)}" for k in reuse) + "]")
    text = "\n".join(lines) + "\n"
    tracemalloc.start()
    start = time.monotonic()
    try:
        ours = safe_io.load_yaml_text(text, "x.yml")
    finally:
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
    assert time.monotonic() - start < 2 and peak < 20 << 20
    assert ours == yaml.safe_load(text)
    for j in range(len(docs)):  # and in PyYAML's key order too
        assert list(ours[f"doc{j}"]) == list(yaml.safe_load(text)[f"doc{j}"])


# -- environment.yml and requirements.txt ---------------------------------------------

@pytest.mark.parametrize("entry,words", [
    ("--index-url https://evil.example/simple", "pip options like --index-url are not supported"),
    ("-r other.txt", "pip options like -r"), ("numpy=1.0", "is not a requirement"),
    ("'a\\nRUN id'", "is not a requirement"),
])
def test_a_bad_pip_entry_in_environment_yml_names_the_file(tmp_path: Path, entry: str,
                                                          words: str) -> None:
    (tmp_path / "environment.yml").write_text(
        f"name: x\ndependencies:\n  - python=3.11\n  - pip:\n    - requests\n    - {entry}\n")
    with pytest.raises(SpecError) as exc:
        repo2docker.from_repo(tmp_path)
    message = str(exc.value)
    assert message.startswith(f"{tmp_path / 'environment.yml'}:6: dependencies[1].pip[1]: ")
    assert words in message and "\n" not in message


def test_a_bad_pip_entry_through_the_cli_names_environment_yml(tmp_path: Path) -> None:
    (tmp_path / "environment.yml").write_text("dependencies:\n  - pip:\n    - --pre\n")
    run = bounded.nbpipe("export", "--from-repo", ".", cwd=tmp_path, timeout=30)
    run.one_line_error("environment.yml:3: dependencies[0].pip[0]: pip options like --pre")


def test_an_impossible_date_as_the_environment_name_is_not_converted(tmp_path: Path) -> None:
    (tmp_path / "environment.yml").write_text(
        "name: 2024-02-30\ndependencies:\n  - pip:\n    - requests==2.32.3\n")
    sp = repo2docker.from_repo(tmp_path)  # the name is never used, so never converted
    assert "requests==2.32.3" in export(sp)


@pytest.mark.parametrize("text", ["\ufeffnumpy==2.1.0\npandas\n",
                                  "\ufeffnumpy==2.1.0\r\npandas\r\n",
                                  "\ufeff# a comment first\nnumpy==2.1.0\npandas\n"])
def test_a_utf8_bom_in_requirements_is_accepted_as_pip_does(tmp_path: Path, text: str) -> None:
    f = tmp_path / "requirements.txt"
    f.write_bytes(text.encode())
    assert requirements.pip(f) == ["numpy==2.1.0", "pandas"]
    assert "numpy==2.1.0 pandas" in export(repo2docker.from_repo(tmp_path))


def test_a_bom_in_the_middle_is_still_refused_naming_the_line(tmp_path: Path) -> None:
    f = tmp_path / "requirements.txt"
    f.write_text("numpy==2.1.0\n\ufeffpandas\n")
    with pytest.raises(SpecError, match=r"requirements.txt:2: pip: '\\ufeffpandas' is not"):
        requirements.pip(f)


# -- names on the terminal ---------------------------------------------------------------

def test_spec_validate_never_prints_a_file_name_raw(tmp_path: Path) -> None:
    name = "a\x1b]0;owned\x07\x1b[31mred.yaml"
    (tmp_path / name).write_text(HEAD)
    run = bounded.nbpipe("spec", "validate", name, cwd=tmp_path, timeout=20)
    assert run.rc == 0, run.err
    assert "\x1b" not in run.out and "\x07" not in run.out
    assert run.out.startswith("a\\x1b]0;owned\\x07\\x1b[31mred.yaml: ok: team on jupyter")


def test_export_never_prints_an_output_name_raw(tmp_path: Path) -> None:
    (tmp_path / "team.yaml").write_text(HEAD)
    run = bounded.nbpipe("export", "-f", "team.yaml", "--out", "o\x1b[2Jut", cwd=tmp_path,
                         timeout=20)
    assert run.rc == 0 and "\x1b" not in run.err and "o\\x1b[2Jut" in run.err, run.err
