"""Dated snapshots of Debian's archive: the third way to live with a moving archive.

snapshot.debian.org is not reachable from our machines, so this is tested by what is
lowered (the sources each engine is given) and by what the plan says, never by a build.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from nbpipe.locks import archive
from nbpipe.run import state
from nbpipe import family as images
from nbpipe.recipe import platforms as plat
from nbpipe.inputs import spec
from nbpipe.engines import dockerfile
from nbpipe.errors import NbpipeError, SpecError
from nbpipe.recipe.options import BuildOptions
from nbpipe.recipe.steps import Apt

DATE = "20261126T000000Z"
SOURCES = [f"deb http://snapshot.debian.org/archive/debian/{DATE}/ bookworm main",
           f"deb http://snapshot.debian.org/archive/debian/{DATE}/ bookworm-updates main",
           f"deb http://snapshot.debian.org/archive/debian-security/{DATE}/ bookworm-security main"]


def test_an_apt_step_from_a_snapshot_reads_only_its_sources() -> None:
    (op,) = Apt(packages=("curl",), snapshot=DATE).lower()
    lines = op.script.splitlines()
    writes = next(line for line in lines if line.startswith("printf"))
    assert all(f"'{src}'" in writes for src in SOURCES)
    update = next(line for line in lines if line.startswith("apt-get update"))
    install = next(line for line in lines if "apt-get install" in line)
    for cmd in (update, install):  # both apt calls see the snapshot alone, past Valid-Until
        assert "-o Dir::Etc::SourceList=/tmp/nbpipe-snapshot.list" in cmd
        assert "-o Dir::Etc::SourceParts=-" in cmd
        assert "-o Acquire::Check-Valid-Until=false" in cmd
    assert "/etc/apt" not in writes  # the image's own sources stay as they are
    assert lines[-1] == "rm -f /tmp/nbpipe-snapshot.list"


def test_without_a_snapshot_the_step_and_its_digest_are_as_before() -> None:
    plain = Apt(packages=("curl",))
    assert "snapshot" not in plain.canonical()
    assert "snapshot" not in plain.lower()[0].script
    assert Apt(packages=("curl",), snapshot=DATE).canonical()["snapshot"] == DATE
    assert plain.sources() == ("deb.debian.org",)
    assert Apt(packages=("curl",), snapshot=DATE).sources() == ("snapshot.debian.org",)


@pytest.mark.parametrize("bad", ["2026-11-26", "20261126", "20261126T000000Z\nRUN id",
                                 "20261126T000000Z; rm -rf /", 20261126])
def test_a_snapshot_that_is_not_a_time_is_refused_when_the_step_is_made(bad) -> None:
    with pytest.raises(NbpipeError, match="20261126T000000Z"):
        Apt(packages=("curl",), snapshot=bad)


def test_the_family_from_a_snapshot_in_both_lowerings() -> None:
    plain = images.family()
    dated = archive.with_snapshot(images.family(), DATE)
    img = dated.resolve("jupyter-scipy")
    apt = [st for st in img.steps if isinstance(st, Apt)]
    assert apt and all(st.snapshot == DATE for st in apt)
    assert all(st.locked for st in apt if st.applies_to(plat.AMD64))  # pins kept
    assert img.digest(plat.AMD64) != plain.resolve("jupyter-scipy").digest(plat.AMD64)
    text = dockerfile.render(img, plat.AMD64, BuildOptions()).text
    assert SOURCES[2] in text
    pytest.importorskip("dagger")
    from nbpipe.engines import dagger as lowering

    ctr = lowering.lower(img, plat.AMD64, BuildOptions())
    calls = repr([(f.name, f.args) for f in ctr._ctx.selections])
    assert "debian-security/" + DATE in calls and "Check-Valid-Until=false" in calls


def test_the_plan_says_a_snapshot_is_out_of_reach_here() -> None:
    dated = archive.with_snapshot(images.family(), DATE)
    why = state.unreachable(dated.resolve("base"), plat.AMD64)
    assert "snapshot.debian.org" in why and "not reachable" in why


def test_a_spec_names_its_snapshot(tmp_path: Path) -> None:
    good = tmp_path / "team.yaml"
    good.write_text(f"name: t\nparent: jupyter\napt: [libcfitsio10]\ndebian_snapshot: {DATE}\n")
    img = spec.load(good).register(images.family()).resolve("t")
    assert [st.snapshot for st in img.steps if isinstance(st, Apt)] == [DATE]
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: t\nparent: jupyter\napt: [libcfitsio10]\ndebian_snapshot: last week\n")
    with pytest.raises(SpecError) as exc:
        spec.load(bad)
    assert str(exc.value).startswith(f"{bad}:4:") and "debian_snapshot" in str(exc.value)
    assert "\n" not in str(exc.value)
