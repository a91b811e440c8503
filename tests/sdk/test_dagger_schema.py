"""Every request the Dagger module and client mode send is valid for the pinned engine.

Each function body of the module runs for real through dagger-io's own query builder and
connection code; only the transport is replaced (tests/fakes/dagger_engine.py), by a session that
validates each request with graphql-core against the engine's API and answers it.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import anyio
import graphql
import pytest

from nbpipe.recipe import platforms as plat
from nbpipe.recipe.catalog import Catalog
from nbpipe.recipe.naming import content_tag
from nbpipe.recipe.options import BuildOptions
from tests.fakes import dagger_engine as fake

dagger = pytest.importorskip("dagger")

from dagger import dag  # noqa: E402

from nbpipe.pipelines import Nbpipe  # noqa: E402
from nbpipe.pipelines.main import recipe_labels  # noqa: E402

PASSWORD = "s3cr3t-registry-token-7f1c"
EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "team-astro"


PROBES_PASSED = json.dumps(
    {"results": [{"name": "http", "status": "passed", "message": "200", "seconds": 0.1}]}
) + "\n"


def answers(plan: dict | None = None, exit_code: int = 0):
    """What the engine would answer the module's leaf questions with."""
    def respond(call: fake.Call, chain: tuple[fake.Call, ...]):
        match call.name:
            case "defaultPlatform" | "platform":
                return plat.AMD64
            case "exitCode":
                return exit_code
            case "stdout":  # what `python3 -m nbpipe.probes` prints: its lines, then JSON
                return "PASSED  http  200\n" + PROBES_PASSED
            case "contents":
                return json.dumps(plan or {"digests": {}})
            case "export":  # Host.directory(path).export(path): copy it, as the engine would
                src = next(c.args["path"] for c in chain if c.name == "directory")
                shutil.copytree(src, call.args["path"], dirs_exist_ok=True)
                return call.args["path"]
        return fake.NOTHING
    return respond


def run(session: fake.FakeSession, fn, *args, **kwargs):
    async def main():
        with fake.engine(session):
            result = await fn(*args, **kwargs)
            if isinstance(result, dagger.Container):  # the runtime returns the object's ID
                await result.id()
            return result
    return anyio.run(main)


@pytest.fixture(scope="module")
def session() -> fake.FakeSession:
    """One session for the whole module run: every query lands in it."""
    return fake.FakeSession(respond=answers())


@pytest.fixture(scope="module")
def module_queries(session) -> fake.FakeSession:
    """Run every function of the module with the arguments users give them."""
    nb = Nbpipe()
    family = nb._catalog()
    assert nb.images() == family.order()
    for fmt in ("text", "mermaid", "dot"):
        assert nb.graph(fmt).strip()

    ca = dag.secret("file:///etc/ssl/certs/ca-certificates.crt")
    for p in plat.ALL:  # every image's lowering: client mode and `ci` below
        for bundle in (None, ca):
            run(session, nb.build, "jupyter-scipy", dagger.Platform(p), bundle)
    run(session, nb.build, "jupyter-scipy", None, ca, dag.host().directory("/opt/wheels"), True)
    run(session, nb.build, "jupyter", dagger.Platform(plat.ARM64), None, None, True)

    assert "SKIPPED smoke-cuda" in run(session, nb.test, "jupyter-pytorch-cuda")
    assert "smoke-cuda: PASSED  http  200" in run(session, nb.test, "jupyter-pytorch-cuda", None, "cuda")
    assert "SKIPPED smoke-gaudi: Dagger passes no gaudi device" in \
        run(session, nb.test, "jupyter-pytorch-gaudi", None, "gaudi")
    run(session, nb.test, "jupyter-scipy", dagger.Platform(plat.AMD64), "", ca)

    run(session, nb.publish, "jupyter", "ghcr.io/acme/jupyter", None, ["latest"], None,
        "acme-bot", dag.secret("env:REGISTRY_PASSWORD"))
    run(session, nb.publish, "codeserver", "registry.local:5000/codeserver")

    assert "jupyter-scipy" in run(session, nb.ci)
    plan = {"digests": family.digests(plat.AMD64)}
    plan["digests"]["jupyter-pytorch"] = "sha256:" + "0" * 64
    session.respond = answers(plan)
    out = run(session, nb.ci, dag.host().file("plan.json"))
    assert out.split()[0::2] == ["jupyter-pytorch"]  # its children's recipes did not change
    before = len(session.queries)
    run(session, nb.ci, dag.host().file("plan.json"), "", None, ["jupyter-pytorch"],
        "ghcr.io/acme")
    jupyter = family.resolve("jupyter")
    assert f'address: "ghcr.io/acme/jupyter:{content_tag(jupyter)}"' in "".join(session.queries[before:]), \
        "one ci job per image: unchanged ancestors come from the registry"

    session.respond = answers()
    spec = run(session, nb.build_spec, dag.host().directory(str(EXAMPLE)), "team-astro.yaml")
    assert isinstance(spec, dagger.Container)
    ctr = run(session, nb.build, "jupyter")
    session.labels = recipe_labels(family.resolve("jupyter"), plat.AMD64)
    assert "== jupyter (linux/amd64)" in run(session, nb.test_container, ctr)
    session.labels = {}
    return session


def test_every_module_query_is_valid_for_the_engine(module_queries) -> None:
    s = module_queries
    print(f"\n{len(s.queries)} module queries validated against the engine's schema"
          f"{' and ' + str(fake.real_schema_path()) if fake.real_schema_path() else ''}")
    assert not s.errors, "\n\n".join(s.errors[:3])
    assert len(s.queries) > 100
    text = "\n".join(s.queries)
    for field in ("withRegistryAuth", "publish", "withServiceBinding", "experimentalWithAllGPUs",
                  "withMountedSecret", "withMountedCache", "withRootfs", "withMountedDirectory",
                  "export", "labels"):
        assert field in text, f"no query used {field}"
    # Directory.withTimestamps follows symlinks on v0.21.8 and fails on a dangling one
    assert "withTimestamps" not in text, "reproducible builds clamp times with touch -h"


def test_the_registry_password_is_a_secret_never_plain_text(module_queries) -> None:
    import os

    os.environ["REGISTRY_PASSWORD"] = PASSWORD  # where `--password env:REGISTRY_PASSWORD` reads
    auth = [q for q in module_queries.queries if "withRegistryAuth" in q]
    assert auth, "publish with credentials logs in"
    for q in auth:
        assert 'username: "acme-bot"' in q and "secret: " in q
        assert 'address: "ghcr.io/acme/jupyter"' in q
    assert not any(PASSWORD in q for q in module_queries.queries)
    assert 'uri: "env:REGISTRY_PASSWORD"' in "\n".join(module_queries.queries)


def test_publish_wants_both_credentials_or_neither() -> None:
    with pytest.raises(ValueError, match="--username and --password together"):
        run(fake.FakeSession(answers()), Nbpipe().publish, "jupyter", "ghcr.io/acme/jupyter",
            None, None, None, "acme-bot", None)


def test_build_spec_reads_only_inside_the_given_directory(tmp_path: Path) -> None:
    (tmp_path / "spec.yaml").write_text("name: team-x\nparent: jupyter\n"
                                        "files: [{path: /etc/x, source: ../secret}]\n")
    (tmp_path.parent / "secret").write_text("nope")
    s = fake.FakeSession(answers())
    with pytest.raises(Exception, match="inside|relative"):
        run(s, Nbpipe().build_spec, dag.host().directory(str(tmp_path)), "spec.yaml")
    with pytest.raises(Exception, match="inside|relative"):
        run(s, Nbpipe().build_spec, dag.host().directory(str(tmp_path)), "../spec.yaml")
    assert not s.errors


@pytest.fixture(scope="module")
def client_queries() -> fake.FakeSession:
    """`nbpipe build --engine dagger` for the whole family, on both platforms."""
    from contextlib import asynccontextmanager

    session = fake.FakeSession(answers())
    session.built = 0

    @asynccontextmanager
    async def connection(config=None):
        with fake.engine(session):
            yield

    mp = pytest.MonkeyPatch()
    mp.setattr(dagger, "connection", connection)
    from nbpipe.family import family
    try:
        for p in plat.ALL:
            results = _client_build(family(), None, p)
            # what no machine may build (a download with no sha256 pinned) is never sent
            for r in results:
                assert str(r.status) == "built" or "sha256" in r.message or \
                    str(r.status) == "blocked", r
            session.built += sum(str(r.status) == "built" for r in results)
    finally:
        mp.undo()
    return session


def _client_build(catalog, names, platform):
    """`nbpipe build --engine dagger` as `dagger run` runs it, on a machine that reaches
    every source (the probes are the module's queries, checked above)."""
    from nbpipe.run import pipeline
    from nbpipe.run.machine import Machine
    from nbpipe.run.settings import Settings

    settings = Settings.from_env({"DAGGER_SESSION_PORT": "1", "NBPIPE_ASSUME_REACHABLE": "*"})
    machine = Machine(catalog, platform, None, dagger="a session", settings=settings)
    return pipeline.build(machine, names, BuildOptions(), settings, probe=False)


def test_every_client_mode_query_is_valid_for_the_engine(client_queries, family) -> None:
    s = client_queries
    print(f"\n{len(s.queries)} client-mode queries validated")
    assert not s.errors, "\n\n".join(s.errors[:3])
    assert s.built >= 20  # every pinned image on both platforms; the module's `ci` sends all 17
    assert sum("sync" in q for q in s.queries) == s.built


def test_a_misspelled_argument_or_enum_value_is_rejected(module_queries) -> None:
    """The negative control: the validator does catch what a real engine refuses."""
    query = next(q for q in module_queries.queries if "expect: ANY" in q)
    assert fake.validate(graphql.parse(query)) == []
    for wrong in (query.replace("expect: ANY", "expect: ANYTHING", 1),
                  query.replace("address:", "adress:", 1),
                  query.replace("withExec(", "withExecute(", 1)):
        assert wrong != query
        errors = fake.validate(graphql.parse(wrong))
        assert errors, f"not rejected:\n{wrong}"


def test_a_failing_step_names_the_image_command_and_stderr(monkeypatch, family) -> None:
    """An EXEC_ERROR, shaped as the engine sends it, is that image failed, not a crash."""
    from contextlib import asynccontextmanager

    stderr = "".join(f"line {i}\n" for i in range(100)) + "E: Unable to locate package nope\n"
    cmd = ["sh", "-c", "apt-get install -y nope"]

    def respond(call, chain):
        if call.name == "sync":
            raise fake.exec_error(cmd, 100, "", stderr)
        return fake.NOTHING

    session = fake.FakeSession(respond)

    @asynccontextmanager
    async def connection(config=None):
        with fake.engine(session):
            yield

    monkeypatch.setattr(dagger, "connection", connection)
    results = _client_build(family, ["jupyter"], plat.AMD64)
    assert [(r.name, str(r.status)) for r in results] == [("base", "failed"), ("jupyter", "blocked")]
    msg = results[0].message
    assert msg.splitlines()[0] == "base: step failed (exit 100): sh -c apt-get install -y nope"
    assert msg.splitlines()[-1] == "E: Unable to locate package nope"
    assert "line 10\n" not in msg, "only the tail of stderr"
    assert not session.errors


def test_build_catalog_imports_a_python_team_repository(tmp_path: Path, monkeypatch) -> None:
    """`nbpipe new --repo --python`'s Dagger module calls build_catalog: the team's
    `images` package is imported from its Directory, never from an `images` already
    imported here, and is gone afterwards."""
    import sys
    import types

    from nbpipe.cli import scaffold
    from nbpipe.pipelines.main import _import_catalog

    scaffold.write_repo("team-y", "jupyter", tmp_path / "repo", python=True)
    stale = types.ModuleType("images")
    monkeypatch.setitem(sys.modules, "images", stale)
    s = fake.FakeSession(answers())
    ctr = run(s, Nbpipe().build_catalog, dag.host().directory(str(tmp_path / "repo")),
              "images.team_y:catalog", "team-y")
    assert isinstance(ctr, dagger.Container) and not s.errors
    assert sys.modules["images"] is stale and "images.team_y" not in sys.modules
    img = _import_catalog(tmp_path / "repo", "images.team_y:catalog").resolve("team-y")
    assert "tabulate==0.9.0" in img.steps[0].describe()
    with pytest.raises(Exception, match="cannot import"):
        run(s, Nbpipe().build_catalog, dag.host().directory(str(tmp_path / "repo")),
            "images.nope:catalog", "team-y")


def test_in_a_dagger_session_publish_goes_through_dagger_and_verify_says_why_not(
    monkeypatch, capsys
) -> None:
    """Inside `dagger run` (issue 20): `publish` builds, probes and pushes through the
    session, and `verify-reproducible` says in one line what Dagger cannot do; neither
    claims that podman is missing."""
    from contextlib import asynccontextmanager

    from nbpipe.cli import commands as cli

    digest = "sha256:" + "a" * 64
    plain = answers()

    def respond(call, chain):
        if call.name == "publish":
            return f"{call.args['address']}@{digest}"
        return plain(call, chain)

    session = fake.FakeSession(respond)

    @asynccontextmanager
    async def connection(config=None):
        with fake.engine(session):
            yield

    monkeypatch.setattr(dagger, "connection", connection)
    monkeypatch.setenv("DAGGER_SESSION_PORT", "1")
    monkeypatch.setenv("NBPIPE_ASSUME_REACHABLE", "*")

    def nbpipe(*args: str) -> tuple[int, str, str]:
        monkeypatch.setattr("sys.argv", ["nbpipe", *args])
        with pytest.raises(SystemExit) as exc:
            cli.main()
        out, err = capsys.readouterr()
        return int(exc.value.code or 0), out, err

    code, out, err = nbpipe("publish", "base", "--registry", "127.0.0.1:5000/acme",
                            "--platform", plat.AMD64, "--tag", "t1")
    assert code == 0, err
    assert "no usable container engine" not in err and "engine: dagger" in err
    assert f"127.0.0.1:5000/acme/base@{digest}" in out
    pushed = [q for q in session.queries if "publish(" in q]
    assert pushed and all("platformVariants" in q for q in pushed)
    assert any('address: "127.0.0.1:5000/acme/base:t1"' in q for q in pushed)
    assert not session.errors, session.errors[:1]

    code, out, err = nbpipe("verify-reproducible", "base")
    assert code == 1
    assert err.strip().splitlines()[-1] == (
        "nbpipe: error: verify-reproducible builds twice from scratch, and Dagger answers the "
        "second build from its cache (its API has no --no-cache): use --engine podman")
    assert "no usable container engine" not in err
