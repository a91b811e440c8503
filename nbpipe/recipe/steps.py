"""The step vocabulary: what an image recipe is made of.

A step is a frozen value. It knows three things: its canonical form (what the digest
hashes), how it lowers to primitive ops (what engines execute), and which outside hosts
it needs (so a build can say up front "this needs Posit's download site").
"""

from __future__ import annotations

import dataclasses
import hashlib
import re
import shlex
from dataclasses import dataclass, field
from pathlib import PurePosixPath
from typing import Any, ClassVar
from urllib.parse import urlparse

from nbpipe.errors import NbpipeError
from nbpipe.recipe import contract
from nbpipe.recipe.ops import (
    CacheMount,
    Exec,
    Expose,
    Op,
    SetCmd,
    SetEntrypoint,
    SetEnv,
    SetLabel,
    SetUser,
    SetWorkdir,
    WriteFile,
    WriteTree,
)

JOVYAN = f"{contract.NB_UID}:{contract.NB_GID}"
DEBIAN_ARCHIVE = "deb.debian.org"
DEBIAN_SUITE = "bookworm"  # the family's release (rootfs.SUITE, the roots it is built on)
SNAPSHOT_ARCHIVE = "snapshot.debian.org"
PYPI_HOSTS = ("pypi.org", "files.pythonhosted.org")
NPM_REGISTRY = "registry.npmjs.org"

# uv installs pip steps (parallel downloads, unpacking and bytecode compiling). It comes from
# PyPI like any locked requirement: this exact version, one of these wheels, checked by
# sha256 (x86_64; aarch64 manylinux_2_28 and _2_17), into /tmp for one step only.
UV_VERSION = "0.13.9"
UV_WHEELS = (
    "d7f459fe4fd247d830351c75686d3996ace3c6f3f728eb0e85a30b7ada0cef19",
    "ecb6028d79dc96fbeafffe5c8af62a7099487ebc05a701e76714eebcffd06375",
    "5435c5ce14a56431208ca0996416d310f1598e8c2c8ba707688985a16bb82dbe",
)
UV_HOME = "/tmp/nbpipe-uv"
PIP_CACHE = "/var/cache/nbpipe/pip"
PREFETCHED_DIR = "prefetched"  # in pip's cache mount: <Pip.prefetch_key()>/simple, an index
PREFETCHED = f"{PIP_CACHE}/{PREFETCHED_DIR}"
UV_PREFETCHED = f"uv-{UV_VERSION}"  # the folder there holding uv's own wheel
PENDING_WAIT = 1800  # seconds a pip step waits at most for a folder the run is fetching
# In pip's cache mount, not one of its own: Buildah 1.28 (Debian 12's) releases only one
# of a RUN's `sharing=locked` cache mounts, so the next RUN with the other one hangs.
UV_CACHE = f"{PIP_CACHE}/uv"
INSTALLERS = ("uv", "pip")

# Files that differ between two otherwise identical apt runs: removing them keeps layers
# small and digests reproducible (measured: see DESIGN.md "Engines on our machines").
APT_CLEANUP = (
    "rm -rf /var/lib/apt/lists/* /var/cache/apt/*.bin /var/log/apt/* /var/log/dpkg.log"
    " /var/log/alternatives.log /var/cache/ldconfig/aux-cache /var/cache/debconf/*-old"
)
APT_ARCHIVES = CacheMount("/var/cache/apt/archives", "nbpipe-apt-archives")


def apt_install(
    *packages: str,
    snapshot: str | None = None,
    args: str | None = None,
    when: str = "",
    skip: tuple[str, ...] = (),
) -> list[str]:
    """The one way a step installs Debian packages: fresh lists, no recommends, the .debs
    kept in the APT_ARCHIVES cache mount (outside every layer). ``snapshot``: from
    Debian's dated snapshot instead of the image's own sources (which stay as they are).
    ``args``: shell words standing for the packages (the package store's "$@");
    ``when``: a shell test that must hold for the lists to be fetched; ``skip``: commands
    the packages' maintainer scripts run that ``true`` stands in for (Apt.skip)."""
    setup, opts = snapshot_sources(snapshot) if snapshot else ([], "")
    what = args if args is not None else " ".join(shlex.quote(p) for p in packages)
    update = f"apt-get update -q{opts}"
    if skip:  # apt gives dpkg, and so every maintainer script, the PATH DPkg::Path says
        setup = [
            *setup,
            f"mkdir {APT_SKIP}",
            *(f"ln -s /bin/true {APT_SKIP}/{c}" for c in skip),
        ]
        opts += f" -o DPkg::Path={APT_SKIP}:/usr/sbin:/usr/bin:/sbin:/bin"
    return [
        *setup,
        f"if {when}; then {update}; fi" if when else update,
        f"DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends{opts}"
        " -o APT::Keep-Downloaded-Packages=true " + what,
        *([f"rm -rf {APT_SKIP}"] if skip else []),
    ]


APT_SKIP = "/tmp/nbpipe-apt-skip"  # Apt.skip's stand-ins, for the install alone


DEB_STORE = "/run/nbpipe/debs"  # options.DEBSTORE_TARGET: the package store, when mounted
APT_PINS = "/tmp/nbpipe-apt.lock"

# Each pin from the package store when it holds the .deb, else from the archive by
# name=version. ``remote``: 1 when some pin must come from the archive (then apt needs
# fresh lists); with every .deb at hand apt installs the files alone, without asking the
# archive. The .debs at hand are checked by sha256 in one `sha256sum -c` before apt sees
# any of them (a file that does not match stops the build, named with its pin): one
# process, where one per file took 6.9 s of jupyter-scipy's build for its 301 .debs.
_FROM_STORE = """\
set --
remote=0
: > {sums}
while read -r pin sum; do
  deb={store}/$sum.deb
  if [ -f "$deb" ]; then
    echo "$sum  $deb" >> {sums}
    set -- "$@" "$deb"
  else
    set -- "$@" "$pin"
    remote=1
  fi
done < {pins}
if [ -s {sums} ] && ! sha256sum --quiet --strict -c {sums} > {sums}.out 2>&1; then
  cat {sums}.out >&2
  while read -r pin sum; do
    if grep -qF "/$sum.deb: FAILED" {sums}.out; then
      echo "nbpipe: the package store's $sum.deb ($pin) does not match its sha256: refused" >&2
    fi
  done < {pins}
  exit 1
fi
rm -f {sums} {sums}.out"""


def apt_install_from_store(
    pins: list[str] | tuple[str, ...], *, snapshot: str | None = None, skip: tuple[str, ...] = ()
) -> list[str]:
    """apt_install for lock lines that carry their .deb's sha256 (name=version@sha256:H)."""
    lines = "\n".join(p.replace("@sha256:", " ") if "@sha256:" in p else f"{p} -" for p in pins)
    return [
        f"cat > {APT_PINS} <<'NBPIPE_LOCK'\n{lines}\nNBPIPE_LOCK",
        _FROM_STORE.format(store=DEB_STORE, pins=APT_PINS, sums=f"{APT_PINS}.sha256"),
        *apt_install(snapshot=snapshot, args='"$@"', when='[ "$remote" = 1 ]', skip=skip),
        f"rm -f {APT_PINS}",
    ]


SNAPSHOT_LIST = "/tmp/nbpipe-snapshot.list"
_SNAPSHOT = re.compile(r"[0-9]{8}T[0-9]{6}Z")


def snapshot_sources(date: str) -> tuple[list[str], str]:
    """Shell lines writing the snapshot's sources (main, updates, security as they were at
    ``date``) and the apt options that read only them. Snapshots are frozen, so their
    Release files are past Valid-Until by design: that check is off for them alone."""
    if not _SNAPSHOT.fullmatch(date):
        raise NbpipeError(
            f"apt snapshot {date!r}: give a time like 20261126T000000Z "
            "(snapshot.debian.org's form, UTC)"
        )
    base = f"http://{SNAPSHOT_ARCHIVE}/archive"
    lines = [
        f"deb {base}/debian/{date}/ {DEBIAN_SUITE} main",
        f"deb {base}/debian/{date}/ {DEBIAN_SUITE}-updates main",
        f"deb {base}/debian-security/{date}/ {DEBIAN_SUITE}-security main",
    ]
    setup = [f"printf '%s\\n' {' '.join(shlex.quote(x) for x in lines)} > {SNAPSHOT_LIST}"]
    opts = (
        f" -o Dir::Etc::SourceList={SNAPSHOT_LIST} -o Dir::Etc::SourceParts=-"
        " -o Acquire::Check-Valid-Until=false"
    )
    return setup, opts


# After npm has built native modules: the packages installed for the build go again,
# except those holding a shared library some built *.node file links to.
NPM_PURGE_BUILD_DEPS = """\
find {prefix} -name '*.node' -type f -exec ldd {{}} + 2>/dev/null \\
  | awk '/=> \\//{{print $3}}' | sort -u \\
  | while read -r lib; do dpkg -S "$lib" 2>/dev/null || dpkg -S "$(realpath "$lib")" 2>/dev/null || true; done \\
  | cut -d: -f1 | sort -u > /tmp/nbpipe-keep
dpkg-query -W -f='${{Package}}\\n' | sort > /tmp/nbpipe-after
comm -13 /tmp/nbpipe-before /tmp/nbpipe-after | grep -vxF -f /tmp/nbpipe-keep > /tmp/nbpipe-purge || true
if [ -s /tmp/nbpipe-purge ]; then
  DEBIAN_FRONTEND=noninteractive xargs apt-get purge -y -q < /tmp/nbpipe-purge
fi
rm -f /tmp/nbpipe-before /tmp/nbpipe-after /tmp/nbpipe-keep /tmp/nbpipe-purge"""  # noqa: E501 (in the digest)

# Every pattern is used with fullmatch: a regex `$` would accept a final newline.
_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_APT_NAME = re.compile(r"[a-z0-9][a-z0-9+.-]*(:[a-z0-9]+)?(=[A-Za-z0-9.+~:-]+)?")
_COMMAND = re.compile(r"[a-z0-9][a-z0-9._+-]{0,63}")  # Apt.skip: a plain command name
# A lock line: name=version, and (locks written since the package store) the .deb's
# sha256 from the archive's index.
_APT_PIN = re.compile(r"[a-z0-9][a-z0-9+.-]*(:[a-z0-9]+)?=[A-Za-z0-9.+~:-]+(@sha256:[0-9a-f]{64})?")
_NPM_NAME = re.compile(r"(@[a-z0-9][\w.-]*/)?[a-z0-9][\w.-]*(@[\w.^~<>=*|-]+)?", re.ASCII)
_SHA256 = re.compile(r"[0-9a-f]{64}")
_LABEL_KEY = re.compile(r"[A-Za-z0-9][A-Za-z0-9._/-]*")
_PLAIN_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")  # a file name: no '/', no '$'
_PATH = re.compile(r"[A-Za-z0-9._+@%=:,~/-]+")  # no spaces, quotes, '$', '\\' or controls
_OWNER = re.compile(r"[0-9]+:[0-9]+")
_USER = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]*(:[A-Za-z0-9_][A-Za-z0-9_.-]*)?")
_VERSION_CLAUSE = r"(===|==|>=|<=|!=|~=|<|>)[ ]*[A-Za-z0-9.*+!_-]+"
_PIP_SPEC = re.compile(
    r"[A-Za-z0-9][A-Za-z0-9._-]*(\[[A-Za-z0-9,._-]+\])?[ ]*"
    rf"({_VERSION_CLAUSE}([ ]*,[ ]*{_VERSION_CLAUSE})*)?",
    re.ASCII,
)


def _canon(value: Any) -> Any:
    if isinstance(value, bytes):
        return {"sha256": hashlib.sha256(value).hexdigest()}
    if isinstance(value, (tuple, list)):
        return [_canon(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _canon(v) for k, v in sorted(value.items())}
    return value


def _abs(path: str, what: str) -> str:
    """An absolute path in the image: plain characters only (it lands in Dockerfile lines,
    where '$' would expand and a newline would start an instruction), no '..'; spelled one
    way ('/a//b/./' is '/a/b'), so paths that name the same file give the same digest."""
    if not PurePosixPath(path).is_absolute():
        raise NbpipeError(f"{what}: path {path!r} must be absolute (start with '/')")
    return "/" + str(PurePosixPath(_image_path(path, what))).lstrip("/")


def _image_path(path: str, what: str) -> str:
    if not _PATH.fullmatch(path) or ".." in PurePosixPath(path).parts:
        raise NbpipeError(
            f"{what}: path {path!r} may use only letters, digits and "
            "._+@%=:,~/- (no spaces, quotes, '$', '..' or control characters)"
        )
    return path


def printable(value: str, what: str) -> str:
    """Data that may be any printable text (labels, env values): one line, no control
    characters, so it can never end the instruction it is quoted into."""
    if not isinstance(value, str) or not value.isprintable():
        raise NbpipeError(
            f"{what}: {value!r} must be printable text on one line "
            "(no newlines, tabs or other control characters)"
        )
    return value


def _user(user: str, what: str) -> str:
    if not _USER.fullmatch(user):
        raise NbpipeError(f"{what}: {user!r} is not a user (name or uid, optionally :group)")
    return user


def _mode(mode: int, what: str) -> int:
    if isinstance(mode, bool) or not isinstance(mode, int) or not 0 <= mode <= 0o7777:
        raise NbpipeError(f"{what}: mode {mode!r} is not a file mode (0 to 0o7777)")
    return mode


@dataclass(frozen=True, kw_only=True)
class Step:
    """Base of all steps. ``platforms`` empty means the step applies to every platform."""

    kind: ClassVar[str] = "step"
    platforms: tuple[str, ...] = ()

    def applies_to(self, platform: str) -> bool:
        return not self.platforms or platform in self.platforms

    def canonical(self) -> dict[str, Any]:
        """What the digest hashes. ``platforms`` is left out: a per-platform digest only
        ever sees the steps that apply to its platform, which already says it."""
        body = {
            f.name: _canon(getattr(self, f.name))
            for f in dataclasses.fields(self)
            if f.name != "platforms"
        }
        return {"kind": self.kind, **body}

    def lower(self) -> tuple[Op, ...]:
        raise NotImplementedError

    def sources(self) -> tuple[str, ...]:
        """Outside hosts this step downloads from."""
        return ()

    def unpinned(self) -> tuple[str, ...]:
        """Downloads whose checksum is not recorded yet (the step will refuse to build)."""
        return ()

    def describe(self) -> str:
        return self.kind


@dataclass(frozen=True, kw_only=True)
class Apt(Step):
    """Install Debian packages (name or name=version), recommends off, caches outside layers."""

    kind: ClassVar[str] = "apt"
    packages: tuple[str, ...]
    # Paths (shell globs) the packages leave that must go in the same layer: build-time
    # logs, or caches that are not the same from one run to the next.
    remove: tuple[str, ...] = ()
    after: str = ""  # shell commands for the same layer, after install and cleanup
    # A lock (see nbpipe/locks/lock.py): every package this step installs, as name=version lines.
    locked: str | None = None
    # Install from Debian's snapshot of this time (e.g. "20261126T000000Z") instead of the
    # moving archive: every version stays there for good (README, "Locks").
    snapshot: str | None = None
    # Commands the packages' own maintainer scripts would run whose whole result ``remove``
    # deletes (TeX's fmtutil: every format, 12 s of jupyter-scipy's build): ``true``
    # stands in for them during the install, so that work is not done to be thrown away.
    skip: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if not self.packages:
            raise NbpipeError("apt: give at least one package")
        for c in self.skip:
            if not isinstance(c, str) or not _COMMAND.fullmatch(c):
                raise NbpipeError(f"apt: skip {c!r} is not a command name (like fmtutil)")
        for p in self.packages:
            if not isinstance(p, str) or not _APT_NAME.fullmatch(p):
                raise NbpipeError(f"apt: {p!r} is not a Debian package name (name or name=version)")
        for p in (self.locked or "").split():
            if not _APT_PIN.fullmatch(p):
                raise NbpipeError(f"apt: lock line {p!r} is not name=version[@sha256:<64 hex>]")
        if self.snapshot is not None:
            if not isinstance(self.snapshot, str):
                raise NbpipeError(
                    f"apt: snapshot {self.snapshot!r} is not a time like 20261126T000000Z"
                )
            snapshot_sources(self.snapshot)  # the format, checked when the step is made

    def lower(self) -> tuple[Op, ...]:
        wanted = self.locked.split() if self.locked else self.packages
        stored = any("@sha256:" in p for p in wanted)
        install = (
            apt_install_from_store(wanted, snapshot=self.snapshot, skip=self.skip)
            if stored
            else apt_install(*wanted, snapshot=self.snapshot, skip=self.skip)
        )
        script = "\n".join(
            [
                "set -eu",
                *install,
                APT_CLEANUP,
                *([f"rm -f {SNAPSHOT_LIST}"] if self.snapshot else []),
                *([f"rm -rf {' '.join(self.remove)}"] if self.remove else []),
                *([self.after] if self.after else []),
            ]
        )
        return (Exec(script, user="root", network=True, mounts=(APT_ARCHIVES,), apt=stored),)

    def canonical(self) -> dict[str, Any]:
        body = super().canonical()
        for added_later in ("snapshot", "skip"):  # steps without one keep their digests
            if not body[added_later]:
                del body[added_later]
        return body

    def sources(self) -> tuple[str, ...]:
        return (SNAPSHOT_ARCHIVE,) if self.snapshot else (DEBIAN_ARCHIVE,)

    def describe(self) -> str:
        lock = f" (locked: {len(self.locked.split())} pinned)" if self.locked else ""
        snap = f" (snapshot {self.snapshot})" if self.snapshot else ""
        return "apt " + " ".join(self.packages) + snap + lock


@dataclass(frozen=True, kw_only=True)
class Pip(Step):
    """Python packages into the image's venv, as its owner, with the download cache outside
    layers. ``installer``: uv (default; parallel, same lock, same hashes) or pip."""

    kind: ClassVar[str] = "pip"
    packages: tuple[str, ...]
    index_url: str | None = None
    extra_index_urls: tuple[str, ...] = ()
    python: str = contract.VENV_PYTHON
    user: str = JOVYAN
    # A lock (see nbpipe/locks/lock.py): every distribution this step installs, pinned with its
    # sha256 ("name==1.0 --hash=sha256:..." lines). The installer then refuses anything else.
    locked: str | None = None
    # What the install leaves that no one needs at run time (test suites, source maps),
    # gone in this same layer, since a later step cannot make a layer smaller: shell globs
    # removed after the install, then ``after`` (shell commands, run as ``user``).
    remove: tuple[str, ...] = ()
    after: str = ""
    installer: str = "uv"
    # Runs at the same time as the apt step just before it, in that step's layer (issue
    # 23: nothing waits without a reason). Only for a step that needs nothing the apt step
    # installs: the recipe says so, nbpipe cannot tell (recipe/lowering.py).
    beside: bool = False

    def __post_init__(self) -> None:
        if not self.packages:
            raise NbpipeError("pip: give at least one requirement")
        if not isinstance(self.beside, bool):
            raise NbpipeError(f"pip: beside {self.beside!r} is not true or false")
        if self.beside and not _OWNER.fullmatch(self.user):
            raise NbpipeError(
                f"pip: a step beside an apt step runs as a numeric uid:gid, not {self.user!r}"
            )
        for p in self.packages:
            if not isinstance(p, str) or not _PIP_SPEC.fullmatch(p):
                raise NbpipeError(f"pip: {p!r} is not a requirement like 'name==1.2.3'")
        if self.installer not in INSTALLERS:
            raise NbpipeError(
                f"pip: installer {self.installer!r} is not one of {', '.join(INSTALLERS)}"
            )

    def lower(self) -> tuple[Op, ...]:
        lines = ["set -eu"]
        lock = "/tmp/nbpipe-pip.lock"
        if self.locked:  # the locked closure, checked by hash, instead of a fresh resolve
            lines.append(f"cat > {lock} <<'NBPIPE_LOCK'\n{self.locked.strip()}\nNBPIPE_LOCK")
            what = ["--require-hashes", "-r", lock]
        else:
            what = list(self.packages)
        fetched = ""
        if self.prefetchable:
            # The run's prefetch (run/prefetch.py) may have fetched this lock's files into
            # pip's cache mount while earlier steps built, as a simple index of its own:
            # uv asks it first and takes a project it lists from it alone (first-index),
            # the lock's hashes checked as ever; PyPI only for the rest (an sdist's build
            # requirements, a file not found). Without the folder, PyPI as before.
            folder = f"{PREFETCHED}/{self.prefetch_key()}"
            lines.append(await_prefetch(folder))
            lines.append(
                f"set --\nif [ -d {folder} ]; then\n"
                f"  set -- --extra-index-url file://{folder}/simple --index-strategy first-index\n"
                "fi"
            )
            fetched = ' "$@"'
        if self.installer == "uv":
            lines += [*_uv_setup(self.python), shlex.join([*self._uv_args(), *what]) + fetched]
            lines.append(f"rm -rf {UV_HOME}")
            if fetched:  # what uv notes of a file installed from a folder: the file's time
                lines.append(_UV_CACHE_NOTES.format(venv=shlex.quote(_venv(self.python))))
        else:
            lines.append(shlex.join([*self._pip_args(), *what]) + fetched)
        if self.locked:
            lines.append(f"rm -f {lock}")
        if self.remove:
            lines.append(f"rm -rf {' '.join(self.remove)}")
        if self.after:
            lines.append(self.after)
        mounts = [CacheMount(PIP_CACHE, "nbpipe-pip", owner=self.user)]
        env = [("PIP_CACHE_DIR", PIP_CACHE), ("PIP_DISABLE_PIP_VERSION_CHECK", "1")]
        if self.installer == "uv":  # hermetic: no user config, no Python downloads
            env += [
                ("UV_CACHE_DIR", UV_CACHE),
                ("UV_NO_CONFIG", "1"),
                ("UV_NO_PROGRESS", "1"),
                ("UV_PYTHON_DOWNLOADS", "never"),
            ]
        return (
            Exec(
                "\n".join(lines),
                user=self.user,
                network=True,
                pip=True,
                mounts=tuple(mounts),
                env=tuple(env),
            ),
        )

    @property
    def prefetchable(self) -> bool:
        """A locked uv step on PyPI alone: what the run's prefetch serves."""
        return (
            bool(self.locked)
            and self.installer == "uv"
            and not (self.index_url or self.extra_index_urls)
        )

    def prefetch_key(self) -> str:
        """The folder under PREFETCHED that holds this lock's files, once all are there."""
        return hashlib.sha256((self.locked or "").strip().encode()).hexdigest()[:16]

    def index_args(self) -> list[str]:
        """The step's indexes as pip's and uv's flags (lock.resolve asks pip with them)."""
        args = ["--index-url", self.index_url] if self.index_url else []
        for url in self.extra_index_urls:
            args += ["--extra-index-url", url]
        return args

    def _pip_args(self) -> list[str]:
        pip = [self.python, "-m", "pip", "install", "--no-input", "--progress-bar", "off"]
        return [*pip, *self.index_args()]

    def _uv_args(self) -> list[str]:
        # Bytecode as pip writes it (only what this step installs; checked-hash .pyc under
        # SOURCE_DATE_EPOCH); copies, since the cache is another file system; with several
        # indexes, pip's rule (best version across all of them; the lock's hashes pin files).
        # TMPDIR: uv leaves lock files there (uv-setuptools-*.lock) that would differ per run
        args = [f"TMPDIR={UV_HOME}/tmp", f"{UV_HOME}/bin/uv", "pip", "install"]
        args += ["--python", self.python]
        args += ["--compile-bytecode", "--link-mode", "copy", *self.index_args()]
        if self.extra_index_urls:
            args += ["--index-strategy", "unsafe-best-match"]
        return args

    def canonical(self) -> dict[str, Any]:
        body = super().canonical()
        for name in ("remove", "after", "beside"):  # added later: steps without them
            if not body[name]:  # keep their digests
                del body[name]
        if body["installer"] == "pip":  # pip steps keep the digests they had before uv
            del body["installer"]
        else:  # another uv may install other bytes: a new version is a new digest
            body["installer"] = f"uv=={UV_VERSION}"
        return body

    def sources(self) -> tuple[str, ...]:
        hosts = [urlparse(u).hostname or u for u in (self.index_url, *self.extra_index_urls) if u]
        if self.index_url and self.installer == "pip":
            return tuple(hosts)
        return tuple(dict.fromkeys((*PYPI_HOSTS, *hosts)))  # uv itself comes from PyPI

    def describe(self) -> str:
        lock = f" (locked: {len(self.locked.splitlines())} pinned)" if self.locked else ""
        via = " (with pip)" if self.installer == "pip" else ""
        return "pip " + " ".join(self.packages) + via + lock


# uv writes <dist>.dist-info/uv_cache.json (the source file's mtime) for a distribution it
# installed from a local folder, and lists it in RECORD: gone, so an image installed from
# the run's prefetch is the one installed from the index, byte for byte.
_UV_CACHE_NOTES = """\
find {venv} -path '*.dist-info/uv_cache.json' | while read -r note; do
  sed -i '/\\.dist-info\\/uv_cache\\.json,/d' "${{note%/uv_cache.json}}/RECORD"
  rm -f "$note"
done"""


def _venv(python: str) -> str:
    """The venv a python of it lives in (/opt/venv for /opt/venv/bin/python)."""
    return str(PurePosixPath(python).parent.parent)


def await_prefetch(folder: str) -> str:
    """Shell: wait while the run's prefetch says ``folder`` is on its way (a fresh
    ``<folder>.pending``, touched every few seconds while it fetches), at most
    PENDING_WAIT seconds; a marker a killed run left is stale within a minute, ignored."""
    marker = f"{folder}.pending"
    fresh = f'[ -n "$(find {marker} -mmin -1 2>/dev/null)" ]'
    return (
        f"n=0\nwhile [ ! -d {folder} ] && {fresh} && [ $n -lt {PENDING_WAIT} ]; do\n"
        "  sleep 1; n=$((n+1))\ndone"
    )


def _uv_setup(python: str) -> list[str]:
    """uv for one step: its pinned wheel installed by the venv's own pip, hash-checked."""
    hashes = " ".join(f"--hash=sha256:{h}" for h in UV_WHEELS)
    req = f"{UV_HOME}.txt"
    pip = [python, "-m", "pip", "install", "--no-input", "--progress-bar", "off", "--quiet"]
    pip += ["--no-deps", "--require-hashes", "--target", UV_HOME, "-r", req]
    fetched = f"{PREFETCHED}/{UV_PREFETCHED}"  # uv's wheel, when the run's prefetch got it
    return [
        f"echo 'uv=={UV_VERSION} {hashes}' > {req}",
        await_prefetch(fetched),
        f'uv_from=""\nif [ -d {fetched} ]; then uv_from="--no-index --find-links {fetched}"; fi',
        shlex.join(pip) + " $uv_from",
        f"rm -f {req}",
        f"mkdir {UV_HOME}/tmp",
    ]


@dataclass(frozen=True, kw_only=True)
class Npm(Step):
    """npm install -g into a prefix, using the node/npm already in the image."""

    kind: ClassVar[str] = "npm"
    packages: tuple[str, ...]
    prefix: str = "/usr/local"
    user: str = "root"
    npm: str = "npm"
    nodedir: str | None = None  # Node headers for node-gyp (never downloaded at build time)
    build_deps: tuple[str, ...] = ()  # apt packages present only while npm runs

    def __post_init__(self) -> None:
        if not self.packages:
            raise NbpipeError("npm: give at least one package")
        for p in self.packages:
            if not isinstance(p, str) or not _NPM_NAME.fullmatch(p):
                raise NbpipeError(f"npm: {p!r} is not a package like 'name@1.2.3'")

    def lower(self) -> tuple[Op, ...]:
        args = [
            self.npm,
            "install",
            "--global",
            "--prefix",
            self.prefix,
            "--no-fund",
            "--no-audit",
            "--unsafe-perm",
            *self.packages,
        ]
        lines = ["set -eu"]
        mounts = [CacheMount("/var/cache/nbpipe/npm", "nbpipe-npm", owner="0:0", shared=True)]
        if self.build_deps:
            lines += [
                "dpkg-query -W -f='${Package}\\n' | sort > /tmp/nbpipe-before",
                *apt_install(*self.build_deps),
            ]
            mounts.append(APT_ARCHIVES)
        # Node 22+ caches compiled code in $TMPDIR/node-compile-cache: other bytes each run
        lines += [
            shlex.join(args),
            "rm -rf /root/.npm/_logs /root/.cache/node-gyp /tmp/node-compile-cache",
        ]
        if self.build_deps:  # purge what we added, but keep libraries the built modules use
            lines += [NPM_PURGE_BUILD_DEPS.format(prefix=shlex.quote(self.prefix)), APT_CLEANUP]
        env = [("npm_config_cache", "/var/cache/nbpipe/npm"), ("NODE_DISABLE_COMPILE_CACHE", "1")]
        if self.nodedir:
            env.append(("npm_config_nodedir", self.nodedir))
        return (
            Exec(
                "\n".join(lines), user=self.user, network=True, mounts=tuple(mounts), env=tuple(env)
            ),
        )

    def sources(self) -> tuple[str, ...]:
        return (NPM_REGISTRY, DEBIAN_ARCHIVE) if self.build_deps else (NPM_REGISTRY,)

    def describe(self) -> str:
        return "npm " + " ".join(self.packages)


@dataclass(frozen=True, kw_only=True)
class Env(Step):
    """Set an environment variable. Values are literal: no $VAR expansion on any engine."""

    kind: ClassVar[str] = "env"
    name: str
    value: str

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not _ENV_NAME.fullmatch(self.name):
            raise NbpipeError(f"env: {self.name!r} is not a valid variable name")
        printable(self.value, f"env: the value of {self.name}")

    def lower(self) -> tuple[Op, ...]:
        return (SetEnv(self.name, self.value),)

    def describe(self) -> str:
        return f"env {self.name}={self.value}"


@dataclass(frozen=True, kw_only=True)
class User(Step):
    kind: ClassVar[str] = "user"
    user: str

    def __post_init__(self) -> None:
        _user(self.user, "user")

    def lower(self) -> tuple[Op, ...]:
        return (SetUser(self.user),)

    def describe(self) -> str:
        return f"user {self.user}"


@dataclass(frozen=True, kw_only=True)
class Workdir(Step):
    kind: ClassVar[str] = "workdir"
    path: str

    def __post_init__(self) -> None:
        object.__setattr__(self, "path", _abs(self.path, "workdir"))

    def lower(self) -> tuple[Op, ...]:
        return (SetWorkdir(self.path),)

    def describe(self) -> str:
        return f"workdir {self.path}"


@dataclass(frozen=True, kw_only=True)
class File(Step):
    """Put a file in the image; its content (by hash) is part of the digest."""

    kind: ClassVar[str] = "file"
    path: str
    content: bytes = field(repr=False)
    mode: int = 0o644
    owner: str = "0:0"

    def __post_init__(self) -> None:
        given = self.path
        object.__setattr__(self, "path", _abs(self.path, "file"))
        if self.path == "/":  # '//' or '/.' too: COPY would drop the file *into* /
            raise NbpipeError(
                f"file: path {given!r} is the root folder; name the file itself "
                "(e.g. /etc/team.cfg)"
            )
        _mode(self.mode, f"file {self.path}")
        if not isinstance(self.owner, str) or not _OWNER.fullmatch(self.owner):
            raise NbpipeError(f"file {self.path}: owner {self.owner!r}: give uid:gid, e.g. 1000:0")
        if isinstance(self.content, str):
            object.__setattr__(self, "content", self.content.encode())

    def lower(self) -> tuple[Op, ...]:
        return (WriteFile(self.path, self.content, self.mode, self.owner),)

    def describe(self) -> str:
        return f"file {self.path} ({len(self.content)} bytes, {self.mode:o})"


@dataclass(frozen=True, kw_only=True)
class Download(Step):
    """Fetch a URL and refuse it unless its sha256 matches; optionally unpack a tarball."""

    kind: ClassVar[str] = "download"
    url: str
    sha256: str | None  # None: not pinned yet; the step then refuses to build
    dest: str
    mode: int = 0o644
    extract: bool = False  # dest is then a directory the tarball unpacks into
    strip_components: int = 0

    def __post_init__(self) -> None:
        object.__setattr__(self, "dest", _abs(self.dest, "download"))
        _mode(self.mode, f"download {self.dest}")
        _check_url(self.url, self.sha256, "download")

    def lower(self) -> tuple[Op, ...]:
        if self.sha256 is None:
            return (_refuse_unpinned(self.url),)
        tmp = "/tmp/nbpipe-download"
        lines = [
            "set -eu",
            f"curl -fsSL --retry 3 -o {tmp} {shlex.quote(self.url)}",
            f"echo {shlex.quote(self.sha256 + '  ' + tmp)} | sha256sum -c -",
        ]
        dest = shlex.quote(self.dest)
        if self.extract:
            lines += [
                f"mkdir -p {dest}",
                f"tar -xf {tmp} -C {dest} --strip-components={self.strip_components}"
                " --no-same-owner",
                f"rm -f {tmp}",
            ]
        else:
            lines += [
                f"mkdir -p $(dirname {dest})",
                f"install -m {self.mode:o} {tmp} {dest}",
                f"rm -f {tmp}",
            ]
        return (Exec("\n".join(lines), user="root", network=True),)

    def sources(self) -> tuple[str, ...]:
        return (urlparse(self.url).hostname or self.url,)

    def unpinned(self) -> tuple[str, ...]:
        return () if self.sha256 else (self.url,)

    def describe(self) -> str:
        return f"download {self.url} -> {self.dest}"


def _check_url(url: str, sha256: str | None, what: str) -> None:
    if not isinstance(url, str) or not url.isprintable() or " " in url:
        raise NbpipeError(f"{what}: {url!r} is not a URL")
    if sha256 is not None and not _SHA256.fullmatch(sha256):
        raise NbpipeError(f"{what} {url}: sha256 must be 64 lowercase hex digits")
    if urlparse(url).scheme != "https":
        raise NbpipeError(f"{what} {url}: only https:// URLs are allowed")


def _refuse_unpinned(url: str) -> Exec:
    """What an unpinned download lowers to: a step that fails, saying why, if ever run
    (the pipeline reports such images as unbuildable before building anything)."""
    msg = (
        f"nbpipe: {url} has no sha256 pin: download it once where its host is reachable, "
        "check it, and record its sha256 in the recipe"
    )
    return Exec(f"echo {shlex.quote(msg)} >&2\nexit 1", user="root")


@dataclass(frozen=True, kw_only=True)
class Deb(Step):
    """Install a .deb from a URL (checked by sha256) with its dependencies, in one layer."""

    kind: ClassVar[str] = "deb"
    url: str
    sha256: str | None

    def __post_init__(self) -> None:
        _check_url(self.url, self.sha256, "deb")

    def lower(self) -> tuple[Op, ...]:
        if self.sha256 is None:
            return (_refuse_unpinned(self.url),)
        deb = "/tmp/nbpipe-package.deb"
        script = "\n".join(
            [
                "set -eu",
                f"curl -fsSL --retry 3 -o {deb} {shlex.quote(self.url)}",
                f"echo {shlex.quote(str(self.sha256) + '  ' + deb)} | sha256sum -c -",
                *apt_install(deb),
                f"rm -f {deb}",
                APT_CLEANUP,
            ]
        )
        return (Exec(script, user="root", network=True, mounts=(APT_ARCHIVES,)),)

    def sources(self) -> tuple[str, ...]:
        return (urlparse(self.url).hostname or self.url, DEBIAN_ARCHIVE)

    def unpinned(self) -> tuple[str, ...]:
        return () if self.sha256 else (self.url,)

    def describe(self) -> str:
        return f"deb {self.url}"


@dataclass(frozen=True, kw_only=True)
class Run(Step):
    """A shell script. ``user`` None runs as the image's current user; say if it needs net."""

    kind: ClassVar[str] = "run"
    script: str
    user: str | None = None
    network: bool = False

    def __post_init__(self) -> None:
        if self.user is not None:
            _user(self.user, "run")

    def lower(self) -> tuple[Op, ...]:
        return (Exec("set -eu\n" + self.script, user=self.user, network=self.network),)

    def describe(self) -> str:
        first = self.script.strip().splitlines()[0] if self.script.strip() else ""
        return "run " + (first[:70] + ("..." if len(first) > 70 else ""))


@dataclass(frozen=True, kw_only=True)
class Label(Step):
    kind: ClassVar[str] = "label"
    key: str
    value: str

    def __post_init__(self) -> None:
        if not isinstance(self.key, str) or not _LABEL_KEY.fullmatch(self.key):
            raise NbpipeError(
                f"label: key {self.key!r} may use only letters, digits and ._/- "
                "(e.g. org.example.team)"
            )
        printable(self.value, f"label {self.key}")

    def lower(self) -> tuple[Op, ...]:
        return (SetLabel(self.key, self.value),)

    def describe(self) -> str:
        return f"label {self.key}={self.value}"


@dataclass(frozen=True, kw_only=True)
class Port(Step):
    kind: ClassVar[str] = "port"
    port: int

    def __post_init__(self) -> None:
        if (
            isinstance(self.port, bool)
            or not isinstance(self.port, int)
            or not 0 < self.port < 65536
        ):
            raise NbpipeError(f"port: {self.port} is not a TCP port (1-65535)")

    def lower(self) -> tuple[Op, ...]:
        return (Expose(self.port),)

    def describe(self) -> str:
        return f"port {self.port}"


@dataclass(frozen=True, kw_only=True)
class Entrypoint(Step):
    kind: ClassVar[str] = "entrypoint"
    argv: tuple[str, ...]
    cmd: tuple[str, ...] = ()

    def lower(self) -> tuple[Op, ...]:
        return (SetEntrypoint(self.argv), SetCmd(self.cmd))

    def describe(self) -> str:
        return "entrypoint " + shlex.join(self.argv + self.cmd)


@dataclass(frozen=True, kw_only=True)
class InitScript(Step):
    """A cont-init.d script: runs at every start, in name order, before services."""

    kind: ClassVar[str] = "init-script"
    name: str
    script: str

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not _PLAIN_NAME.fullmatch(self.name):
            raise NbpipeError(
                f"init script: {self.name!r} must be a plain file name like "
                "'10-x' (letters, digits, '.', '_', '-')"
            )

    def lower(self) -> tuple[Op, ...]:
        return (WriteFile(f"{contract.CONT_INIT_DIR}/{self.name}", self.script.encode(), 0o755),)

    def describe(self) -> str:
        return f"init-script {self.name}"


@dataclass(frozen=True, kw_only=True)
class Service(Step):
    """A supervised long-running process: /etc/services.d/NAME/run, restarted if it dies."""

    kind: ClassVar[str] = "service"
    name: str
    run: str
    finish: str | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not _PLAIN_NAME.fullmatch(self.name):
            raise NbpipeError(
                f"service: {self.name!r} must be a plain name like 'jupyterlab' "
                "(letters, digits, '.', '_', '-')"
            )
        if not self.run.strip():
            raise NbpipeError(f"service {self.name}: the run script is empty")

    def lower(self) -> tuple[Op, ...]:
        base = f"{contract.SERVICES_DIR}/{self.name}"
        ops: list[Op] = [WriteFile(f"{base}/run", self.run.encode(), 0o755)]
        if self.finish:
            ops.append(WriteFile(f"{base}/finish", self.finish.encode(), 0o755))
        return tuple(ops)

    def describe(self) -> str:
        return f"service {self.name}"


@dataclass(frozen=True, kw_only=True)
class HomeFile(Step):
    """A file for $HOME, kept in the skeleton that /init copies into an empty home."""

    kind: ClassVar[str] = "home-file"
    path: str  # relative to $HOME
    content: bytes = field(repr=False)
    mode: int = 0o644

    def __post_init__(self) -> None:
        p = PurePosixPath(self.path)
        if p.is_absolute() or ".." in p.parts:
            raise NbpipeError(f"home file: {self.path!r} must be relative to $HOME, without '..'")
        _image_path(self.path, "home file")
        _mode(self.mode, f"home file {self.path}")
        object.__setattr__(self, "path", str(p))  # './a//b' is 'a/b': one spelling, one digest
        if isinstance(self.content, str):
            object.__setattr__(self, "content", self.content.encode())

    def lower(self) -> tuple[Op, ...]:
        return (WriteFile(f"{contract.SKEL}/{self.path}", self.content, self.mode, JOVYAN),)

    def describe(self) -> str:
        return f"home-file ~/{self.path}"


@dataclass(frozen=True, kw_only=True)
class HomeTree(Step):
    """A folder of files for $HOME (a repository's contents) in the skeleton, in one layer:
    /init copies them into an empty home at first start and never over the user's own.
    Owned by jovyan and group-writable, as random-UID platforms need."""

    kind: ClassVar[str] = "home-tree"
    files: tuple[tuple[str, bytes, int], ...] = field(repr=False)  # (path in $HOME, content, mode)

    def __post_init__(self) -> None:
        if not self.files:
            raise NbpipeError("home tree: give at least one file")
        seen: set[str] = set()
        for rel, content, mode in self.files:
            p = PurePosixPath(rel)
            if (
                not rel
                or p.is_absolute()
                or ".." in p.parts
                or "." in rel.split("/")
                or "" in rel.split("/")
                or any(c in rel for c in "\x00\n\r")
            ):
                raise NbpipeError(f"home tree: {rel!r} must be a plain path relative to $HOME")
            if not isinstance(content, bytes) or not 0 <= mode <= 0o777:
                raise NbpipeError(f"home tree: {rel}: content must be bytes, mode 0-0777")
            if rel in seen:
                raise NbpipeError(f"home tree: {rel} given twice")
            seen.add(rel)

    def lower(self) -> tuple[Op, ...]:
        return (WriteTree(contract.SKEL, self.files, JOVYAN, 0o775),)

    def describe(self) -> str:
        size = sum(len(c) for _, c, _ in self.files)
        return f"home-tree ~/ ({len(self.files)} files, {size:,} bytes)"
