"""Steps to ops: the one place both engines get an image's ops from.

Each step lowers on its own, except a pip step marked ``beside`` (Pip.beside): it runs
in the same RUN as the apt step before it, both at once, so the venv's downloads,
unpacking and bytecode compiling use the core dpkg leaves idle (issue 23: jupyter-scipy's
apt step and its first pip step). They share one layer. The recipe vouches that the pip
step needs nothing the apt step installs; nbpipe cannot check that.
"""

from __future__ import annotations

import shlex
from dataclasses import replace
from typing import Sequence

from nbpipe.errors import NbpipeError
from nbpipe.recipe.ops import CacheMount, Exec, Op
from nbpipe.recipe.steps import Apt, Pip, Step


def lowered(steps: Sequence[Step]) -> tuple[tuple[str, Op], ...]:
    """(what it comes from, op) for each op of ``steps``, in order."""
    out: list[tuple[str, Op]] = []
    before: Step | None = None
    for st in steps:
        if isinstance(st, Pip) and st.beside:
            if not isinstance(before, Apt):
                what = before.describe() if before else "nothing"
                raise NbpipeError(
                    f"{st.describe()}: beside=True runs it at the same time as the apt step "
                    f"just before it, but the step before it is {what}"
                )
            (apt_what, apt_op), (pip_op,) = out.pop(), st.lower()
            assert isinstance(apt_op, Exec) and isinstance(pip_op, Exec)  # each lowers to one
            out.append((f"{apt_what} + {st.describe()} (at once)", at_once(apt_op, pip_op)))
        else:
            out += [(st.describe(), op) for op in st.lower()]
        before = st
    return tuple(out)


def at_once(first: Exec, second: Exec) -> Exec:
    """One Exec running ``first`` (as its user, root) and ``second`` (as its numeric
    uid:gid, with its own environment and the HOME that user has) at the same time; it
    fails if either fails. ``second``'s caches are mounted shared: Buildah 1.28 releases
    only one of a RUN's locked caches (ops.CacheMount), and ``first`` keeps its lock."""
    uid, gid = (second.user or "").split(":")
    inner = second.argv()[2]  # its env exported, then its script
    script = "\n".join(
        [
            "set -eu",
            f"(\n{first.script}\n) &",
            "first=$!",
            f"home=$(getent passwd {uid} | cut -d: -f6)",
            f'HOME="${{home:-/}}" setpriv --reuid={uid} --regid={gid} --clear-groups '
            f"-- /bin/sh -c {shlex.quote(inner)} &",
            "second=$!",
            'wait "$first"',
            'wait "$second"',
        ]
    )
    shared = tuple(
        replace(m, shared=True) if isinstance(m, CacheMount) else m for m in second.mounts
    )
    return Exec(
        script,
        user=first.user,
        network=first.network or second.network,
        pip=first.pip or second.pip,
        apt=first.apt or second.apt,
        mounts=first.mounts + shared,
        env=first.env,
    )
