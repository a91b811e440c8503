"""Signing keys, signatures, attestations, provenance and the vulnerability audit, offline:
the registry is replaced by the layers it would hold, PyPI by recorded answers
(tests/sdk/data/pypi). tests/engine/test_supply_chain.py does it against a real registry."""

from __future__ import annotations

import base64
import json
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
from typer.testing import CliRunner

from nbpipe.supply import attach, audit, provenance, signing, sigstore
from nbpipe import family as images
from nbpipe.errors import NbpipeError
from nbpipe.engines.registry import Registry

DATA = Path(__file__).parent / "data" / "pypi"
REG = Registry.parse("127.0.0.1:5999")
REPO = REG.repo("base")
D1 = "sha256:" + "1" * 64
D2 = "sha256:" + "2" * 64


@pytest.fixture(scope="module")
def keys(tmp_path_factory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("keys")
    signing.generate(d / "a", b"pass-a")
    signing.generate(d / "b", b"")
    return {"a": d / "a", "b": d / "b"}


def _key(keys, which="a") -> signing.SigningKey:
    return signing.load_signing_key(str(keys[which]) + ".key",
                                    b"pass-a" if which == "a" else b"")


# -- keys -------------------------------------------------------------------------------

def test_key_pair_round_trip_and_cosign_format(keys) -> None:
    text = (Path(str(keys["a"]) + ".key")).read_text()
    assert text.startswith("-----BEGIN ENCRYPTED SIGSTORE PRIVATE KEY-----\n")
    body = json.loads(base64.b64decode("".join(text.splitlines()[1:-1])))
    assert body["kdf"]["name"] == "scrypt" and body["kdf"]["params"] == {"N": 32768, "r": 8, "p": 1}
    assert body["cipher"]["name"] == "nacl/secretbox"
    assert (Path(str(keys["a"]) + ".key").stat().st_mode & 0o777) == 0o600
    key = _key(keys)
    pub = signing.load_public_key(Path(str(keys["a"]) + ".pub"))
    assert pub.verifies(b"data", key.sign(b"data"))
    assert not pub.verifies(b"other", key.sign(b"data"))
    other = signing.load_public_key(Path(str(keys["b"]) + ".pub"))
    assert not other.verifies(b"data", key.sign(b"data"))


def test_wrong_passphrase_is_one_line(keys) -> None:
    with pytest.raises(NbpipeError, match="wrong passphrase"):
        signing.load_signing_key(str(keys["a"]) + ".key", b"nope")


def test_key_from_an_environment_secret(keys, monkeypatch) -> None:
    monkeypatch.setenv("CI_SIGNING_KEY", Path(str(keys["a"]) + ".key").read_text())
    monkeypatch.setenv(signing.PASSPHRASE_ENV, "pass-a")
    key = signing.load_signing_key("env:CI_SIGNING_KEY")
    assert key.source == "$CI_SIGNING_KEY"  # what logs may say: never the key
    monkeypatch.delenv("CI_SIGNING_KEY")
    with pytest.raises(NbpipeError, match="CI_SIGNING_KEY is not set"):
        signing.load_signing_key("env:CI_SIGNING_KEY")


def test_the_key_itself_on_a_command_line_is_refused(keys) -> None:
    text = Path(str(keys["a"]) + ".key").read_text()
    with pytest.raises(NbpipeError, match="never the key itself"):
        signing.load_signing_key(text)


def test_generate_never_overwrites(keys) -> None:
    with pytest.raises(NbpipeError, match="not overwriting"):
        signing.generate(keys["a"], b"x")


@pytest.mark.parametrize("text, message", [
    ("not a key", "not a PEM key"),
    ("-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n", "want ENCRYPTED"),
    ("-----BEGIN ENCRYPTED SIGSTORE PRIVATE KEY-----\n!!!!\n"
     "-----END ENCRYPTED SIGSTORE PRIVATE KEY-----\n", "not base64"),
    ("-----BEGIN ENCRYPTED SIGSTORE PRIVATE KEY-----\n" + base64.b64encode(b"{}").decode() +
     "\n-----END ENCRYPTED SIGSTORE PRIVATE KEY-----\n", "not a cosign private key"),
])
def test_bad_private_keys_name_the_file(tmp_path, text, message) -> None:
    f = tmp_path / "k.key"
    f.write_text(text)
    with pytest.raises(NbpipeError, match=message) as exc:
        signing.load_signing_key(str(f), b"")
    assert str(f) in str(exc.value)


def test_dsse_envelope_is_checked_against_the_key(keys) -> None:
    st = provenance.statement(REPO, D1, provenance.SLSA_PROVENANCE, {"x": 1})
    env = signing.dsse_envelope(_key(keys), st)
    a = signing.load_public_key(Path(str(keys["a"]) + ".pub"))
    b = signing.load_public_key(Path(str(keys["b"]) + ".pub"))
    assert signing.open_envelope(env, a) == st
    assert signing.open_envelope(env, b) is None
    doc = json.loads(env)
    doc["payload"] = base64.b64encode(json.dumps({**st, "subject": []}).encode()).decode()
    assert signing.open_envelope(json.dumps(doc).encode(), a) is None  # payload swapped


# -- signatures and attestations, the registry replaced by what it holds -----------------

class FakeRegistry:
    """attach.fetch/push over a dict: {(digest, suffix): [Layer]}."""

    def __init__(self, monkeypatch, manifests: dict[str, bytes]) -> None:
        self.store: dict[tuple[str, str], list[attach.Layer]] = {}
        monkeypatch.setattr(attach, "fetch", lambda reg, repo, digest, suffix, auth:
                            list(self.store.get((digest, suffix), [])))

        def push(reg, repo, digest, suffix, layers, auth):
            self.store.setdefault((digest, suffix), []).extend(layers)
            return True

        monkeypatch.setattr(attach, "push", push)
        monkeypatch.setattr(Registry, "manifest",
                            lambda self_, ref, auth: manifests.get(ref.split("@")[-1]))


def _pub(keys, which="a") -> signing.PublicKey:
    return signing.load_public_key(Path(str(keys[which]) + ".pub"))


def _signed_image(keys, fake, digest=D1, which="a") -> None:
    k = _key(keys, which)
    sigstore.sign(REG, REPO, digest, k, None, tag="sha-1")
    st = [provenance.statement(REPO, digest, provenance.SLSA_PROVENANCE,
                               {"buildDefinition": {"externalParameters": {"image": "base"}}}),
          provenance.statement(REPO, digest, provenance.CYCLONEDX_BOM,
                               {"bomFormat": "CycloneDX", "components": []})]
    sigstore.attest(REG, REPO, digest, k, None, st)


def test_signed_image_verifies(keys, monkeypatch) -> None:
    fake = FakeRegistry(monkeypatch, {D1: b'{"layers": []}'})
    _signed_image(keys, fake)
    v = sigstore.verify(f"{REPO}@{D1}", _pub(keys), registry=REG)
    assert v.ok, v.findings
    assert [f.what for f in v.findings] == ["signature", "provenance", "sbom"]
    assert v.provenance[0].image == "base" and v.sboms[0]["bomFormat"] == "CycloneDX"


def test_signing_twice_adds_nothing(keys, monkeypatch) -> None:
    fake = FakeRegistry(monkeypatch, {D1: b"{}"})
    assert sigstore.sign(REG, REPO, D1, _key(keys), None, tag="t")
    assert not sigstore.sign(REG, REPO, D1, _key(keys), None, tag="t")
    assert len(fake.store[(D1, "sig")]) == 1


def test_unsigned_fails(keys, monkeypatch) -> None:
    FakeRegistry(monkeypatch, {D1: b"{}"})
    v = sigstore.verify(f"{REPO}@{D1}", _pub(keys), registry=REG)
    assert not v.ok and v.first_failure.startswith("unsigned:")


def test_signed_by_another_key_fails(keys, monkeypatch) -> None:
    fake = FakeRegistry(monkeypatch, {D1: b"{}"})
    _signed_image(keys, fake, which="b")
    v = sigstore.verify(f"{REPO}@{D1}", _pub(keys), registry=REG)
    assert v.first_failure.startswith("signed by another key:")
    assert [f.ok for f in v.findings] == [False, False, False]
    assert "provenance signed by another key" in v.findings[1].line


def test_signature_moved_to_another_digest_fails(keys, monkeypatch) -> None:
    fake = FakeRegistry(monkeypatch, {D1: b"{}", D2: b"{}"})
    _signed_image(keys, fake, D1)
    for suffix in ("sig", "att"):  # what a re-push with another digest can copy along
        fake.store[(D2, suffix)] = fake.store[(D1, suffix)]
    v = sigstore.verify(f"{REPO}@{D2}", _pub(keys), registry=REG)
    assert v.first_failure == (f"signature for another digest: the key signed {D1}, "
                               f"this image is {D2}")
    assert "provenance for another digest" in v.findings[1].line


def test_signature_for_another_name_fails(keys, monkeypatch) -> None:
    fake = FakeRegistry(monkeypatch, {D1: b"{}"})
    sigstore.sign(REG, REG.repo("other"), D1, _key(keys), None, tag="t")
    fake.store[(D1, "sig")] = fake.store[(D1, "sig")]
    v = sigstore.verify(f"{REPO}@{D1}", _pub(keys), registry=REG)
    assert v.first_failure.startswith("signed for another name:")


def test_a_list_checks_every_platform_image(keys, monkeypatch) -> None:
    index = json.dumps({"mediaType": sigstore.INDEX_TYPES[0], "manifests": [
        {"digest": D1, "platform": {"os": "linux", "architecture": "amd64"}},
        {"digest": D2, "platform": {"os": "linux", "architecture": "arm64"}}]}).encode()
    DL = "sha256:" + "3" * 64
    fake = FakeRegistry(monkeypatch, {DL: index, D1: b"{}", D2: b"{}"})
    _signed_image(keys, fake, D1)
    sigstore.sign(REG, REPO, DL, _key(keys), None, tag="sha-1")
    v = sigstore.verify(f"{REPO}@{DL}", _pub(keys), registry=REG)
    assert not v.ok and v.first_failure.startswith("linux/arm64: unsigned:")
    _signed_image(keys, fake, D2)
    assert sigstore.verify(f"{REPO}@{DL}", _pub(keys), registry=REG).ok


def test_verify_wants_a_digest() -> None:
    with pytest.raises(NbpipeError, match="a digest, not a tag"):
        sigstore.verify(f"{REPO}:latest", None)  # type: ignore[arg-type]


def test_artifact_tag() -> None:
    assert attach.tag(D1, "sig") == "sha256-" + "1" * 64 + ".sig"
    with pytest.raises(NbpipeError):
        attach.tag("sha512:ab", "sig")


# -- provenance -------------------------------------------------------------------------

def test_provenance_names_recipe_root_locks_and_source() -> None:
    from nbpipe.recipe.options import BuildOptions

    cat = images.family()
    img = cat.resolve("jupyter")
    p = "linux/amd64"
    opts = BuildOptions().with_oci_labels()
    pred = provenance.slsa(img, p, opts, compression="zstd", engine="podman")
    deps = pred["buildDefinition"]["resolvedDependencies"]
    assert deps[0] == {"uri": "nbpipe:recipe/jupyter",
                       "digest": {"sha256": img.digest(p).removeprefix("sha256:")}}
    assert deps[1]["digest"]["sha256"] == img.root.digest(p).removeprefix("sha256:")
    locked = [d for d in deps if d["uri"].startswith("pkg:")]
    # every lock line of the chain (base's apt closure, jupyter's apt and pip) is there
    expected = sum(len([x for x in st.locked.splitlines() if x.strip()])
                   for node in (img, img.parent) for st in node.steps
                   if getattr(st, "locked", None) and (not st.platforms or p in st.platforms))
    assert len(locked) == expected > 0
    assert any(d["uri"].startswith("pkg:pypi/jupyterlab@") and len(d["digest"]["sha256"]) == 64
               for d in locked)
    # apt lines name the .deb by sha256 (the package store's lock lines)
    curl = next(d for d in locked if d["uri"].startswith("pkg:deb/debian/curl@"))
    assert "@sha256" not in curl["uri"] and len(curl["digest"]["sha256"]) == 64
    s = provenance.summary(pred)
    assert (s.image, s.platform, s.locked) == ("jupyter", p, expected)
    assert s.parameters["compression"] == "zstd" and s.source.startswith("https://")
    assert provenance.summary({}).image == "?"  # a foreign statement reads, never raises


# -- the audit, against recorded PyPI answers -------------------------------------------

def _recorded(per_release: bool = False) -> httpx.MockTransport:
    """PyPI as this machine sees it: project JSON answers, per-release JSON is 404 (unless
    ``per_release``: then the recorded per-release answers are served)."""
    def handler(request: httpx.Request) -> httpx.Response:
        parts = request.url.path.strip("/").split("/")  # pypi NAME [VERSION] json
        name = parts[1].lower()
        if len(parts) == 4:
            f = DATA / f"{name}-{parts[2]}.json"
            return httpx.Response(200, content=f.read_bytes()) if per_release and f.exists() \
                else httpx.Response(404)
        f = DATA / f"{name}.json"
        return httpx.Response(200, content=f.read_bytes()) if f.exists() else httpx.Response(404)
    return httpx.MockTransport(handler)


def _sbom(*pins: tuple[str, str]) -> dict:
    return {"bomFormat": "CycloneDX", "components": [
        {"name": n, "version": v, "purl": f"pkg:pypi/{n.lower()}@{v}"} for n, v in pins] + [
        {"name": "bash", "version": "5.2.15-2+b9", "purl": "pkg:deb/debian/bash@5.2.15-2+b9"}]}


def test_audit_finds_a_vulnerable_pin_and_passes_a_clean_one() -> None:
    src = audit.PyPI(transport=_recorded())
    bad = audit.audit("bad", _sbom(("ecdsa", "0.19.2")), [src, audit.DEBIAN_TRACKER])
    assert {f.advisory.id for f in bad.findings} == {"PYSEC-2026-1325", "GHSA-wj6h-64fc-37mp"}
    assert bad.fails("critical") and bad.fails("low")  # no severity from PyPI: fails closed
    assert not bad.fails("none")
    clean = audit.audit("clean", _sbom(("six", "1.17.0")), [audit.PyPI(transport=_recorded()),
                                                            audit.DEBIAN_TRACKER])
    assert clean.findings == () and not clean.fails("low")
    pypi, deb = clean.results
    assert (pypi.checked, len(pypi.unchecked)) == (1, 0)
    assert deb.checked == 0 and len(deb.unchecked) == 1 and "not reachable" in deb.note


def test_audit_per_release_answers_when_reachable() -> None:
    r = audit.audit("old", _sbom(("Jinja2", "2.10")), [audit.PyPI(transport=_recorded(True))])
    assert [(f.advisory.id, f.advisory.fixed_in) for f in r.findings] == \
        [("PYSEC-2019-217", ("2.10.1",))]  # the withdrawn one is skipped


def test_an_old_pin_is_not_checked_when_only_the_latest_answers() -> None:
    r = audit.audit("old", _sbom(("ecdsa", "0.13"), ("pycrypto", "2.6.1"), ("nonexistent-x", "1")),
                    [audit.PyPI(transport=_recorded())])
    (res,) = r.results
    reasons = {u.package.name: u.reason for u in res.unchecked}
    assert "not reachable here (only the latest, 0.19.2)" in reasons["ecdsa"]
    assert reasons["nonexistent-x"] == "not on PyPI"
    assert res.checked == 1 and "per-release JSON" in res.note
    assert {f.package.name for f in r.findings} == {"pycrypto"}


def test_pypi_unreachable_is_not_checked_never_clean() -> None:
    def down(request):
        raise httpx.ConnectError("refused", request=request)
    r = audit.audit("x", _sbom(("six", "1.17.0")), [audit.PyPI(transport=httpx.MockTransport(down))])
    assert r.results[0].checked == 0 and "PyPI unreachable" in r.results[0].unchecked[0].reason


def test_cli_audit_fail_on(tmp_path, monkeypatch) -> None:
    from nbpipe.cli import commands as cli

    monkeypatch.setattr(audit, "default_sources",
                        lambda: [audit.PyPI(transport=_recorded()), audit.DEBIAN_TRACKER])
    f = tmp_path / "x.cdx.json"
    f.write_text(json.dumps(_sbom(("ecdsa", "0.19.2"))))
    runner = CliRunner()
    ok = runner.invoke(cli.app, ["audit", "--sbom", str(f)])
    assert ok.exit_code == 0 and "GHSA-wj6h-64fc-37mp" in ok.output
    assert "Debian's security tracker" in ok.output
    bad = runner.invoke(cli.app, ["audit", "--sbom", str(f), "--fail-on", "high"])
    assert bad.exit_code == 1
    js = runner.invoke(cli.app, ["audit", "--sbom", str(f), "--json"])
    assert json.loads(js.stdout)["sources"][0]["findings"][0]["package"] == "ecdsa"


def _nbpipe(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "nbpipe", *args], capture_output=True,
                          text=True, timeout=120)


def test_cli_errors_are_one_line(tmp_path, keys) -> None:
    r = _nbpipe("verify", "127.0.0.1:5999/base:latest", "--key", str(keys["a"]) + ".pub")
    assert r.returncode == 1 and r.stderr.count("\n") == 1 and "a digest, not a tag" in r.stderr
    r = _nbpipe("audit", "--fail-on", "severe", "--sbom", "x")
    assert r.returncode == 1 and "--fail-on severe" in r.stderr and "Traceback" not in r.stderr
    (tmp_path / "bad.json").write_text('{"bomFormat": "SPDX"}')
    r = _nbpipe("audit", "--sbom", str(tmp_path / "bad.json"))
    assert r.returncode == 1 and "not a CycloneDX" in r.stderr
    r = _nbpipe("publish", "base", "--registry", "127.0.0.1:5999", "--sign-key",
                (Path(str(keys["a"]) + ".key")).read_text())
    assert r.returncode == 1 and "never the key itself" in r.stderr
    assert "PRIVATE KEY" not in r.stderr and "Traceback" not in r.stderr


def test_build_report_carries_each_images_audit(monkeypatch) -> None:
    from nbpipe.run import report
    from nbpipe.supply import sbom as sboms
    from nbpipe.run.report import ImageResult, Outcome

    ok = ImageResult("team", "linux/amd64", D1, ref="localhost/nbpipe/team:1", status=Outcome.BUILT)
    failed = ImageResult("broken", "linux/amd64", D2, ref="localhost/nbpipe/broken:2",
                         status=Outcome.FAILED)  # named, but not built: no audit
    seen = []
    monkeypatch.setattr(sboms, "components", lambda engine, ref: seen.append(ref) or
                        _sbom(("ecdsa", "0.19.2"))["components"])
    audit.built_images(object(), [ok, failed],
                       [audit.PyPI(transport=_recorded()), audit.DEBIAN_TRACKER])
    assert seen == ["localhost/nbpipe/team:1"] and failed.audit is None
    assert ok.to_dict()["audit"]["summary"].startswith("2 known vulnerabilities in 1 package(s)")
    md = report.markdown([ok, failed])
    assert "## team: known vulnerabilities" in md
    assert "`ecdsa` 0.19.2: [GHSA-wj6h-64fc-37mp]" in md
    assert "note: debian-security-tracker: Debian's security tracker" in md


def test_the_sbom_nbpipe_attaches_is_valid_cyclonedx_1_5(tmp_path) -> None:
    """The document `publish` writes and attaches, checked by CycloneDX's own library
    against the 1.5 JSON schema (strict: no unknown fields)."""
    from cyclonedx.schema import SchemaVersion
    from cyclonedx.validation.json import JsonStrictValidator

    from nbpipe.supply import sbom as sboms

    class Engine:  # what sbom.write asks of an engine: the image id and one command's output
        def inspect(self, ref):
            return type("Info", (), {"id": "sha256:" + "ab" * 32})()

        def run_once(self, ref, argv, timeout):
            out = ("deb\tbash\t5.2.15-2+b9\tamd64\ndeb\tlibc6\t2.36-9+deb12u13\tamd64\n"
                   "pypi\tjupyterlab\t4.5.11\t\npypi\tNumPy_Stuff\t1.0\t\n")
            return subprocess.CompletedProcess(argv, 0, out, "")

    path = sboms.write(Engine(), "localhost/nbpipe/x:1", "x", "linux/amd64", tmp_path)
    text = path.read_text()
    assert JsonStrictValidator(SchemaVersion.V1_5).validate_str(text) is None
    broken = json.loads(text)
    broken["components"][0]["type"] = "not-a-type"
    assert JsonStrictValidator(SchemaVersion.V1_5).validate_str(json.dumps(broken)) is not None
    purls = [c["purl"] for c in json.loads(text)["components"]]
    assert "pkg:pypi/numpy-stuff@1.0" in purls and "pkg:deb/debian/bash@5.2.15-2+b9?arch=amd64" in purls


# -- what comes from a registry or a file is someone else's: read, never crash ----------

from hypothesis import given, settings, strategies as hs  # noqa: E402

JSON = hs.recursive(hs.none() | hs.booleans() | hs.integers() | hs.text(max_size=8),
                    lambda inner: hs.lists(inner, max_size=4)
                    | hs.dictionaries(hs.sampled_from(["buildDefinition", "externalParameters",
                                                       "resolvedDependencies", "uri", "digest",
                                                       "runDetails", "builder", "version",
                                                       "source", "internalParameters",
                                                       "components", "purl", "name",
                                                       "payload", "signatures", "sig",
                                                       "payloadType"]), inner, max_size=5),
                    max_leaves=20)


@settings(max_examples=200, deadline=None)
@given(JSON)
def test_foreign_provenance_sbom_and_envelopes_never_raise(doc) -> None:
    provenance.summary(doc if isinstance(doc, dict) else {"x": doc})
    audit.packages(doc if isinstance(doc, dict) else {"components": doc})
    pub = signing.PublicKey(signing.ec.generate_private_key(signing.ec.SECP256R1()).public_key(), "k")
    assert signing.open_envelope(json.dumps(doc).encode(), pub) is None


@settings(max_examples=200, deadline=None)
@given(hs.text(max_size=300))
def test_any_public_key_text_is_a_key_or_one_clear_error(tmp_path_factory, text) -> None:
    f = tmp_path_factory.mktemp("pub") / "k.pub"
    f.write_text(text)
    try:
        signing.load_public_key(f)
    except NbpipeError as exc:
        assert str(f) in str(exc) or "public key" in str(exc)


def test_odd_payloads_and_manifests_are_one_line(keys, monkeypatch) -> None:
    fake = FakeRegistry(monkeypatch, {D1: b"[1, 2]", D2: b'{"manifests": [1, {"digest": 5}]}'})
    with pytest.raises(NbpipeError, match="not a JSON object"):
        sigstore.verify(f"{REPO}@{D1}", _pub(keys), registry=REG)
    k = _key(keys)
    for payload in (b'{"critical": []}', b'{"critical": {"identity": {"docker-reference": 5}, '
                    b'"image": {"docker-manifest-digest": 7}, "type": 1}}'):
        fake.store[(D2, "sig")] = [attach.Layer(signing.SIG_MEDIA_TYPE, payload, {
            signing.SIG_ANNOTATION: base64.b64encode(k.sign(payload)).decode()})]
        fake.store[(D2, "att")] = [attach.Layer(signing.DSSE_MEDIA_TYPE, signing.dsse_envelope(
            k, {"predicateType": provenance.SLSA_PROVENANCE, "subject": 3}),
            {"predicateType": provenance.SLSA_PROVENANCE})]
        v = sigstore.verify(f"{REPO}@{D2}", _pub(keys), registry=REG)
        assert not v.ok and len(v.first_failure.splitlines()) == 1
        assert [f.what for f in v.findings][:2] == ["signature", "signature"]
