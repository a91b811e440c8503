"""Lowering to a Dockerfile + build context: what `nbpipe export` prints and what the
Podman/Buildah and Docker engines build. One op, one instruction."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path

from nbpipe.errors import NbpipeError
from nbpipe.inputs import safe_io
from nbpipe.recipe.image import Image
from nbpipe.recipe.lowering import lowered
from nbpipe.recipe.naming import parent_ref, stamp
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
from nbpipe.recipe.options import BuildOptions


@dataclass(frozen=True)
class Rendered:
    """A Dockerfile and the files it COPYs (context-relative path -> bytes)."""

    text: str
    from_ref: str  # the FROM image: a local parent, or the pinned root
    files: dict[str, bytes] = field(default_factory=dict)
    # For each instruction after FROM: the step it came from (to name a failed step).
    origins: tuple[str, ...] = ()
    # Modes of context paths (files and folders) that a folder COPY keeps as they are.
    modes: dict[str, int] = field(default_factory=dict)

    def origin(self, instruction: int) -> str:
        """The step behind the N-th instruction (1 = FROM, as builders count them)."""
        if instruction <= 1 or instruction - 2 >= len(self.origins):
            return "FROM (the parent image)"
        return self.origins[instruction - 2]

    def write(self, folder: Path) -> Path:
        """The Dockerfile and its context under ``folder``, never through a symbolic
        link found there (safe_io.OutDir): `export --out` may point into a repository
        that committed links where the context goes."""
        with safe_io.OutDir(folder, "--out") as out:
            for rel, data in self.files.items():
                out.write(rel, data)
            for rel, mode in self.modes.items():
                out.chmod(rel, mode)
            return out.write("Dockerfile", self.text)


def _quote(value: str) -> str:
    """A Dockerfile double-quoted word that stays literal (no $VAR expansion). Steps
    refuse control characters in data; this refuses them again, so no value from any
    source can end the line and start an instruction of its own."""
    _one_line(value)
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"').replace("$", "\\$") + '"'


def _one_line(value: str) -> str:
    if not value.isprintable():
        raise NbpipeError(
            f"{value!r} cannot be written into a Dockerfile line: it holds a "
            "newline or another control character"
        )
    return value


def _word(value: str) -> str:
    """A bare Dockerfile word (USER, WORKDIR, --chown): no spaces, quotes or '$' either."""
    if not value or any(c in value for c in " \"'$\\") or not value.isprintable():
        raise NbpipeError(f"{value!r} cannot be written into a Dockerfile line as a plain word")
    return value


def _mount_flag(m: CacheMount | SecretMount | BindMount) -> str:
    match m:
        case CacheMount(target=t, id=i, owner=o, shared=shared):
            uid, gid = o.split(":")
            how = "shared" if shared else "locked"
            return f"--mount=type=cache,id={i},target={t},sharing={how},uid={uid},gid={gid}"
        case SecretMount(target=t, id=i):
            return f"--mount=type=secret,id={i},target={t},mode=0444"
        case BindMount(target=t, id=i):
            return f"--mount=type=bind,source={i},target={t},readonly"
    raise TypeError(m)


def render(
    image: Image, platform: str, options: BuildOptions = BuildOptions(), from_ref: str | None = None
) -> Rendered:
    """The Dockerfile that builds ``image`` from its (already built) parent."""
    files: dict[str, bytes] = {}
    modes: dict[str, int] = {}
    parent = image.parent
    user = parent.config(platform).user if isinstance(parent, Image) else "root"
    from_ref = from_ref or parent_ref(image, platform)
    lines = [
        f"# nbpipe: {image.name or 'custom'} for {platform}",
        f"# digest: {image.digest(platform)}",
        f"FROM {from_ref}",
    ]
    ops = list(lowered(image.steps_for(platform)))
    ops += [("label (nbpipe stamp)", op) for op in stamp(image, platform, options)]
    origins: list[str] = []
    for origin, op in ops:
        before = len(lines)
        match op:
            case Exec():
                run = options.prepare(op)
                flags = "".join(_mount_flag(m) + " " for m in run.mounts)
                instr = f"RUN {flags}{json.dumps(run.argv())}"
                if run.user and run.user != user:
                    lines += [f"USER {_word(run.user)}", instr, f"USER {user}"]
                else:
                    lines.append(instr)
            case SetEnv(name=n, value=v):
                lines.append(f"ENV {_word(n)}={_quote(v)}")
            case SetUser(user=u):
                user = _word(u)
                lines.append(f"USER {u}")
            case SetWorkdir(path=p):
                lines.append(f"WORKDIR {_word(p)}")
            case WriteFile(path=p, content=c, mode=m, owner=o):
                rel = f"files/{hashlib.sha256(c).hexdigest()}"
                files[rel] = c
                lines.append(
                    f"COPY --chown={_word(o)} --chmod={m:04o} {json.dumps([rel, _word(p)])}"
                )
            case WriteTree(path=p, files=fs, owner=o, dir_mode=dm):
                tree = _tree_folder(fs)
                for rel, c, m in fs:
                    files[f"{tree}/{rel}"] = c
                    modes[f"{tree}/{rel}"] = m
                modes.update({tree: dm, **{f"{tree}/{d}": dm for d in op.dirs()}})
                # a folder COPY keeps each file's mode (no --chmod): executables stay so
                lines.append(
                    f"COPY --chown={_word(o)} "
                    f"{json.dumps([tree + '/', _word(p.rstrip('/') + '/')])}"
                )
            case SetLabel(key=k, value=v):
                lines.append(f"LABEL {_quote(k)}={_quote(v)}")
            case Expose(port=p):
                lines.append(f"EXPOSE {p}")
            case SetEntrypoint(argv=a):
                lines.append(f"ENTRYPOINT {json.dumps(list(a))}")
            case SetCmd(argv=a):
                lines.append(f"CMD {json.dumps(list(a))}")
        origins += [origin] * (len(lines) - before)
    merged, merged_origins = _merge_users(lines[3:], origins)
    return Rendered(
        "\n".join(lines[:3] + merged) + "\n", from_ref, files, tuple(merged_origins), modes
    )


def _tree_folder(files: tuple[tuple[str, bytes, int], ...]) -> str:
    """The context folder of a tree, named by its content (paths, file hashes, modes)."""
    listing = sorted((rel, hashlib.sha256(c).hexdigest(), m) for rel, c, m in files)
    return "trees/" + hashlib.sha256(json.dumps(listing).encode()).hexdigest()[:32]


def _merge_users(lines: list[str], origins: list[str]) -> tuple[list[str], list[str]]:
    """``USER a`` directly followed by ``USER b`` is just ``USER b``."""
    out: list[str] = []
    out_origins: list[str] = []
    for line, origin in zip(lines, origins, strict=True):
        if line.startswith("USER ") and out and out[-1].startswith("USER "):
            out[-1], out_origins[-1] = line, origin
        else:
            out.append(line)
            out_origins.append(origin)
    return out, out_origins
