"""Platform names: the only two we build, and their spellings in other tools."""

from __future__ import annotations

from nbpipe.errors import NbpipeError

AMD64 = "linux/amd64"
ARM64 = "linux/arm64"
ALL: tuple[str, ...] = (AMD64, ARM64)

# Debian and uname each spell the architecture differently.
DEBIAN_ARCH = {AMD64: "amd64", ARM64: "arm64"}
UNAME_ARCH = {AMD64: "x86_64", ARM64: "aarch64"}


def check(platform: str) -> str:
    if platform not in ALL:
        raise NbpipeError(f"unknown platform {platform!r}: use one of {', '.join(ALL)}")
    return platform


def host() -> str:
    import platform as _p

    machine = _p.machine()
    for plat, uname in UNAME_ARCH.items():
        if machine == uname:
            return plat
    raise NbpipeError(f"this machine's architecture {machine!r} is not one nbpipe builds for")
