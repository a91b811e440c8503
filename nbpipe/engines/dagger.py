"""Lowering to Dagger: the same Image, the same ops, as Container calls.

Each op maps to one Container call (an Exec that needs other users or mounts gets the
calls that set them up before it and take them away after it, so the next op sees what
the next Dockerfile instruction would). Building the chain needs no engine: dagger-io's
query builder is lazy, so the exact query can be checked offline.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Collection

from nbpipe.errors import NbpipeError
from nbpipe.recipe import platforms as plat
from nbpipe.recipe.catalog import Catalog
from nbpipe.recipe.image import BaseRef, Image
from nbpipe.recipe.naming import content_tag, stamp
from nbpipe.recipe.ops import (
    BindMount,
    CacheMount,
    Exec,
    Expose,
    SecretMount,
    SetCmd,
    SetEntrypoint,
    SetEnv,
    SetLabel,
    SetUser,
    SetWorkdir,
    WriteFile,
    WriteTree,
)
from nbpipe.recipe.options import DEBSTORE_ID, BuildOptions

if TYPE_CHECKING:
    import dagger


_PINNED = re.compile(r"[a-z0-9][a-z0-9._:/-]*@sha256:[0-9a-f]{64}")


def root_ref(ref: str, what: str = "--root") -> BaseRef:
    """A root given as ``name@sha256:digest`` (one digest for every platform: a manifest
    list, or the one platform it was pushed for). Where Docker Hub cannot be reached (a
    mirror, a local registry) the recipe is rebased onto it, as ``nbpipe base bootstrap``
    does for Podman: same steps, another root, so other digests."""
    if not _PINNED.fullmatch(ref):
        raise NbpipeError(
            f"{what} {ref!r}: give a registry reference pinned by digest, NAME@sha256:<64 hex>"
        )
    name, digest = ref.split("@")
    return BaseRef(name, {p: digest for p in plat.ALL})


def rooted(catalog: Catalog, ref: str, what: str = "--root") -> Catalog:
    """``catalog`` as is (``ref`` empty), or rebased onto the root ``ref`` names."""
    return catalog.rebased(root_ref(ref, what)) if ref else catalog


def root_container(image: Image, platform: str, client=None) -> "dagger.Container":
    import dagger
    from dagger import dag

    client = client or dag
    return client.container(platform=dagger.Platform(platform)).from_(image.root.pinned(platform))


def lower(
    image: Image,
    platform: str,
    options: BuildOptions = BuildOptions(),
    client=None,
    *,
    gpu: bool = False,
    reproducible: bool = False,
    registry: str = "",
    published: Collection[str] = (),
) -> "dagger.Container":
    """The Container for ``image``: the pinned root, then every ancestor's steps in order.

    ``registry``, ``published``: where the family is published (``ghcr.io/acme``) and which
    images are there; the nearest published ancestor is then pulled by its content tag and
    only the steps after it run (one CI job per image, never the whole family).

    ``reproducible``: Dagger has no layer-timestamp option, so the result is flattened to
    one layer whose every file time is clamped to SOURCE_DATE_EPOCH (see ``clamped``), with
    the image's config set again from the recipe.
    """
    import dagger
    from dagger import dag

    client = client or dag
    chain = list(image.lineage())  # image first, root-most last
    start = next(
        (i for i, img in enumerate(chain[1:], 1) if registry and img.name in published), None
    )
    if start is None:
        ctr, user = root_container(image, platform, client), "root"
    else:
        pulled, chain = chain[start], chain[:start]
        ctr = client.container(platform=dagger.Platform(platform)).from_(
            f"{registry.rstrip('/')}/{pulled.name}:{content_tag(pulled)}"
        )
        user = pulled.config(platform).user
    for img in reversed(chain):
        ctr, user = apply(ctr, img, platform, options, client, user)
    if reproducible:
        ctr = flatten(ctr, image, platform, options, client)
    if gpu:
        ctr = ctr.experimental_with_all_gp_us()
    return ctr


# Where ``clamped`` mounts the built rootfs, and the empty folder it copies it into.
CLAMP_FROM, CLAMP_TO = "/.nbpipe-rootfs", "/.nbpipe-flat"
CLAMP_SCRIPT = 'cp -a "$1/." "$2/" && find "$2" -exec touch -h -d "@$3" {} +'


def clamped(ctr, epoch: int, client) -> "dagger.Directory":
    """``ctr``'s root file system as ONE layer, every file, folder and link time ``epoch``.

    Not ``Directory.with_timestamps``: on v0.21.8 it calls os.Chtimes on every path, which
    follows symlinks, so a dangling link (/etc/alternatives/awk.1.gz -> a man page our dpkg
    excludes) fails the export with "chtimes ...: no such file or directory", and an absolute
    link would set a time on the engine's own file, not the image's (core/directory.go at
    v0.21.8). Nor ``with_rootfs(ctr.rootfs())`` as is: a Directory keeps its snapshot chain,
    so the export has every step's layer again, with the steps' own file times (seen live:
    7 layers for base). So the image's own GNU cp and touch run as root: the built rootfs,
    mounted at CLAMP_FROM, is copied (owners, modes, links, hard links, xattrs) into an empty
    Directory mounted at CLAMP_TO, whose result is one snapshot on an empty one; then
    ``touch -h`` sets every path's own times there (utimensat, AT_SYMLINK_NOFOLLOW). Mounts,
    not ``/``: the exec's /proc, /sys, /dev, /etc/hosts and /etc/resolv.conf (and the stubs the
    engine makes for them) are in neither. Touching a path never changes its folder's time,
    so the order find visits them in does not matter.
    """
    return (
        ctr.with_user("root")
        .with_mounted_directory(CLAMP_FROM, ctr.rootfs())
        .with_mounted_directory(CLAMP_TO, client.directory())
        .with_exec(["sh", "-c", CLAMP_SCRIPT, "nbpipe-clamp", CLAMP_FROM, CLAMP_TO, str(epoch)])
        .directory(CLAMP_TO)
    )


def flatten(ctr, image: Image, platform: str, options: BuildOptions, client):
    """One layer, file times clamped, and the config the recipe (and stamp) defines."""
    import dagger

    rootfs = clamped(ctr, options.source_date_epoch, client)
    out = client.container(platform=dagger.Platform(platform)).with_rootfs(rootfs)
    cfg = image.config(platform)
    for k, v in cfg.env:
        out = out.with_env_variable(k, v)
    out = out.with_workdir(cfg.workdir).with_user(cfg.user)
    for k, v in (*cfg.labels, *((op.key, op.value) for op in stamp(image, platform, options))):
        out = out.with_label(k, v)
    for p in cfg.ports:
        out = out.with_exposed_port(p)
    return out.with_entrypoint(list(cfg.entrypoint)).with_default_args(list(cfg.cmd))


def _tree(op: WriteTree, image: Image, client):
    """The Directory a WriteTree copies in: its folders, then its files, with their modes."""
    tree = client.directory()
    for d in op.dirs():
        tree = tree.with_new_directory(d, permissions=op.dir_mode)
    for rel, content, mode in op.files:
        tree = tree.with_new_file(rel, _text(content, image, f"{op.path}/{rel}"), permissions=mode)
    return tree


def _text(content: bytes, image: Image, path: str) -> str:
    try:
        return content.decode()
    except UnicodeDecodeError:
        raise NbpipeError(
            f"{image.name}: {path} is binary; the Dagger lowering writes text files only"
        ) from None


def apply(
    ctr: "dagger.Container", image: Image, platform: str, options: BuildOptions, client, user: str
) -> tuple["dagger.Container", str]:
    """Apply ``image``'s own ops to a container that already holds its parent."""
    for op in (*image.ops(platform), *stamp(image, platform, options)):
        match op:
            case Exec():
                run = options.prepare(op)
                switch = run.user is not None and run.user != user
                if switch and run.user is not None:
                    ctr = ctr.with_user(run.user)
                for m in run.mounts:
                    ctr = _mount(ctr, m, options, client)
                ctr = ctr.with_exec(run.argv())
                for m in run.mounts:
                    ctr = ctr.without_mount(m.target)
                if switch:
                    ctr = ctr.with_user(user)
            case SetEnv(name=n, value=v):
                ctr = ctr.with_env_variable(n, v)
            case SetUser(user=u):
                user = u
                ctr = ctr.with_user(u)
            case SetWorkdir(path=p):
                ctr = ctr.with_workdir(p)
            case WriteFile(path=p, content=c, mode=m, owner=o):
                ctr = ctr.with_new_file(p, _text(c, image, p), permissions=m, owner=o)
            case WriteTree(path=p, owner=o):
                ctr = ctr.with_directory(p, _tree(op, image, client), owner=o)
            case SetLabel(key=k, value=v):
                ctr = ctr.with_label(k, v)
            case Expose(port=p):
                ctr = ctr.with_exposed_port(p)
            case SetEntrypoint(argv=a):
                ctr = ctr.with_entrypoint(list(a))
            case SetCmd(argv=a):
                ctr = ctr.with_default_args(list(a))
    return ctr, user


def _mount(ctr, m, options: BuildOptions, client):
    import dagger

    match m:
        case CacheMount(target=t, id=i, owner=o, shared=shared):
            how = dagger.CacheSharingMode.SHARED if shared else dagger.CacheSharingMode.LOCKED
            return ctr.with_mounted_cache(t, client.cache_volume(i), sharing=how, owner=o)
        case SecretMount(target=t):
            secret = options.ca_secret or client.secret(f"file://{options.ca_bundle}")
            return ctr.with_mounted_secret(t, secret, mode=0o444)
        case BindMount(target=t, id=i) if i == DEBSTORE_ID:
            debs = options.deb_store_dir or client.host().directory(str(options.deb_store))
            return ctr.with_mounted_directory(t, debs)
        case BindMount(target=t):
            wheels = options.wheelhouse_dir or client.host().directory(str(options.wheelhouse))
            return ctr.with_mounted_directory(t, wheels)
    raise TypeError(m)
