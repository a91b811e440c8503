"""Pip locks: applied per platform, part of the digest, ignored once stale."""

from __future__ import annotations

import json
import re
import subprocess
from dataclasses import replace

import pytest

from nbpipe import family as images
from nbpipe.locks import lock
from nbpipe.run import locking
from nbpipe.run.settings import Settings
from nbpipe.recipe import platforms as plat
from nbpipe.recipe.catalog import Catalog
from nbpipe.errors import NbpipeError
from nbpipe.recipe.image import BaseRef
from nbpipe.recipe.options import CA_ENV, CA_TARGET, BuildOptions
from nbpipe.recipe.steps import Apt, Pip

LINES = "numpy==2.4.6 --hash=sha256:" + "a" * 64 + "\n"


def plain():
    """The family without images/lock.json, so these tests bring their own locks."""
    return lock.unlocked(images.family())


def _scipy_key(cat) -> tuple[str, Pip]:
    """The key of jupyter-scipy's first pip step, and that step."""
    img = lock.unlocked(cat).resolve("jupyter-scipy")
    i, st = next((i, st) for i, st in enumerate(img.steps) if isinstance(st, Pip))
    return lock.key("jupyter-scipy", i, st), st


def test_lock_applies_per_platform_and_changes_only_that_digest(tmp_path) -> None:
    cat = plain()
    before = cat.digests(plat.AMD64)
    k, step = _scipy_key(cat)
    path = tmp_path / "lock.json"
    lock.save(path, {k: {plat.AMD64: LINES}})
    locked = lock.apply(plain(), path)
    after = locked.digests(plat.AMD64)
    assert [n for n in before if before[n] != after[n]] == ["jupyter-scipy"]
    assert locked.digests(plat.ARM64) == plain().digests(plat.ARM64)
    img = locked.resolve("jupyter-scipy")
    amd = [st for st in img.steps_for(plat.AMD64) if isinstance(st, Pip) and st.locked]
    arm = [st for st in img.steps_for(plat.ARM64) if isinstance(st, Pip)]
    assert len(amd) == 1 and amd[0].packages == step.packages
    assert all(not st.locked for st in arm) and any(st.packages == step.packages for st in arm)


def test_locked_step_installs_exactly_the_lock_with_hashes() -> None:
    st = Pip(packages=("numpy==2.4.6",), locked=LINES)
    script = st.lower()[0].script
    assert "--require-hashes -r /tmp/nbpipe-pip.lock" in script
    assert LINES.strip() in script
    assert "numpy==2.4.6 " not in script.split("NBPIPE_LOCK\n")[-1]  # not resolved afresh


def test_unlocked_gives_back_the_recipes(tmp_path) -> None:
    k, _ = _scipy_key(plain())
    path = tmp_path / "lock.json"
    lock.save(path, {k: {plat.AMD64: LINES, plat.ARM64: LINES}})
    locked = lock.apply(plain(), path)
    again = lock.unlocked(locked)
    assert again.digests() == plain().digests()
    assert locked.digests()["jupyter-scipy"] != again.digests()["jupyter-scipy"]


def test_the_family_lock_covers_the_ci_chain_on_amd64() -> None:
    missing = lock.check(images.family(), lock.load(images.LOCK_FILE))
    assert not [m for m in missing if m.startswith(("base step", "jupyter step",
                                                    "jupyter-scipy step"))
                and m.endswith("linux/amd64")]
    img = images.family().resolve("jupyter-scipy")
    locked = [s for i in img.lineage() for s in i.steps_for(plat.AMD64) if getattr(s, "locked", None)]
    assert {type(s).__name__ for s in locked} == {"Apt", "Pip"}


def test_locked_apt_step_installs_the_pinned_closure() -> None:
    from nbpipe.recipe.steps import Apt

    st = Apt(packages=("python3",), locked="python3=3.11.2-1+b1\npython3.11=3.11.2-6+deb12u9\n")
    script = st.lower()[0].script
    assert "--no-install-recommends -o APT::Keep-Downloaded-Packages=true " \
           "python3=3.11.2-1+b1 python3.11=3.11.2-6+deb12u9" in script


# A small catalog of our own: apt step 0 and pip step 1 of image "t".
ROOT = BaseRef("example.org/root", {plat.AMD64: "sha256:" + "1" * 64,
                                    plat.ARM64: "sha256:" + "2" * 64})
APT_LINES = "python3=3.11.2-1+b1\nlibpython3.11=3.11.2-6\n"


def small(pip: str = "numpy==2.4.6") -> Catalog:
    cat = Catalog()
    cat.add("t", ROOT, lambda img: img.with_apt("python3").with_pip(pip))
    cat.add("u", "t", lambda img: img.with_env("U", "1"))
    return cat


def _keys(pip: str = "numpy==2.4.6") -> tuple[str, str]:
    return (lock.key("t", 0, Apt(packages=("python3",))),
            lock.key("t", 1, Pip(packages=(pip,))))


def test_key_names_image_step_and_the_unlocked_step() -> None:
    apt_key, pip_key = _keys()
    assert re.fullmatch(r"t/0/[0-9a-f]{16}", apt_key) and re.fullmatch(r"t/1/[0-9a-f]{16}", pip_key)
    step = Pip(packages=("numpy==2.4.6",))
    assert lock.key("t", 1, replace(step, locked=LINES, platforms=(plat.AMD64,))) == pip_key
    assert lock.key("u", 1, step) != pip_key and lock.key("t", 2, step) != pip_key
    assert lock.key("t", 1, Pip(packages=("numpy==2.4.7",))) != pip_key
    # uv and pip install the same resolution: one entry serves both
    assert lock.key("t", 1, replace(step, installer="pip")) == pip_key


def test_a_fresh_entry_is_always_applied_and_not_reported(tmp_path) -> None:
    apt_key, pip_key = _keys()
    path = tmp_path / "lock.json"
    lock.save(path, {pip_key: {plat.AMD64: LINES}, apt_key: {plat.AMD64: APT_LINES,
                                                             plat.ARM64: APT_LINES}})
    cat = lock.apply(small(), path)
    img = cat.resolve("t")
    amd = img.steps_for(plat.AMD64)
    assert [type(x).__name__ for x in amd] == ["Apt", "Pip"]
    assert (amd[0].locked, amd[1].locked) == (APT_LINES, LINES)
    arm = img.steps_for(plat.ARM64)
    assert (arm[0].locked, arm[1].locked) == (APT_LINES, None)
    assert arm[1].platforms == (plat.ARM64,) and amd[1].platforms == (plat.AMD64,)
    assert "--require-hashes -r /tmp/nbpipe-pip.lock" in img.ops(plat.AMD64)[1].script
    assert "/tmp/nbpipe-pip.lock" not in img.ops(plat.ARM64)[1].script
    # the lock is identity: t and its child change on amd64 only... and arm64 for apt
    plain_digests = small().digests(plat.AMD64)
    assert cat.digests(plat.AMD64)["t"] != plain_digests["t"]
    assert cat.digests(plat.AMD64)["u"] != plain_digests["u"]
    assert lock.check(cat, lock.load(path)) == [
        "t step 1 (pip numpy==2.4.6) for linux/arm64"]


def test_a_stale_entry_is_never_applied_and_is_reported(tmp_path) -> None:
    apt_key, pip_key = _keys("numpy==2.4.6")
    path = tmp_path / "lock.json"
    lock.save(path, {pip_key: {plat.AMD64: LINES, plat.ARM64: LINES}})
    changed = lock.apply(small("numpy==2.4.7"), path)  # the recipe moved on: the entry is stale
    img = changed.resolve("t")
    assert not any(getattr(x, "locked", None) for x in img.steps)
    assert changed.digests() == small("numpy==2.4.7").digests()
    assert lock.check(changed, lock.load(path)) == [
        "t step 0 (apt python3) for linux/amd64", "t step 0 (apt python3) for linux/arm64",
        "t step 1 (pip numpy==2.4.7) for linux/amd64",
        "t step 1 (pip numpy==2.4.7) for linux/arm64"]


def test_an_entry_for_another_step_index_is_not_applied(tmp_path) -> None:
    path = tmp_path / "lock.json"
    step = Pip(packages=("numpy==2.4.6",))
    lock.save(path, {lock.key("t", 0, step): {plat.AMD64: LINES},
                     lock.key("u", 1, step): {plat.AMD64: LINES}})
    assert lock.apply(small(), path).digests() == small().digests()


def test_lock_files_round_trip_sorted_and_bad_ones_are_one_line(tmp_path) -> None:
    path = tmp_path / "lock.json"
    assert lock.load(path) == {}
    lock.save(path, {"b/1/x": {plat.ARM64: "2", plat.AMD64: "1"}, "a/0/y": {plat.AMD64: "3"}})
    assert path.read_text() == ('{\n "version": 1,\n "locks": {\n  "a/0/y": {\n'
                                '   "linux/amd64": "3"\n  },\n  "b/1/x": {\n'
                                '   "linux/amd64": "1",\n   "linux/arm64": "2"\n  }\n }\n}\n')
    assert lock.load(path) == {"a/0/y": {plat.AMD64: "3"},
                               "b/1/x": {plat.AMD64: "1", plat.ARM64: "2"}}
    for bad in ('{"locks": []}', '{"version": 1}', '{"locks": {"a": {"linux/amd64": 1}}}'):
        path.write_text(bad)
        with pytest.raises(NbpipeError) as exc:
            lock.load(path)
        assert str(exc.value) == (f'{path}: not a lock file written by `nbpipe lock` (it needs '
                                  '"locks": {step: {platform: lines}})')


class Engine:
    """run_once answers what the resolving container would print."""
    kind = "podman"  # what the pipeline names in its events

    def __init__(self, rc: int, stdout: str, stderr: str = "") -> None:
        self.result = subprocess.CompletedProcess([], rc, stdout, stderr)
        self.calls: list[tuple] = []

    def run_once(self, ref, argv, *, extra=(), timeout=600):
        self.calls.append((ref, list(argv), list(extra), timeout))
        return self.result


def _report(*items: dict) -> str:
    return json.dumps({"install": list(items)})


def test_pip_resolution_becomes_sorted_hash_pinned_lines(tmp_path) -> None:
    ca = tmp_path / "ca.pem"
    ca.write_text("-----BEGIN CERTIFICATE-----\nx\n-----END CERTIFICATE-----\n")
    engine = Engine(0, _report(
        {"metadata": {"name": "Zeta", "version": "1.0"},
         "download_info": {"archive_info": {"hashes": {"sha256": "b" * 64}}}},
        {"metadata": {"name": "alpha", "version": "2.0"},
         "download_info": {"archive_info": {"hash": "sha256=" + "c" * 64}}}))
    step = Pip(packages=("zeta==1.0",), index_url="https://idx.example/simple",
               extra_index_urls=("https://more.example/simple",))
    lines = lock.resolve(engine, "localhost/nbpipe/x:1", step, BuildOptions(ca_bundle=ca))
    assert lines == (f"alpha==2.0 --hash=sha256:{'c' * 64}\n"
                     f"Zeta==1.0 --hash=sha256:{'b' * 64}\n")
    [(ref, argv, extra, timeout)] = engine.calls
    assert ref == "localhost/nbpipe/x:1" and timeout == 1800
    assert argv[:2] == ["/bin/sh", "-c"] and argv[3:] == [
        "resolve", "--index-url", "https://idx.example/simple",
        "--extra-index-url", "https://more.example/simple", "zeta==1.0"]
    # the CA reaches the resolve as BuildOptions gives it to a build step: same target,
    # every TLS client's variable
    assert extra == ["--network", "host", "-e", "PY=/opt/venv/bin/python",
                     "-v", f"{ca.resolve()}:{CA_TARGET}:ro",
                     *[a for k in CA_ENV for a in ("-e", f"{k}={CA_TARGET}")]]
    assert CA_TARGET == "/run/secrets/nbpipe-ca.crt" and {"PIP_CERT", "SSL_CERT_FILE"} <= set(CA_ENV)
    lock.resolve(engine, "r", Pip(packages=("x==1",)), BuildOptions())
    assert engine.calls[-1][2] == ["--network", "host", "-e", "PY=/opt/venv/bin/python"]
    assert engine.calls[-1][1][3:] == ["resolve", "x==1"]


def test_pip_resolution_failures_name_the_step() -> None:
    step = Pip(packages=("zeta==1.0",))
    with pytest.raises(NbpipeError) as exc:
        lock.resolve(Engine(1, "", "ERROR: no matching distribution\n"), "r", step, BuildOptions())
    assert str(exc.value) == ("pip could not resolve `pip zeta==1.0` in r: "
                              "ERROR: no matching distribution")
    no_hash = Engine(0, _report({"metadata": {"name": "z", "version": "1"},
                                 "download_info": {"url": "https://x/z.tgz",
                                                   "archive_info": {"hash": "md5=ab"}}}))
    with pytest.raises(NbpipeError) as exc:
        lock.resolve(no_hash, "r", step, BuildOptions())
    assert str(exc.value) == ("z 1: pip's index gave no sha256 for https://x/z.tgz; it cannot "
                              "be locked")


def test_apt_resolution_and_its_failure() -> None:
    engine = Engine(0, "python3=3.11.2-1+b1\nlibpython3.11=3.11.2-6\n")
    assert lock.resolve_apt(engine, "p", Apt(packages=("python3",))) == (
        "libpython3.11=3.11.2-6\npython3=3.11.2-1+b1\n")
    ref, argv, extra, timeout = engine.calls[0]
    assert (ref, argv[3:], extra, timeout) == ("p", ["simulate", "python3"],
                                                ["--network", "host", "--user", "0"], 900)
    for bad in (Engine(0, "\n"), Engine(100, "x=1\n", "E: Unable to locate package\n")):
        with pytest.raises(NbpipeError) as exc:
            lock.resolve_apt(bad, "p", Apt(packages=("python3",)))
        assert str(exc.value).startswith("apt could not resolve `apt python3` in p: ")


def test_refresh_builds_unlocked_resolves_each_step_keeps_other_platforms(tmp_path,
                                                                         monkeypatch) -> None:
    """`nbpipe lock` on a fake podman: images as built are asked what their apt and pip
    steps install; an image that does not build is left out; entries for the other
    platform survive; the file is saved."""
    from types import SimpleNamespace

    from nbpipe.recipe import naming
    from nbpipe.engines.oci import ImageInfo, OciEngine

    from tests.fakes.container_cli import Fake

    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("NBPIPE_RUNTIME", raising=False)
    cat = small()
    cat.add("v", ROOT, lambda img: img.with_pip("broken==1"))
    built = {naming.local_ref(cat.resolve(n), plat.AMD64): ImageInfo(
        naming.local_ref(cat.resolve(n), plat.AMD64), "sha256:" + n * 64, 1, {}, "")
        for n in ("t", "u")}
    monkeypatch.setattr(OciEngine, "images", lambda self: built)
    fake = Fake(tmp_path / "cli", monkeypatch, "podman")
    fake.on("run", has=("simulate",), stdout="python3=3.11.2-1+b1\nlibpython3.11=3.11.2-6\n")
    fake.on("run", has=("resolve",), stdout=_report(
        {"metadata": {"name": "numpy", "version": "2.4.6"},
         "download_info": {"archive_info": {"hashes": {"sha256": "b" * 64}}}}))
    fake.on("build", rc=1, stdout="Error: no network\n")
    path = tmp_path / "lock.json"
    apt_key, pip_key = _keys()
    lock.save(path, {pip_key: {plat.ARM64: LINES}})
    machine = SimpleNamespace(need_engine=lambda: OciEngine("podman", fake.paths["podman"]),
                              platform=plat.AMD64, catalog=lock.apply(cat, path),
                              settings=Settings(state_dir=tmp_path / "state"))
    events = []
    got = locking.refresh(machine, None, path, BuildOptions(), lambda n, w: events.append((n, w)))
    want = {apt_key: {plat.AMD64: "libpython3.11=3.11.2-6\npython3=3.11.2-1+b1\n"},
            pip_key: {plat.AMD64: f"numpy==2.4.6 --hash=sha256:{'b' * 64}\n",
                      plat.ARM64: LINES}}
    assert got == want and lock.load(path) == want
    runs = [c for c in fake.calls() if c[0] == "run"]
    assert [c[c.index("--entrypoint") + 2] for c in runs] == [
        ROOT.pinned(plat.AMD64), naming.local_ref(cat.resolve("t"), plat.AMD64)]
    assert ("v", "not locked: failed") in events


def test_apt_refusals_are_read_from_a_build_log() -> None:
    from nbpipe.locks import archive

    log = ("Reading package lists...\n"
           "E: Version '1.0.11-1+deb12u3' for 'libde265-0' was not found\n"
           "E: Version '2:1.0' for 'libfoo1:amd64' was not found\n"
           "E: Unable to locate package nope\n")
    assert archive.gone_in_log(log) == [archive.Pin("libde265-0", "1.0.11-1+deb12u3"),
                                        archive.Pin("libfoo1", "2:1.0")]
    assert archive.gone_in_log("E: Unable to locate package nope\n") == []


def test_a_refresh_says_what_moved_first() -> None:
    from nbpipe.locks import archive

    old = "a=1\nlibde265-0=1.0.11-1+deb12u3\nz=1\n"
    new = "a=2\nlibde265-0=1.0.11-1+deb12u4\nnew=1\n"
    moved = archive.changes(old, new)
    assert moved == ["a 1 -> 2", "libde265-0 1.0.11-1+deb12u3 -> 1.0.11-1+deb12u4",
                     "new (new) -> 1", "z 1 -> (dropped)"]
    assert archive.summary(moved, first={"libde265-0"}) == (
        "libde265-0 1.0.11-1+deb12u3 -> 1.0.11-1+deb12u4 (and 3 more)")
    assert archive.summary(["a 1 -> 2"]) == "a 1 -> 2"


def test_the_package_store_keeps_only_the_files_the_lock_names(tmp_path) -> None:
    import hashlib

    from nbpipe.locks import archive

    cache, store = tmp_path / "cache", tmp_path / "store"
    cache.mkdir()
    good = b"a .deb with an epoch in its version"
    (cache / "git_1%3a2.39.5-0+deb12u3_amd64.deb").write_bytes(good)  # apt escapes ':'
    (cache / "tzdata_2026f-0+deb12u1_all.deb").write_bytes(b"not the file the lock names")
    (tmp_path / "elsewhere.deb").write_bytes(b"planted")
    (cache / "curl_7.88.1_amd64.deb").symlink_to(tmp_path / "elsewhere.deb")
    sha = hashlib.sha256(good).hexdigest()
    pins = archive.pins(f"git=1:2.39.5-0+deb12u3@sha256:{sha}\n"
                        f"tzdata=2026f-0+deb12u1@sha256:{'0' * 64}\n"
                        f"curl=7.88.1@sha256:{hashlib.sha256(b'planted').hexdigest()}\n"
                        "perl=5.36\n")
    assert archive.keep(cache, store, pins, "amd64") == 1
    assert [f.name for f in store.iterdir()] == [f"{sha}.deb"]
    assert (store / f"{sha}.deb").read_bytes() == good
    assert archive.keep(cache, store, pins, "amd64") == 0  # already there
    assert pins[0].deb(store) == store / f"{sha}.deb" and pins[3].deb(store) is None
