"""Locks: every package an apt or pip step installs, pinned (pip: with sha256 too).

Apt: `nbpipe lock` asks apt, in the built parent image, what the step would install
(`apt-get install -s`), and records `name=version` for all of it; the locked step installs
exactly that list. Debian's archive moves: when a pinned version is gone from it, the
build fails saying which, and `nbpipe lock` pins the current ones.


`nbpipe lock` builds an image as its recipe resolves today, then asks pip (in that very
image, so the platform and Python are the real ones) to resolve each pip step again
under the exact versions installed, and records the resolution with the hashes pip's
index gives. `images/lock.json` holds the result; the family reads it, so a locked
pip step installs exactly that (`--require-hashes`) and the lock is part of the digest.

A lock entry is keyed by image, step index and a hash of the step's unlocked form: when
the recipe changes, the old entry no longer matches and is ignored (`nbpipe lock
--check` lists such stale or missing entries).
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import TYPE_CHECKING, Collection

from .catalog import Catalog, Entry
from .errors import NbpipeError
from .image import Image, sha256_json
from .steps import Apt, Pip

if TYPE_CHECKING:
    from .engines.oci import OciEngine
    from .machine import Machine
    from .options import BuildOptions

LOCKABLE = (Apt, Pip)
STATE_DIR = Path(".nbpipe")  # the folder whose lock `nbpipe lock` holds (as builds do)

RESOLVE = r"""
set -eu
cd /tmp
"$PY" -m pip freeze --all --exclude-editable > /tmp/nbpipe-installed.txt
"$PY" -m pip install --dry-run --ignore-installed --quiet --report /tmp/nbpipe-report.json \
  -c /tmp/nbpipe-installed.txt "$@" >&2
cat /tmp/nbpipe-report.json
"""


def key(image: str, index: int, step: Apt | Pip) -> str:
    unlocked = dataclasses.replace(step, locked=None, platforms=())
    return f"{image}/{index}/{sha256_json(unlocked.canonical())[7:23]}"


def load(path: Path) -> dict[str, dict[str, str]]:
    """The entries of a lock file (none if there is no file), its shape checked."""
    if not path.exists():
        return {}
    from . import safe_io

    data = safe_io.load_json(path)
    locks = data.get("locks") if isinstance(data, dict) else None
    if not isinstance(locks, dict) or not all(
            isinstance(k, str) and isinstance(v, dict)
            and all(isinstance(p, str) and isinstance(s, str) for p, s in v.items())
            for k, v in locks.items()):
        raise NbpipeError(f"{path}: not a lock file written by `nbpipe lock` (it needs "
                          '"locks": {step: {platform: lines}})')
    return locks


def save(path: Path, locks: dict[str, dict[str, str]]) -> None:
    """Written whole or not at all (a temporary file renamed over the old one)."""
    body = {"version": 1, "locks": {k: dict(sorted(v.items())) for k, v in sorted(locks.items())}}
    from . import safe_io

    safe_io.atomic_write(path, json.dumps(body, indent=1) + "\n")


def locked_image(name: str, image: Image, locks: dict[str, dict[str, str]]) -> Image:
    """``image`` with each pip step that has lock entries split per platform: locked
    where the lock has that platform, as written elsewhere."""
    steps = []
    for i, st in enumerate(image.steps):
        entry = locks.get(key(name, i, st)) if isinstance(st, LOCKABLE) and not st.locked else None
        if not entry:
            steps.append(st)
            continue
        plats = st.platforms or image.platforms
        for p in plats:
            if p in entry:
                steps.append(dataclasses.replace(st, locked=entry[p], platforms=(p,)))
        rest = tuple(p for p in plats if p not in entry)
        if rest:
            steps.append(dataclasses.replace(st, platforms=rest))
    return dataclasses.replace(image, steps=tuple(steps))


def apply(catalog: Catalog, path: Path) -> Catalog:
    """Wrap every recipe so its pip steps use the lock file's entries."""
    locks = load(path)
    if not locks:
        return catalog
    for name, e in list(catalog.entries.items()):
        def recipe(parent: Image, r=e.recipe, n=name) -> Image:
            return locked_image(n, r(parent), locks)

        recipe.__wrapped__ = e.recipe  # type: ignore[attr-defined]
        catalog.entries[name] = dataclasses.replace(e, recipe=recipe)
    catalog._resolved.clear()
    return catalog


def unlocked(catalog: Catalog, only: "Collection[str] | None" = None) -> Catalog:
    """The catalog as its recipes resolve without any lock (what `lock` records);
    with ``only``, just those images (a team's), their parents kept as locked."""
    out = Catalog()
    for name, e in catalog.entries.items():
        keep = only is not None and name not in only
        recipe = e.recipe if keep else getattr(e.recipe, "__wrapped__", e.recipe)
        out.entries[name] = Entry(e.name, e.parent, recipe, e.description)
    return out


def resolve(engine: "OciEngine", ref: str, step: Pip, ca_bundle: Path | None) -> str:
    """Lock lines for ``step``, resolved in the built image ``ref`` under what it has."""
    extra = ["--network", "host", "-e", f"PY={step.python}"]
    if ca_bundle is not None:
        extra += ["-v", f"{ca_bundle}:/run/secrets/nbpipe-ca.crt:ro",
                  "-e", "PIP_CERT=/run/secrets/nbpipe-ca.crt",
                  "-e", "SSL_CERT_FILE=/run/secrets/nbpipe-ca.crt"]
    pip_args = []
    if step.index_url:
        pip_args += ["--index-url", step.index_url]
    for url in step.extra_index_urls:
        pip_args += ["--extra-index-url", url]
    r = engine.run_once(ref, ["/bin/sh", "-c", RESOLVE, "resolve", *pip_args, *step.packages],
                        extra=extra, timeout=1800)
    if r.returncode != 0:
        raise NbpipeError(f"pip could not resolve `{step.describe()}` in {ref}: "
                          f"{r.stderr.strip()[-600:]}")
    report = json.loads(r.stdout)
    lines = []
    for item in report["install"]:
        meta, info = item["metadata"], item.get("download_info", {})
        hashes = (info.get("archive_info") or {}).get("hashes") or {}
        digest = hashes.get("sha256")
        if digest is None and "=" in (info.get("archive_info") or {}).get("hash", ""):
            algo, _, value = info["archive_info"]["hash"].partition("=")
            digest = value if algo == "sha256" else None
        if digest is None:
            raise NbpipeError(f"{meta['name']} {meta['version']}: pip's index gave no sha256 "
                              f"for {info.get('url', 'it')}; it cannot be locked")
        lines.append(f"{meta['name']}=={meta['version']} --hash=sha256:{digest}")
    return "\n".join(sorted(lines, key=str.lower)) + "\n"


APT_SIMULATE = r"""
set -eu
apt-get update -q >/dev/null
apt-get install -s --no-install-recommends "$@" | awk '$1 == "Inst" {
  v = $3; gsub(/[()]/, "", v); if (v ~ /^\[/) { v = $4; gsub(/[()]/, "", v) }; print $2 "=" v }'
"""


def resolve_apt(engine: "OciEngine", parent_ref: str, step: Apt) -> str:
    """Lock lines for ``step``: what apt installs for it on ``parent_ref``, with versions."""
    r = engine.run_once(parent_ref, ["/bin/sh", "-c", APT_SIMULATE, "simulate", *step.packages],
                        extra=["--network", "host", "--user", "0"], timeout=900)
    lines = [line for line in r.stdout.split() if "=" in line]
    if r.returncode != 0 or not lines:
        raise NbpipeError(f"apt could not resolve `{step.describe()}` in {parent_ref}: "
                          f"{r.stderr.strip()[-600:]}")
    return "\n".join(sorted(lines)) + "\n"


@dataclasses.dataclass(frozen=True)
class Uncovered:
    """One apt or pip step, on one platform, that the lock file does not pin."""

    image: str
    step: int
    platform: str
    text: str  # the step as written (`pip install a==1 b==2`), whole

    def __str__(self) -> str:
        return f"{self.image} step {self.step} ({brief(self.text)}) for {self.platform}"

    def to_dict(self) -> dict[str, str | int]:
        return dataclasses.asdict(self)


def brief(text: str, width: int = 60) -> str:
    """``text`` cut at a word boundary, never inside a requirement (`torchaudio==`)."""
    if len(text) <= width:
        return text
    cut = text.rfind(" ", 0, width)
    return (text[:cut] if cut > 0 else text.split(" ", 1)[0]) + " ..."


def uncovered(catalog: Catalog, locks: dict[str, dict[str, str]],
              names: list[str] | None = None, *, ancestors: bool = True) -> list[Uncovered]:
    """Steps of ``names`` (default: all; with ``ancestors``, and what they are built on)
    that the lock does not cover. An unknown name is an error."""
    plain = unlocked(catalog)
    wanted = plain.order(names) if ancestors or not names else [
        n for n in plain.order(names) if n in names]
    missing = []
    for name in wanted:
        img = plain.resolve(name)
        for i, st in enumerate(img.steps):
            if isinstance(st, LOCKABLE):
                entry = locks.get(key(name, i, st), {})
                missing += [Uncovered(name, i, p, st.describe())
                            for p in st.platforms or img.platforms if p not in entry]
    return missing


def check(catalog: Catalog, locks: dict[str, dict[str, str]],
          names: list[str] | None = None) -> list[str]:
    """Steps (image/step/platform) that the lock does not cover, one line each."""
    return [str(u) for u in uncovered(catalog, locks, names)]


def spec_lock(spec: Path) -> Path:
    """A team spec's own lock file: team.yaml -> team.lock.json next to it."""
    spec = Path(spec)
    return spec.with_name(f"{spec.stem}.lock.json")


def apply_to(catalog: Catalog, name: str, path: Path) -> Catalog:
    """Wrap one image's recipe (a team spec's) so its steps use ``path``'s entries."""
    locks = load(path)
    if not locks:
        return catalog
    e = catalog.entries[name]

    def recipe(parent: Image, r=e.recipe) -> Image:
        return locked_image(name, r(parent), locks)

    recipe.__wrapped__ = e.recipe  # type: ignore[attr-defined]
    catalog.entries[name] = dataclasses.replace(e, recipe=recipe)
    catalog._resolved.clear()
    return catalog


def refresh(machine: "Machine", names: list[str] | None, lock_file: Path,
            options: "BuildOptions", on_event=lambda name, what: None, *,
            only: "Collection[str] | None" = None) -> dict[str, dict[str, str]]:
    """`nbpipe lock`: build each image as its recipe resolves today (unlocked), resolve
    every apt and pip step in it, and save the lock file after each image. Two runs in
    one folder take turns (the state folder's lock), so neither loses the other's entries.
    ``only``: lock just these images (a team's spec), built on their parents as locked."""
    from . import safe_io

    with safe_io.locked(STATE_DIR, on_wait=lambda m: on_event("nbpipe", m)):
        return _refresh(machine, names, lock_file, options, on_event, only)


def _refresh(machine: "Machine", names: list[str] | None, lock_file: Path,
             options: "BuildOptions", on_event,
             only: "Collection[str] | None" = None) -> dict[str, dict[str, str]]:
    import anyio

    from . import naming
    from .pipeline import Pipeline

    eng, platform = machine.need_engine(), machine.platform
    plain = unlocked(machine.catalog, only)
    current = load(lock_file)  # read under the lock: a run before this one may have saved
    wanted = [n for n in plain.order(names or None) if platform in plain.resolve(n).platforms
              and any(isinstance(s, LOCKABLE) for s in plain.resolve(n).steps)
              and (only is None or n in only)]
    if not wanted:  # nothing to lock: build nothing (None would mean every image)
        return current
    pipe = Pipeline(plain, eng, platform, options, probe=False, on_event=on_event)
    built = {r.name: r for r in anyio.run(pipe.run, wanted or None)}
    for name in wanted:
        if not built[name].ok:
            on_event(name, f"not locked: {built[name].status}")
            continue
        img = plain.resolve(name)
        for i, st in enumerate(img.steps):
            if not isinstance(st, LOCKABLE) or not st.applies_to(platform):
                continue
            on_event(name, f"resolving step {i}: {brief(st.describe())}")
            if isinstance(st, Pip):
                lines = resolve(eng, naming.local_ref(img, platform), st, options.ca_bundle)
            else:  # what apt installs on the parent, as it is built
                lines = resolve_apt(eng, naming.parent_ref(img, platform), st)
            current.setdefault(key(name, i, st), {})[platform] = lines
        save(lock_file, current)
    return current
