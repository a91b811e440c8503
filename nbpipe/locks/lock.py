"""Locks: every package an apt or pip step installs, pinned (pip: with sha256 too).

Apt: `nbpipe lock` asks apt, in the built parent image, what the step would install
(`apt-get install -s`), and records `name=version` for all of it; the locked step installs
exactly that list. Debian's archive moves (see archive.py): when a pinned version has left
it, the default build re-resolves that one step on its built parent (`refresh_step`:
every other pin of the step kept where apt allows), saves it here and builds under the
new digest; `--locked` refuses instead, naming the packages.


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
import re
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Collection

from nbpipe.errors import NbpipeError
from nbpipe.recipe.catalog import Catalog, Entry
from nbpipe.recipe.image import Image, sha256_json
from nbpipe.recipe.ops import Exec
from nbpipe.recipe.steps import Apt, Pip

if TYPE_CHECKING:
    from nbpipe.engines.oci import OciEngine
    from nbpipe.recipe.options import BuildOptions

LOCKABLE = (Apt, Pip)

RESOLVE = r"""
set -eu
cd /tmp
"$PY" -m pip freeze --all --exclude-editable > /tmp/nbpipe-installed.txt
"$PY" -m pip install --dry-run --ignore-installed --quiet --report /tmp/nbpipe-report.json \
  -c /tmp/nbpipe-installed.txt "$@" >&2
cat /tmp/nbpipe-report.json
"""


def key(image: str, index: int, step: Apt | Pip) -> str:
    """Neither the installer (uv or pip), a pip step's ``beside`` nor an apt step's
    ``skip`` is part of it: they leave the resolution as it is."""
    unlocked = dataclasses.replace(step, locked=None, platforms=())
    if isinstance(unlocked, Pip):
        unlocked = dataclasses.replace(unlocked, installer="pip", beside=False)
    else:
        unlocked = dataclasses.replace(unlocked, skip=())
    return f"{image}/{index}/{sha256_json(unlocked.canonical())[7:23]}"


def load(path: Path) -> dict[str, dict[str, str]]:
    """The entries of a lock file (none if there is no file), its shape checked."""
    if not path.exists():
        return {}
    from nbpipe.inputs import safe_io

    data = safe_io.load_json(path)
    locks = data.get("locks") if isinstance(data, dict) else None
    if not isinstance(locks, dict) or not all(
        isinstance(k, str)
        and isinstance(v, dict)
        and all(isinstance(p, str) and isinstance(s, str) for p, s in v.items())
        for k, v in locks.items()
    ):
        raise NbpipeError(
            f"{path}: not a lock file written by `nbpipe lock` (it needs "
            '"locks": {step: {platform: lines}})'
        )
    return locks


def save(path: Path, locks: dict[str, dict[str, str]]) -> None:
    """Written whole or not at all (a temporary file renamed over the old one)."""
    body = {"version": 1, "locks": {k: dict(sorted(v.items())) for k, v in sorted(locks.items())}}
    from nbpipe.inputs import safe_io

    path = Path(path)  # its folder as named (nbpipe.family is a link we ship); the file
    safe_io.atomic_write(
        path.parent.resolve() / path.name,  # itself is replaced, not followed
        json.dumps(body, indent=1) + "\n",
    )


def locked_image(name: str, image: Image, locks: dict[str, dict[str, str]]) -> Image:
    """``image`` with each pip step that has lock entries split per platform: locked
    where the lock has that platform, as written elsewhere."""
    steps = []
    for i, st in enumerate(image.steps):
        entry = locks.get(key(name, i, st)) if isinstance(st, LOCKABLE) and not st.locked else None
        if not entry or not isinstance(st, LOCKABLE):  # an entry implies LOCKABLE
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
    """Wrap every recipe so its apt and pip steps use the lock file's entries; each
    wrapped recipe remembers ``path``, where a refresh of one of its steps is saved."""
    locks = load(path)
    for name, e in list(catalog.entries.items()):
        catalog.entries[name] = dataclasses.replace(e, recipe=_wrap(e.recipe, name, locks, path))
    catalog._resolved.clear()
    return catalog


def _wrap(plain, name: str, locks: dict[str, dict[str, str]], path: Path):
    def recipe(parent: Image) -> Image:
        return locked_image(name, plain(parent), locks)

    recipe.__wrapped__ = plain  # type: ignore[attr-defined]
    recipe.lock_file = path  # type: ignore[attr-defined]
    return recipe


def lock_file(catalog: Catalog, name: str) -> Path | None:
    """The lock file ``name``'s recipe reads (None: the image is not locked by one)."""
    return getattr(catalog.entry(name).recipe, "lock_file", None)


def reload(catalog: Catalog) -> None:
    """Read every lock file of ``catalog`` again, in place: after a run saved a refreshed
    step, whoever holds the catalog (the CLI, a test session) sees the digests it built."""
    fresh = relocked(catalog)
    catalog.entries.clear()
    catalog.entries.update(fresh.entries)
    catalog._resolved.clear()


def relocked(catalog: Catalog) -> Catalog:
    """The same catalog (same roots and parents) with every lock file read again."""
    out = Catalog()
    cache: dict[Path, dict[str, dict[str, str]]] = {}
    for name, e in catalog.entries.items():
        path = getattr(e.recipe, "lock_file", None)
        recipe = e.recipe
        if path is not None:
            locks = cache.setdefault(path, load(path))
            recipe = _wrap(e.recipe.__wrapped__, name, locks, path)  # type: ignore[attr-defined]
        out.entries[name] = Entry(e.name, e.parent, recipe, e.description)
    return out


@dataclasses.dataclass(frozen=True)
class PinnedStep:
    """One locked apt step of an image, for one platform, as the lock file has it."""

    image: str
    index: int  # the step's place in the unlocked recipe (what the lock key names)
    key: str
    step: Apt  # with ``locked`` set to ``lines``
    lines: str


def pinned_steps(
    catalog: Catalog, name: str, platform: str, locks: dict[str, dict[str, str]] | None = None
) -> list[PinnedStep]:
    """The locked apt steps of ``name`` on ``platform`` (in ``locks``, or else in the
    lock file its recipe reads)."""
    if locks is None:
        path = lock_file(catalog, name)
        if path is None:
            return []
        locks = load(path)
    plain = unlocked(catalog).resolve(name)
    out = []
    for i, st in enumerate(plain.steps):
        if isinstance(st, Apt) and st.applies_to(platform):
            k = key(name, i, st)
            lines = locks.get(k, {}).get(platform)
            if lines:
                out.append(PinnedStep(name, i, k, dataclasses.replace(st, locked=lines), lines))
    return out


def root_ref(catalog: Catalog, platform: str, names: list[str] | None = None) -> str:
    """The root ``names`` are built on (their first ancestor's parent): where the archive
    is asked, with the same apt sources every image of the family sees."""
    from nbpipe.recipe.naming import parent_ref

    return parent_ref(catalog.resolve(catalog.order(names)[0]), platform)


def keep_debs(engine: "OciEngine", options: "BuildOptions", pins, platform: str) -> int:
    """Put the pinned .debs a build just fetched into the package store (if one is set and
    the engine keeps its apt cache where nbpipe can read it)."""
    from nbpipe.locks import archive
    from nbpipe.recipe.steps import APT_ARCHIVES

    cache = engine.cache_dir(APT_ARCHIVES.id) if options.deb_store is not None else None
    if cache is None or options.deb_store is None:
        return 0
    return archive.keep(cache, options.deb_store, pins, platform.split("/")[1])


def vanished(
    engine: "OciEngine",
    catalog: Catalog,
    locks: dict[str, dict[str, str]],
    platform: str,
    names: list[str] | None = None,
    store: Path | None = None,
) -> list[str]:
    """`lock --check`: one line per locked apt step with pins the archive no longer has
    and the package store ``store`` does not hold either (the archive asked once, in the
    root the catalog builds on)."""
    from nbpipe.locks import archive

    order = catalog.order(names)
    steps = [
        ps
        for n in order
        if platform in catalog.resolve(n).platforms
        for ps in pinned_steps(catalog, n, platform, locks)
    ]
    if not steps:
        return []
    gone = archive.gone(
        engine,
        root_ref(catalog, platform, names),
        platform,
        {p for ps in steps for p in archive.pins(ps.lines)},
    )
    gone = {p for p in gone if store is None or p.deb(store) is None}
    out = []
    for ps in steps:
        left = [str(p) for p in archive.pins(ps.lines) if p in gone]
        if left:
            out.append(f"{ps.image} step {ps.index} ({platform}): {', '.join(left)}")
    return out


def add_hashes(
    engine: "OciEngine",
    catalog: Catalog,
    path: Path,
    platforms: list[str],
    on_event=lambda name, what: None,
) -> int:
    """`lock --add-hashes`: give the apt lines of a lock written before the package store
    their .debs' sha256 (from the archive's index, asked in the root for each platform);
    nothing is re-resolved. Returns how many lines gained one."""
    from nbpipe.locks import archive
    from nbpipe.recipe import platforms as plat

    locks = load(path)
    added = 0
    native = plat.host()
    for platform in platforms:
        # apt reads another architecture's lists in the native root (no emulation needed)
        root = root_ref(
            catalog, native if native in catalog.resolve(catalog.order()[0]).platforms else platform
        )
        for k, entry in locks.items():
            lines = entry.get(platform)
            if lines and all(_APT_LINE.fullmatch(x) for x in lines.split()):
                new = archive.with_hashes(engine, root, platform, lines)
                added += new.count("@sha256:") - lines.count("@sha256:")
                entry[platform] = new
                on_event(k, f"{platform}: {new.count('@sha256:')}/{len(new.split())} hashed")
    save(path, locks)
    return added


_APT_LINE = re.compile(r"[a-z0-9][a-z0-9+.:-]*=[A-Za-z0-9.+~:-]+(@sha256:[0-9a-f]{64})?")
_SAVING = threading.Lock()  # steps of two images refreshed at once write one file


def save_entry(path: Path, step_key: str, platform: str, lines: str) -> None:
    """One step's lines for one platform, merged into the file as it is now."""
    with _SAVING:
        current = load(path)
        current.setdefault(step_key, {})[platform] = lines
        save(path, current)


def unlocked(catalog: Catalog, only: "Collection[str] | None" = None) -> Catalog:
    """The catalog as its recipes resolve without any lock (what `lock` records);
    with ``only``, just those images (a team's), their parents kept as locked."""
    out = Catalog()
    for name, e in catalog.entries.items():
        keep = only is not None and name not in only
        recipe = e.recipe if keep else getattr(e.recipe, "__wrapped__", e.recipe)
        out.entries[name] = Entry(e.name, e.parent, recipe, e.description)
    return out


def resolve(engine: "OciEngine", ref: str, step: Pip, options: "BuildOptions") -> str:
    """Lock lines for ``step``, resolved in the built image ``ref`` under what it has; pip
    reaches its index with the CA bundle as a build step would (BuildOptions.ca)."""
    extra = ["--network", "host", "-e", f"PY={step.python}"]
    mounts, env = options.ca(Exec(RESOLVE, network=True))
    for m in mounts:
        if options.ca_bundle is None:  # a Dagger secret: no file `podman run` could mount
            raise NbpipeError("resolving a pip step needs the CA bundle as a file")
        extra += ["-v", f"{options.ca_bundle}:{m.target}:ro"]
    for name, value in env:
        extra += ["-e", f"{name}={value}"]
    r = engine.run_once(
        ref,
        ["/bin/sh", "-c", RESOLVE, "resolve", *step.index_args(), *step.packages],
        extra=extra,
        timeout=1800,
    )
    if r.returncode != 0:
        raise NbpipeError(
            f"pip could not resolve `{step.describe()}` in {ref}: {r.stderr.strip()[-600:]}"
        )
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
            raise NbpipeError(
                f"{meta['name']} {meta['version']}: pip's index gave no sha256 "
                f"for {info.get('url', 'it')}; it cannot be locked"
            )
        lines.append(f"{meta['name']}=={meta['version']} --hash=sha256:{digest}")
    return "\n".join(sorted(lines, key=str.lower)) + "\n"


# What apt would install, each with the sha256 of its .deb from the archive's index (the
# package store's key): name=version@sha256:<hex>.
APT_SIMULATE = r"""
set -eu
apt-get update -q >/dev/null
apt-get install -s --no-install-recommends "$@" | awk '$1 == "Inst" {
  v = $3; gsub(/[()]/, "", v); if (v ~ /^\[/) { v = $4; gsub(/[()]/, "", v) }; print $2 "=" v }' \
  > /tmp/nbpipe-pins
# one apt-cache call for all of them (one per pin took minutes for jupyter-scipy's 244)
xargs -r apt-cache show --no-all-versions < /tmp/nbpipe-pins | awk '
  $1 == "Package:" { p = $2 } $1 == "Version:" { v = $2 }
  $1 == "SHA256:" && !((p "=" v) in seen) { seen[p "=" v] = 1; print p "=" v "@sha256:" $2 }
' > /tmp/nbpipe-hashed
while read -r pin; do
  line=$(grep -m1 -F "$pin@sha256:" /tmp/nbpipe-hashed || true)
  echo "${line:-$pin}"
done < /tmp/nbpipe-pins
"""


def resolve_apt(engine: "OciEngine", parent_ref: str, step: Apt, keep: tuple[str, ...] = ()) -> str:
    """Lock lines for ``step``: what apt installs for it on ``parent_ref``, with versions.
    ``keep``: `name=version` pins apt must hold to (a refresh keeps what has not moved)."""
    r = engine.run_once(
        parent_ref,
        ["/bin/sh", "-c", APT_SIMULATE, "simulate", *step.packages, *keep],
        extra=["--network", "host", "--user", "0"],
        timeout=900,
    )
    lines = [line for line in r.stdout.split() if "=" in line]
    if r.returncode != 0 or not lines:
        raise NbpipeError(
            f"apt could not resolve `{step.describe()}` in {parent_ref}: {r.stderr.strip()[-600:]}"
        )
    return "\n".join(sorted(lines)) + "\n"


def refresh_step(engine: "OciEngine", parent_ref: str, step: Apt, gone: set[str]) -> str:
    """New lock lines for a locked apt step some of whose pins (package names ``gone``)
    have left the archive: those take today's version, every other pin stays where apt
    can keep it (if the new versions need others, the whole step is resolved afresh)."""
    from nbpipe.locks import archive

    plain = dataclasses.replace(step, locked=None)
    kept = [p for p in archive.pins(step.locked or "") if p.name not in gone]
    named = {p.name for p in kept}
    others = tuple(p for p in step.packages if p.split("=")[0].split(":")[0] not in named)
    try:
        return resolve_apt(
            engine,
            parent_ref,
            dataclasses.replace(plain, packages=others or step.packages),
            tuple(str(p) for p in kept),
        )
    except NbpipeError:
        return resolve_apt(engine, parent_ref, plain)


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


def uncovered(
    catalog: Catalog,
    locks: dict[str, dict[str, str]],
    names: list[str] | None = None,
    *,
    ancestors: bool = True,
) -> list[Uncovered]:
    """Steps of ``names`` (default: all; with ``ancestors``, and what they are built on)
    that the lock does not cover. An unknown name is an error."""
    plain = unlocked(catalog)
    wanted = (
        plain.order(names)
        if ancestors or not names
        else [n for n in plain.order(names) if n in names]
    )
    missing = []
    for name in wanted:
        img = plain.resolve(name)
        for i, st in enumerate(img.steps):
            if isinstance(st, LOCKABLE):
                entry = locks.get(key(name, i, st), {})
                missing += [
                    Uncovered(name, i, p, st.describe())
                    for p in st.platforms or img.platforms
                    if p not in entry
                ]
    return missing


def check(
    catalog: Catalog, locks: dict[str, dict[str, str]], names: list[str] | None = None
) -> list[str]:
    """Steps (image/step/platform) that the lock does not cover, one line each."""
    return [str(u) for u in uncovered(catalog, locks, names)]


def spec_lock(spec: Path) -> Path:
    """A team spec's own lock file: team.yaml -> team.lock.json next to it."""
    spec = Path(spec)
    return spec.with_name(f"{spec.stem}.lock.json")


def apply_to(catalog: Catalog, name: str, path: Path) -> Catalog:
    """Wrap one image's recipe (a team spec's) so its steps use ``path``'s entries."""
    if not Path(path).exists():
        return catalog
    e = catalog.entries[name]
    catalog.entries[name] = dataclasses.replace(e, recipe=_wrap(e.recipe, name, load(path), path))
    catalog._resolved.clear()
    return catalog
