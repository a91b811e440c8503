"""Debian's archive moves: which pinned `name=version` lines it no longer serves.

Debian keeps only the newest version of each package in bookworm and bookworm-security,
so an apt lock line lives a few weeks (a lock written 2026-11-26 failed on 2026-12-06
when a security update replaced `libde265-0 1.0.11-1+deb12u3`). Two ways to notice:

- after the fact, from apt's own words in a failed build's log (`E: Version 'V' for 'P'
  was not found`): free, so the default build uses it and then refreshes that step;
- before anything is built, by asking the archive in the root image (`apt-cache
  madison`, after one `apt-get update` for the platform's architecture): what
  `--locked` and `nbpipe lock --check` use.
"""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Iterable

from nbpipe.errors import NbpipeError
from nbpipe.recipe.catalog import Catalog, Entry
from nbpipe.recipe.image import Image
from nbpipe.recipe.steps import Apt, snapshot_sources

if TYPE_CHECKING:
    from nbpipe.engines.oci import OciEngine

# apt-get's message for a `name=version` argument the lists do not hold (apt-pkg's
# cacheset.cc: "Version '%s' for '%s' was not found").
_GONE = re.compile(r"E: Version '([^'\s]+)' for '([a-z0-9][a-z0-9+.:-]*)' was not found")

# One `apt-get update` for the platform's architecture (the root is native; apt only
# reads another architecture's lists), then every version the lists hold for the names.
MADISON = r"""
set -eu
apt-get update -q -o APT::Architecture="$ARCH" -o APT::Architectures="$ARCH" >/dev/null
apt-cache -o APT::Architecture="$ARCH" -o APT::Architectures="$ARCH" madison "$@"
"""
# The sha256 of each name=version's .deb, from the archive's index (a lock written before
# the package store gets them this way; pins the archive no longer has stay as they are).
SHOW = r"""
set -eu
apt-get update -q -o APT::Architecture="$ARCH" -o APT::Architectures="$ARCH" >/dev/null
for pin in "$@"; do  # apt-cache show prints what it finds even when a pin has gone
  echo "$pin"
done | xargs -r -n 50 apt-cache -o APT::Architecture="$ARCH" -o APT::Architectures="$ARCH" \
    show --no-all-versions 2>/dev/null | awk '
  $1 == "Package:" { p = $2 } $1 == "Version:" { v = $2 }
  $1 == "SHA256:" && !((p "=" v) in seen) { seen[p "=" v] = 1; print p "=" v " " $2 }' || true
"""
CHECK_TIMEOUT = 300  # seconds for the update and the query; the archive may be far


@dataclass(frozen=True)
class Pin:
    name: str
    version: str
    sha256: str = dataclasses.field(default="", compare=False)  # of the .deb, when locked

    @classmethod
    def parse(cls, line: str) -> "Pin":
        pin, _, sha = line.partition("@sha256:")
        name, _, version = pin.partition("=")
        return cls(name.split(":")[0], version, sha)

    def __str__(self) -> str:
        return f"{self.name}={self.version}"

    def deb(self, store: Path) -> Path | None:
        """Its file in the package store, if the store holds it."""
        if not self.sha256:
            return None
        path = store / f"{self.sha256}.deb"
        return path if path.is_file() else None


def pins(lines: str) -> list[Pin]:
    """The `name=version` lines of an apt lock entry."""
    return [Pin.parse(line) for line in lines.split() if "=" in line]


def gone_in_log(log: Path | str) -> list[Pin]:
    """Pins apt refused in a build log because the archive no longer has them."""
    try:
        text = log if isinstance(log, str) else log.read_text(errors="replace")
    except OSError:  # no log (an engine that failed before writing one): nothing refused
        return []
    seen: dict[Pin, None] = {}
    for version, name in _GONE.findall(text):
        seen[Pin(name.split(":")[0], version)] = None
    return list(seen)


def gone(engine: "OciEngine", root_ref: str, platform: str, wanted: Iterable[Pin]) -> set[Pin]:
    """The pins of ``wanted`` that the archive (as the root image sees it) no longer serves.
    One container run whatever the number of pins; an archive out of reach is one line."""
    wanted = set(wanted)
    if not wanted:
        return set()
    arch = platform.split("/")[1]
    names = sorted({p.name for p in wanted})
    try:
        r = engine.run_once(
            root_ref,
            ["/bin/sh", "-c", MADISON, "madison", *names],
            extra=["--network", "host", "--user", "0", "-e", f"ARCH={arch}"],
            timeout=CHECK_TIMEOUT,
        )
    except NbpipeError as exc:  # a timeout, or no such root image
        raise NbpipeError(
            f"the archive could not be asked which pinned versions it still "
            f"has (in {root_ref}, for {platform}): {exc}"
        ) from None
    if r.returncode != 0:
        why = (r.stderr or "").strip().splitlines()
        raise NbpipeError(
            f"the archive could not be asked which pinned versions it still has "
            f"(in {root_ref}, for {platform}): "
            f"{why[-1] if why else f'exit {r.returncode}'}"
        )
    have = set()
    for line in r.stdout.splitlines():
        parts = [p.strip() for p in line.split("|")]
        if len(parts) >= 2 and parts[0] and parts[1]:
            have.add(Pin(parts[0], parts[1]))
    return {p for p in wanted if p not in have}


def keep(cache: Path, store: Path, wanted: Iterable[Pin], arch: str) -> int:
    """Copy the pinned .debs an apt step just fetched (in the engine's apt cache folder)
    into the package store as <sha256>.deb, each checked against its lock line's sha256
    first; returns how many were added. Written whole or not at all."""
    import hashlib
    import os
    import tempfile

    added = 0
    for pin in wanted:
        if not pin.sha256 or pin.deb(store) is not None:
            continue
        version = pin.version.replace(":", "%3a")  # apt's file names escape the epoch ':'
        found = [cache / f"{pin.name}_{version}_{a}.deb" for a in (arch, "all")]
        src = next((f for f in found if f.is_file() and not f.is_symlink()), None)
        if src is None:
            continue
        data = src.read_bytes()
        if hashlib.sha256(data).hexdigest() != pin.sha256:
            continue  # not the file the lock names: never stored under its hash
        store.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=store, prefix=".incoming-")
        with os.fdopen(fd, "wb") as out:
            out.write(data)
        os.replace(tmp, store / f"{pin.sha256}.deb")
        added += 1
    return added


def with_hashes(engine: "OciEngine", root_ref: str, platform: str, lines: str) -> str:
    """``lines`` with each pin's sha256 added where the archive still has it."""
    todo = [p for p in pins(lines) if not p.sha256]
    if not todo:
        return lines
    arch = platform.split("/")[1]
    r = engine.run_once(
        root_ref,
        ["/bin/sh", "-c", SHOW, "show", *map(str, todo)],
        extra=["--network", "host", "--user", "0", "-e", f"ARCH={arch}"],
        timeout=CHECK_TIMEOUT,
    )
    if r.returncode != 0:
        raise NbpipeError(
            f"the archive's index could not be read in {root_ref} for "
            f"{platform}: {(r.stderr or '').strip()[-300:]}"
        )
    sums = dict(line.split(" ", 1) for line in r.stdout.splitlines() if " " in line)
    out = []
    for line in lines.split():
        sha = sums.get(line, "").strip()
        out.append(f"{line}@sha256:{sha}" if len(sha) == 64 and "@" not in line else line)
    return "\n".join(out) + "\n"


def changes(old: str, new: str) -> list[str]:
    """`name old -> new` for every package whose pin moved (added/removed said so)."""
    before = {p.name: p.version for p in pins(old)}
    after = {p.name: p.version for p in pins(new)}
    out = []
    for name in sorted(before.keys() | after.keys()):
        a, b = before.get(name), after.get(name)
        if a == b:
            continue
        out.append(f"{name} {a or '(new)'} -> {b or '(dropped)'}")
    return out


def summary(moved: list[str], first: Iterable[str] = ()) -> str:
    """One line: the packages that made the refresh first, then 'and N more'."""
    lead = [m for m in moved if m.split()[0] in set(first)] or moved[:1]
    rest = len(moved) - len(lead)
    return ", ".join(lead) + (f" (and {rest} more)" if rest else "")


def with_snapshot(catalog: Catalog, date: str) -> Catalog:
    """The family installing every apt package from Debian's snapshot of ``date``
    (snapshot.debian.org keeps every version for good): for those who can reach it, the
    third way to live with a moving archive, besides a refreshed lock. Steps that name a
    snapshot of their own keep it; locked steps keep their pins (a snapshot holds them)."""
    snapshot_sources(date)  # the format, checked once here

    def wrap(recipe):
        def with_date(parent: Image) -> Image:
            img = recipe(parent)
            steps = tuple(
                dataclasses.replace(st, snapshot=date)
                if isinstance(st, Apt) and st.snapshot is None
                else st
                for st in img.steps
            )
            return dataclasses.replace(img, steps=steps)

        return with_date

    out = Catalog()
    for name, e in catalog.entries.items():
        out.entries[name] = Entry(e.name, e.parent, wrap(e.recipe), e.description)
    return out
