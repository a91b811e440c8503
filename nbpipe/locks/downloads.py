"""The files a lock names, found and fetched by sha256: every wheel of a locked pip step
(from PyPI) and every .deb of a locked apt step (from Debian's archive).

Two users: the pipeline's prefetch (run/prefetch.py), which fetches an image's files
while earlier images build, and bench/bench.py, whose download-and-unpack limit is the
same files fetched the same way. A file is only ever kept when its sha256 is the lock's.

All requests share one HTTP client whose connections stay open: a host's name is looked
up once per connection, not once per file. This machine's resolver drops about one
look-up in forty (a 5 s stall each, more often under load): with a look-up per file the
chain's 600 files took 35-55 s to fetch, with kept connections a few seconds.
"""

from __future__ import annotations

import atexit
import hashlib
import json
import lzma
import os
import re
import ssl
import tempfile
import threading
import time
import urllib.parse
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Iterable

import httpx

from nbpipe.errors import NbpipeError
from nbpipe.locks import archive
from nbpipe.recipe.steps import Apt, Pip, Step

PYPI = "https://pypi.org/pypi"
DEBIAN = {  # suite -> archive, as the root's apt sources name them
    "bookworm": "http://deb.debian.org/debian",
    "bookworm-updates": "http://deb.debian.org/debian",
    "bookworm-security": "http://deb.debian.org/debian-security",
}
PIP_LINE = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)==(\S+)\s+--hash=sha256:([0-9a-f]{64})$")
LOOKUPS = 16  # PyPI documents at once
# A file name as PyPI and Debian give them, and nothing else: it becomes a path here.
SAFE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._+~%-]{0,250}")


@dataclass(frozen=True)
class LockedFile:
    name: str  # for messages: name==version (wheel) or name=version (.deb)
    sha256: str
    kind: str  # whl | deb
    url: str = ""
    size: int = 0
    filename: str = ""  # what an installer's cache calls it (apt: name_version_arch.deb)

    @property
    def project(self) -> str:
        """A wheel's project name as an index lists it (PEP 503's normalized form)."""
        return re.sub(r"[-_.]+", "-", self.name.split("==")[0]).lower()


def step_files(step: Step) -> list[LockedFile]:
    """What a locked step installs, one entry per file (an unlocked step: none). A pip
    step with its own index is not PyPI's to answer for, and one installed with pip does
    not read the run's folders: none either."""
    out: list[LockedFile] = []
    if isinstance(step, Pip) and step.prefetchable and step.locked:
        for line in step.locked.splitlines():
            m = PIP_LINE.match(line.strip())
            if m is None:  # a line of a shape this reader does not know: fetch nothing
                return []
            out.append(LockedFile(f"{m[1]}=={m[2]}", m[3], "whl"))
    elif isinstance(step, Apt) and step.locked and not step.snapshot:
        out = [LockedFile(str(p), p.sha256, "deb") for p in archive.pins(step.locked) if p.sha256]
    return out


_CLIENT: httpx.Client | None = None
_CLIENT_LOCK = threading.Lock()


def _client() -> httpx.Client:
    """The process's one client (thread-safe), made on first use and closed at exit. The
    system's trust store (as urllib used), so a proxy's CA the host trusts is trusted."""
    global _CLIENT
    with _CLIENT_LOCK:
        if _CLIENT is None:
            _CLIENT = httpx.Client(
                verify=ssl.create_default_context(),
                follow_redirects=True,
                timeout=httpx.Timeout(120, connect=30),
                limits=httpx.Limits(max_connections=64, max_keepalive_connections=64),
            )
            atexit.register(_CLIENT.close)
        return _CLIENT


def _get(url: str) -> bytes:
    for attempt in range(3):  # a dropped connection is tried again
        try:
            r = _client().get(url)
            r.raise_for_status()
            return r.content
        except httpx.TransportError as exc:
            if attempt == 2:
                raise OSError(f"{url}: {exc}") from exc
            time.sleep(1 + attempt)
        except httpx.HTTPStatusError as exc:
            raise OSError(f"{url}: HTTP {exc.response.status_code}") from exc
    raise AssertionError("unreachable")


def debian_index(arch: str) -> dict[str, tuple[str, int, str]]:
    """sha256 -> (URL, size, apt's file name) for every .deb Debian's suites serve now."""

    def packages(suite: str) -> dict[str, tuple[str, int, str]]:
        base = DEBIAN[suite]
        text = lzma.decompress(
            _get(f"{base}/dists/{suite}/main/binary-{arch}/Packages.xz")
        ).decode()
        index = {}
        for stanza in text.split("\n\n"):
            fields = dict(line.split(": ", 1) for line in stanza.splitlines() if ": " in line[:40])
            if {"SHA256", "Filename", "Package", "Version", "Architecture"} <= fields.keys():
                version = fields["Version"].replace(":", "%3a")  # as apt names its files
                name = f"{fields['Package']}_{version}_{fields['Architecture']}.deb"
                if not SAFE_NAME.fullmatch(name):  # it becomes a path in apt's cache
                    continue
                index[fields["SHA256"]] = (
                    f"{base}/{fields['Filename']}",
                    int(fields["Size"]),
                    name,
                )
        return index

    out: dict[str, tuple[str, int, str]] = {}
    with ThreadPoolExecutor(len(DEBIAN)) as pool:
        for index in pool.map(packages, DEBIAN):
            out.update(index)
    return out


def pypi_file(f: LockedFile) -> LockedFile | None:
    """``f`` with its URL and size from PyPI's JSON API (matched by sha256); None where
    PyPI has no such file."""
    name, version = f.name.split("==")
    data = json.loads(_get(f"{PYPI}/{urllib.parse.quote(name)}/json"))
    for u in data.get("releases", {}).get(version, []) + data.get("urls", []):
        if u["digests"]["sha256"] == f.sha256 and SAFE_NAME.fullmatch(u["filename"]):
            url = urllib.parse.urljoin(f"{PYPI}/{name}/json", u["url"])  # may be relative
            return replace(f, url=url, size=int(u["size"]), filename=u["filename"])
    return None


def uv_wheels(arch: str) -> list[LockedFile]:
    """The pinned wheels of uv (steps.UV_WHEELS) for ``arch``, as a uv step installs it."""
    from nbpipe.recipe.steps import UV_VERSION, UV_WHEELS

    tag = {"amd64": "x86_64", "arm64": "aarch64"}.get(arch, arch)
    data = json.loads(_get(f"{PYPI}/uv/json"))
    return [
        LockedFile(
            f"uv=={UV_VERSION}",
            u["digests"]["sha256"],
            "whl",
            urllib.parse.urljoin(f"{PYPI}/uv/json", u["url"]),
            int(u["size"]),
            u["filename"],
        )
        for u in data.get("releases", {}).get(UV_VERSION, [])
        if u["digests"]["sha256"] in UV_WHEELS
        and tag in u["filename"]
        and SAFE_NAME.fullmatch(u["filename"])
    ]


def find_urls(
    files: Iterable[LockedFile], arch: str, debian: dict[str, tuple[str, int, str]] | None = None
) -> tuple[list[LockedFile], list[str]]:
    """Each file with where to get it; and one line for each file found nowhere (a pin
    that has left the archive, a wheel PyPI does not serve). ``debian``: the archive's
    index (debian_index) when the caller has it already."""
    files = list(files)
    found, missing = [], []
    with ThreadPoolExecutor(LOOKUPS) as pool:
        wheels = [f for f in files if f.kind == "whl"]
        for f, got in zip(wheels, pool.map(_safe(pypi_file), wheels), strict=True):
            (
                found.append(got)
                if isinstance(got, LockedFile)
                else missing.append(f"{f.name}: {got}")
            )
    if any(f.kind == "deb" for f in files):
        index = debian if debian is not None else debian_index(arch)
        for f in files:
            if f.kind != "deb":
                continue
            if f.sha256 in index:
                url, size, name = index[f.sha256]
                found.append(replace(f, url=url, size=size, filename=name))
            else:
                missing.append(f"{f.name}: not in Debian's archive now")
    return found, missing


def _safe(fn):
    def call(f: LockedFile) -> LockedFile | str:
        try:
            return fn(f) or "no file with the lock's sha256 on PyPI"
        except (OSError, ValueError, KeyError) as exc:
            return f"PyPI's JSON API: {exc}"

    return call


def download(f: LockedFile, dest: Path) -> int:
    """Fetch ``f`` to ``dest`` (written whole or not at all); refuses a file whose
    sha256 is not the lock's. Returns its size."""
    h = hashlib.sha256()
    dest.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=dest.parent, prefix=".incoming-")
    try:
        for attempt in range(3):  # a dropped connection is tried again
            try:
                with (
                    _client().stream("GET", f.url, timeout=300) as r,
                    open(fd, "wb", closefd=False) as out,
                ):
                    r.raise_for_status()
                    out.seek(0)
                    out.truncate()
                    h = hashlib.sha256()
                    for chunk in r.iter_bytes(1 << 20):
                        h.update(chunk)
                        out.write(chunk)
                break
            except httpx.HTTPStatusError as exc:
                raise OSError(f"{f.url}: HTTP {exc.response.status_code}") from exc
            except (httpx.TransportError, OSError) as exc:  # a dropped connection
                if attempt == 2:
                    raise OSError(f"{f.url}: {exc}") from exc
                time.sleep(1 + 2 * attempt)
        if h.hexdigest() != f.sha256:
            raise NbpipeError(f"{f.name}: {f.url} has sha256 {h.hexdigest()}, the lock {f.sha256}")
        os.close(fd)
        fd = -1
        os.chmod(tmp, 0o644)
        os.replace(tmp, dest)
        return dest.stat().st_size
    finally:
        if fd != -1:
            os.close(fd)
        Path(tmp).unlink(missing_ok=True)
