"""A Debian root without any registry: debootstrap, a byte-stable tarball, an import.

The family's recipe is written on a digest-pinned registry root (debian:bookworm-slim).
Where no registry can be reached, ``bootstrap`` makes the equivalent root locally and
the very same recipe is rebased onto it (``Catalog.rebased``): same steps, another root,
so another digest - the content really is different.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Mapping

from nbpipe.engines.oci import ImageInfo, OciEngine
from nbpipe.errors import NbpipeError
from nbpipe.recipe import platforms as plat
from nbpipe.recipe.image import BaseRef

LOCAL_ROOT = "localhost/nbpipe/root"
SUITE = "bookworm"
MIRROR = "http://deb.debian.org/debian"

# The same apt sources debian:bookworm-slim ships, so both roots see the same archive.
DEBIAN_SOURCES = """\
Types: deb
URIs: http://deb.debian.org/debian
Suites: bookworm bookworm-updates
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg

Types: deb
URIs: http://deb.debian.org/debian-security
Suites: bookworm-security
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
"""

# Files that differ between two debootstraps of the same archive, or that belong to the
# host that ran it: removed so the tarball (and so the image id) is stable.
HOST_FILES = (
    "etc/hostname",
    "etc/resolv.conf",
    "var/cache/ldconfig/aux-cache",
    "etc/apt/sources.list",
)


def local_ref(platform: str) -> str:
    return f"{LOCAL_ROOT}:{SUITE}-{platform.split('/')[1]}"


def local_root(
    engine: OciEngine | None,
    platforms: tuple[str, ...] = plat.ALL,
    *,
    store: Mapping[str, ImageInfo] | None = None,
) -> BaseRef | None:
    """The bootstrapped root as a BaseRef, for whichever platforms exist locally (read
    from ``store``, the engine's image list, when the caller has it already)."""
    if store is None:
        store = engine.images() if engine is not None else {}
    digests = {p: store[local_ref(p)].id for p in platforms if local_ref(p) in store}
    return BaseRef(f"{LOCAL_ROOT}:{SUITE}", digests) if digests else None


def bootstrap(
    engine: OciEngine,
    platform: str,
    *,
    epoch: int = 0,
    force: bool = False,
    log=print,
    workdir: Path = Path("/var/tmp/nbpipe"),
) -> BaseRef:
    """debootstrap a minbase root for ``platform`` and import it (about 30 s)."""
    plat.check(platform)
    ref = local_ref(platform)
    if engine.exists(ref) and not force:
        log(f"{ref} already exists (use --force to make it again)")
        root = local_root(engine, (platform,))
        assert root is not None
        return root
    if shutil.which("debootstrap") is None:
        raise NbpipeError("debootstrap is not installed: apt-get install debootstrap")
    arch = plat.DEBIAN_ARCH[platform]
    foreign = platform != plat.host()
    if foreign and not Path("/proc/sys/fs/binfmt_misc/qemu-aarch64").exists():
        raise NbpipeError(
            f"bootstrapping {platform} on this {plat.host()} machine needs qemu "
            "emulation: apt-get install qemu-user-static and register it in "
            "/proc/sys/fs/binfmt_misc (see README, 'arm64')"
        )
    workdir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=workdir, prefix=f"rootfs-{arch}-") as tmp:
        rootfs = Path(tmp) / "rootfs"
        started = time.monotonic()
        args = ["debootstrap", "--variant=minbase", f"--arch={arch}", SUITE, str(rootfs), MIRROR]
        log(f"$ {' '.join(args)}")
        r = subprocess.run(args, capture_output=True, text=True)
        if r.returncode != 0:
            tail = "\n".join((r.stdout + r.stderr).strip().splitlines()[-8:])
            raise NbpipeError(f"debootstrap failed for {platform}:\n{tail}")
        _clean(rootfs)
        tar = Path(tmp) / "rootfs.tar"
        subprocess.run(
            [
                "tar",
                "-C",
                str(rootfs),
                "--sort=name",
                f"--mtime=@{epoch}",
                "--clamp-mtime",
                "--numeric-owner",
                "--format=posix",
                "--pax-option=exthdr.name=%d/PaxHeaders/%f,delete=atime,delete=ctime",
                "-cf",
                str(tar),
                ".",
            ],
            check=True,
        )
        os.utime(tar, (epoch, epoch))  # podman import takes "created" from the file's mtime
        engine.import_tar(tar, ref, platform)
        log(f"imported {ref} in {time.monotonic() - started:.0f}s")
    root = local_root(engine, (platform,))
    assert root is not None
    return root


# What debian:bookworm-slim leaves out (its dpkg path-excludes), so the local root is
# the same shape as the registry one; dpkg keeps excluding them for later installs.
SLIM_DPKG_CFG = """\
path-exclude /usr/share/doc/*
path-include /usr/share/doc/*/copyright
path-exclude /usr/share/groff/*
path-exclude /usr/share/info/*
path-exclude /usr/share/linda/*
path-exclude /usr/share/lintian/overrides/*
path-exclude /usr/share/locale/*
path-exclude /usr/share/man/*
"""
SLIM_DIRS = (
    "usr/share/groff",
    "usr/share/info",
    "usr/share/linda",
    "usr/share/lintian/overrides",
    "usr/share/locale",
    "usr/share/man",
)


def _slim(rootfs: Path) -> None:
    for rel in SLIM_DIRS:
        for child in (rootfs / rel).glob("*"):
            shutil.rmtree(child) if child.is_dir() and not child.is_symlink() else child.unlink()
    for doc in (rootfs / "usr/share/doc").glob("*"):
        if doc.is_dir() and not doc.is_symlink():
            for f in doc.iterdir():
                if f.name != "copyright":
                    shutil.rmtree(f) if f.is_dir() and not f.is_symlink() else f.unlink()
        elif doc.name != "copyright":
            doc.unlink()
    (rootfs / "etc/dpkg/dpkg.cfg.d/docker").write_text(SLIM_DPKG_CFG)


def _clean(rootfs: Path) -> None:
    _slim(rootfs)
    for rel in HOST_FILES:
        (rootfs / rel).unlink(missing_ok=True)
    for pattern in ("var/cache/apt/archives/*.deb", "var/cache/apt/*.bin", "var/lib/apt/lists/*"):
        for f in rootfs.glob(pattern):
            if f.is_file():
                f.unlink()
    for f in (rootfs / "var/log").rglob("*"):
        if f.is_file():
            f.unlink()
    (rootfs / "var/lib/apt/lists/partial").mkdir(parents=True, exist_ok=True)
    (rootfs / "etc/apt/sources.list.d").mkdir(parents=True, exist_ok=True)
    (rootfs / "etc/apt/sources.list.d/debian.sources").write_text(DEBIAN_SOURCES)
