"""Steps, one rule at a time: what each lowers to (the exact script, user, mounts and
network), what each refuses (with the message), where each downloads from."""

from __future__ import annotations

import pytest

from nbpipe.recipe import steps as s
from nbpipe.errors import NbpipeError
from nbpipe.recipe.ops import CacheMount, Exec, SetCmd, SetEntrypoint, WriteFile

SHA = "a" * 64


def test_download_checks_the_sha256_then_installs_or_unpacks() -> None:
    [op] = s.Download(url="https://example.org/x", sha256=SHA, dest="/opt/x", mode=0o755).lower()
    assert op == Exec("set -eu\n"
                      "curl -fsSL --retry 3 -o /tmp/nbpipe-download https://example.org/x\n"
                      f"echo '{SHA}  /tmp/nbpipe-download' | sha256sum -c -\n"
                      "mkdir -p $(dirname /opt/x)\n"
                      "install -m 755 /tmp/nbpipe-download /opt/x\n"
                      "rm -f /tmp/nbpipe-download", user="root", network=True)
    [op] = s.Download(url="https://example.org/x.tgz", sha256=SHA, dest="/opt/x", extract=True,
                      strip_components=1).lower()
    assert op.script.splitlines()[3:] == [
        "mkdir -p /opt/x",
        "tar -xf /tmp/nbpipe-download -C /opt/x --strip-components=1 --no-same-owner",
        "rm -f /tmp/nbpipe-download"]


def test_an_unpinned_download_refuses_to_build_and_says_so() -> None:
    for step in (s.Download(url="https://example.org/x", sha256=None, dest="/opt/x"),
                 s.Deb(url="https://example.org/x.deb", sha256=None)):
        [op] = step.lower()
        assert op.script.endswith("\nexit 1") and op.user == "root" and not op.network
        assert "has no sha256 pin" in op.script
        assert step.unpinned() == (step.url,)
    assert s.Deb(url="https://example.org/x.deb", sha256=SHA).unpinned() == ()
    assert s.Download(url="https://example.org/x", sha256=SHA, dest="/x").unpinned() == ()


def test_deb_installs_the_checked_file_with_apt_in_one_layer() -> None:
    [op] = s.Deb(url="https://dl.example.org/r.deb", sha256=SHA).lower()
    lines = op.script.splitlines()
    assert lines[:3] == ["set -eu",
                         "curl -fsSL --retry 3 -o /tmp/nbpipe-package.deb https://dl.example.org/r.deb",
                         f"echo '{SHA}  /tmp/nbpipe-package.deb' | sha256sum -c -"]
    assert lines[3:5] == s.apt_install("/tmp/nbpipe-package.deb")
    assert lines[5:] == ["rm -f /tmp/nbpipe-package.deb", s.APT_CLEANUP]
    assert (op.user, op.network, op.mounts) == ("root", True, (s.APT_ARCHIVES,))
    assert s.Deb(url="https://dl.example.org/r.deb", sha256=SHA).sources() == (
        "dl.example.org", "deb.debian.org")


@pytest.mark.parametrize("make,message", [
    (lambda: s.Download(url="https://e.org/x", sha256=SHA, dest="/x", mode=0o10000),
     "download /x: mode 4096 is not a file mode (0 to 0o7777)"),
    (lambda: s.Download(url="http://e.org/x", sha256=SHA, dest="/x"),
     "download http://e.org/x: only https:// URLs are allowed"),
    (lambda: s.Download(url="https://e.org/x", sha256="A" * 64, dest="/x"),
     "download https://e.org/x: sha256 must be 64 lowercase hex digits"),
    (lambda: s.Deb(url="https://e.org/x.deb", sha256="a" * 63),
     "deb https://e.org/x.deb: sha256 must be 64 lowercase hex digits"),
    (lambda: s.File(path="etc/x", content=b""), "file: path 'etc/x' must be absolute (start with '/')"),
    (lambda: s.File(path="/x", content=b"", mode=-1), "file /x: mode -1 is not a file mode (0 to 0o7777)"),
    (lambda: s.HomeFile(path="/x", content=b""),
     "home file: '/x' must be relative to $HOME, without '..'"),
    (lambda: s.HomeFile(path="a/../../x", content=b""),
     "home file: 'a/../../x' must be relative to $HOME, without '..'"),
    (lambda: s.HomeFile(path="x", content=b"", mode=0o10000),
     "home file x: mode 4096 is not a file mode (0 to 0o7777)"),
    (lambda: s.Workdir(path="w"), "workdir: path 'w' must be absolute (start with '/')"),
    (lambda: s.Port(port=0), "port: 0 is not a TCP port (1-65535)"),
    (lambda: s.Port(port=65536), "port: 65536 is not a TCP port (1-65535)"),
    (lambda: s.Apt(packages=()), "apt: give at least one package"),
    (lambda: s.Pip(packages=()), "pip: give at least one requirement"),
    (lambda: s.Npm(packages=()), "npm: give at least one package"),
    (lambda: s.Service(name="web", run="  "), "service web: the run script is empty"),
    (lambda: s.Env(name="1A", value="x"), "env: '1A' is not a valid variable name"),
])
def test_bad_steps_are_refused_with_the_field_named(make, message) -> None:
    with pytest.raises(NbpipeError) as exc:
        make()
    assert str(exc.value) == message


def test_good_edges_are_accepted() -> None:
    assert s.Port(port=1).port == 1 and s.Port(port=65535).lower()[0].port == 65535
    assert s.File(path="/x", content=b"", mode=0o7777).mode == 0o7777
    assert s.File(path="/x", content=b"", mode=0).mode == 0


def test_run_entrypoint_service_init_and_home_file_lowerings() -> None:
    assert s.Run(script="id", user="0", network=True).lower() == (
        Exec("set -eu\nid", user="0", network=True),)
    assert s.Entrypoint(argv=("/init",), cmd=("lab",)).lower() == (
        SetEntrypoint(("/init",)), SetCmd(("lab",)))
    assert s.InitScript(name="10-x", script="#!/bin/sh\n").lower() == (
        WriteFile("/etc/cont-init.d/10-x", b"#!/bin/sh\n", 0o755),)
    assert s.Service(name="web", run="#!/bin/sh\nexec x\n").lower() == (
        WriteFile("/etc/services.d/web/run", b"#!/bin/sh\nexec x\n", 0o755),)
    assert s.Service(name="web", run="r", finish="f").lower()[1] == \
        WriteFile("/etc/services.d/web/finish", b"f", 0o755)
    assert s.HomeFile(path=".rc", content=b"x", mode=0o600).lower() == (
        WriteFile("/etc/nbpipe/skel/.rc", b"x", 0o600, "1000:0"),)


def test_describe_names_each_step_the_way_failures_quote_it() -> None:
    long = "x" * 80
    assert s.Run(script=f"\n{long}\nsecond").describe() == "run " + "x" * 70 + "..."
    assert s.Run(script="  ").describe() == "run "
    assert s.Apt(packages=("a", "b"), locked="a=1\nb=2\n").describe() == \
        "apt a b (locked: 2 pinned)"
    assert s.Pip(packages=("x==1",), locked="x==1 --hash=sha256:" + SHA).describe() == \
        "pip x==1 (locked: 1 pinned)"
    assert s.File(path="/x", content=b"abc", mode=0o600).describe() == "file /x (3 bytes, 600)"


def test_pip_lowering_uses_the_venv_owner_and_the_cache() -> None:
    [op] = s.Pip(packages=("numpy==2.0",), index_url="https://idx.example/simple",
                 extra_index_urls=("https://more.example/simple",), installer="pip").lower()
    assert op.script == ("set -eu\n/opt/venv/bin/python -m pip install --no-input --progress-bar "
                         "off --index-url https://idx.example/simple --extra-index-url "
                         "https://more.example/simple numpy==2.0")
    assert (op.user, op.network, op.pip) == ("1000:0", True, True)
    assert op.mounts == (CacheMount("/var/cache/nbpipe/pip", "nbpipe-pip", owner="1000:0"),)
    assert s.Pip(packages=("x==1",), index_url="https://idx.example/simple",
                 installer="pip").sources() == ("idx.example",)
    assert s.Pip(packages=("x==1",)).sources() == ("pypi.org", "files.pythonhosted.org")


def test_uv_installs_by_default_from_a_hash_checked_wheel_and_leaves_nothing() -> None:
    locked = "numpy==2.0 --hash=sha256:" + SHA
    [op] = s.Pip(packages=("numpy==2.0",), locked=locked,
                 extra_index_urls=("https://more.example/simple",)).lower()
    lines = op.script.splitlines()
    hashes = " ".join(f"--hash=sha256:{h}" for h in s.UV_WHEELS)
    assert lines[:5] == [
        "set -eu", "cat > /tmp/nbpipe-pip.lock <<'NBPIPE_LOCK'", locked, "NBPIPE_LOCK",
        f"echo 'uv=={s.UV_VERSION} {hashes}' > /tmp/nbpipe-uv.txt"]
    uv = f"/var/cache/nbpipe/pip/prefetched/uv-{s.UV_VERSION}"  # the run's prefetch, if any
    assert "\n".join(lines[5:9]) == s.await_prefetch(uv)  # while the run fetches it
    assert lines[9:11] == [
        'uv_from=""', f'if [ -d {uv} ]; then uv_from="--no-index --find-links {uv}"; fi']
    assert lines[11] == ("/opt/venv/bin/python -m pip install --no-input --progress-bar off "
                        "--quiet --no-deps --require-hashes --target /tmp/nbpipe-uv "
                        "-r /tmp/nbpipe-uv.txt $uv_from")
    assert lines[12:] == [
        "rm -f /tmp/nbpipe-uv.txt", "mkdir /tmp/nbpipe-uv/tmp",
        "TMPDIR=/tmp/nbpipe-uv/tmp /tmp/nbpipe-uv/bin/uv pip install --python /opt/venv/bin/python --compile-bytecode "
        "--link-mode copy --extra-index-url https://more.example/simple --index-strategy "
        "unsafe-best-match --require-hashes -r /tmp/nbpipe-pip.lock",
        "rm -rf /tmp/nbpipe-uv", "rm -f /tmp/nbpipe-pip.lock"]
    # one cache mount (see test_family's locked caches): uv's cache is a folder in pip's
    assert op.mounts == (CacheMount("/var/cache/nbpipe/pip", "nbpipe-pip", owner="1000:0"),)
    assert dict(op.env)["UV_CACHE_DIR"] == "/var/cache/nbpipe/pip/uv"
    assert dict(op.env)["UV_NO_CONFIG"] == "1" and dict(op.env)["UV_PYTHON_DOWNLOADS"] == "never"
    [one] = s.Pip(packages=("x==1",)).lower()  # one index: uv's own rule, no strategy
    assert "--index-strategy" not in one.script and one.script.splitlines()[-2].endswith(" x==1")
    # uv itself comes from PyPI, whatever the step's index
    assert s.Pip(packages=("x==1",), index_url="https://idx.example/simple").sources() == (
        "pypi.org", "files.pythonhosted.org", "idx.example")
    assert s.Pip(packages=("x==1",)).describe() == "pip x==1"
    assert s.Pip(packages=("x==1",), installer="pip").describe() == "pip x==1 (with pip)"


def test_the_installer_is_in_the_digest_but_pip_steps_keep_their_old_one() -> None:
    uv, pip = s.Pip(packages=("x==1",)), s.Pip(packages=("x==1",), installer="pip")
    assert uv.canonical()["installer"] == f"uv=={s.UV_VERSION}"
    assert "installer" not in pip.canonical()
    assert uv.canonical() != pip.canonical()
    with pytest.raises(NbpipeError, match="installer 'conda' is not one of uv, pip"):
        s.Pip(packages=("x==1",), installer="conda")


def test_apt_skip_stands_true_in_for_a_maintainer_script_command_during_the_install_only() -> None:
    plain = s.Apt(packages=("tex-common",))
    skipping = s.Apt(packages=("tex-common",), skip=("fmtutil",))
    script = skipping.lower()[0].script
    assert f"ln -s /bin/true {s.APT_SKIP}/fmtutil" in script
    # apt hands dpkg (so every maintainer script) the PATH DPkg::Path gives, ours first
    install = next(line for line in script.splitlines() if "apt-get install" in line)
    assert f"-o DPkg::Path={s.APT_SKIP}:/usr/sbin:/usr/bin:/sbin:/bin" in install
    lines = script.splitlines()
    assert lines.index(f"rm -rf {s.APT_SKIP}") == lines.index(install) + 1  # gone at once
    assert "DPkg::Path" not in plain.lower()[0].script
    # an apt step without skip keeps the digest it had; one with it differs
    assert "skip" not in plain.canonical() and skipping.canonical()["skip"] == ["fmtutil"]
    with pytest.raises(NbpipeError, match=r"apt: skip 'fmt util; rm -rf /' is not a command"):
        s.Apt(packages=("x",), skip=("fmt util; rm -rf /",))


def test_apt_skip_leaves_the_lock_key_as_it_was() -> None:
    from nbpipe.locks import lock

    plain = s.Apt(packages=("tex-common",))
    assert lock.key("i", 0, plain) == lock.key("i", 0, s.Apt(packages=("tex-common",), skip=("fmtutil",)))


def test_pip_removes_what_no_one_needs_in_its_own_layer() -> None:
    plain = s.Pip(packages=("x==1",))
    assert "remove" not in plain.canonical() and "after" not in plain.canonical()
    [op] = s.Pip(packages=("x==1",), remove=("/opt/venv/a/tests", "/opt/venv/*.map"),
                 after="hardlink -q -t /a /b").lower()
    assert op.script.splitlines()[-2:] == [
        "rm -rf /opt/venv/a/tests /opt/venv/*.map", "hardlink -q -t /a /b"]
    assert op.user == "1000:0"  # the venv's owner, in the install's own Exec (one layer)
    slim = s.Pip(packages=("x==1",), remove=("/r",))
    assert slim.canonical()["remove"] == ["/r"] and slim.canonical() != plain.canonical()


def test_the_family_prunes_only_test_suites_nothing_imports() -> None:
    from nbpipe.family import jupyter

    script = jupyter.slim()["after"]
    for kept in ("tables/tests", "numexpr/tests", "numba/tests", "jupyterlab/tests"):
        assert f"! -path {jupyter.SITE_PACKAGES}/{kept} " in script
    assert "! -path '*/jedi/third_party/*'" in script
    assert jupyter.NO_IRI_GRAMMAR in script


@pytest.mark.parametrize("files,message", [
    ((), "home tree: give at least one file"),
    ((("/a", b"", 0o644),), "home tree: '/a' must be a plain path relative to $HOME"),
    ((("a/../b", b"", 0o644),), "home tree: 'a/../b' must be a plain path relative to $HOME"),
    ((("a/./b", b"", 0o644),), "home tree: 'a/./b' must be a plain path relative to $HOME"),
    ((("a//b", b"", 0o644),), "home tree: 'a//b' must be a plain path relative to $HOME"),
    ((("", b"", 0o644),), "home tree: '' must be a plain path relative to $HOME"),
    ((("a\nb", b"", 0o644),), "home tree: 'a\\nb' must be a plain path relative to $HOME"),
    ((("a", "text", 0o644),), "home tree: a: content must be bytes, mode 0-0777"),
    ((("a", b"", 0o1000),), "home tree: a: content must be bytes, mode 0-0777"),
    ((("a", b"", -1),), "home tree: a: content must be bytes, mode 0-0777"),
    ((("a", b"", 0o644), ("a", b"x", 0o644)), "home tree: a given twice"),
])
def test_a_home_tree_takes_plain_relative_paths_once(files, message) -> None:
    with pytest.raises(NbpipeError) as exc:
        s.HomeTree(files=files)
    assert str(exc.value) == message


def test_a_home_tree_is_one_layer_owned_by_jovyan() -> None:
    from nbpipe.recipe.ops import WriteTree

    files = (("a/b.txt", b"xy", 0o777), ("c", b"z", 0))
    tree = s.HomeTree(files=files)
    assert tree.lower() == (WriteTree("/etc/nbpipe/skel", files, "1000:0", 0o775),)
    assert tree.describe() == "home-tree ~/ (2 files, 3 bytes)"
    assert s.Entrypoint(argv=("/init", "a b"), cmd=("lab",)).describe() == \
        "entrypoint /init 'a b' lab"


def test_npm_leaves_no_node_compile_cache_and_shares_its_download_cache() -> None:
    [op] = s.Npm(packages=("code-server@4.0.0",), build_deps=("g++",)).lower()
    assert dict(op.env)["NODE_DISABLE_COMPILE_CACHE"] == "1"  # other bytes each run
    assert "rm -rf /root/.npm/_logs /root/.cache/node-gyp /tmp/node-compile-cache" in op.script
    npm, apt = op.mounts
    assert (npm.id, npm.shared, apt.id, apt.shared) == (
        "nbpipe-npm", True, "nbpipe-apt-archives", False)
