"""Pip locks: applied per platform, part of the digest, ignored once stale."""

from __future__ import annotations

import json

from nbpipe import family as images
from nbpipe import lock
from nbpipe import platforms as plat
from nbpipe.steps import Pip

LINES = "numpy==2.4.6 --hash=sha256:" + "a" * 64 + "\n"


def plain():
    """The family without images/lock.json, so these tests bring their own locks."""
    return lock.unlocked(images.family())


def _scipy_key(cat, index: int = 1) -> tuple[str, Pip]:
    img = lock.unlocked(cat).resolve("jupyter-scipy")
    pips = [(i, st) for i, st in enumerate(img.steps) if isinstance(st, Pip)]
    i, st = pips[0]
    return lock.key("jupyter-scipy", i, st), st


def test_lock_applies_per_platform_and_changes_only_that_digest(tmp_path) -> None:
    cat = plain()
    before = cat.digests(plat.AMD64)
    k, step = _scipy_key(cat)
    path = tmp_path / "lock.json"
    lock.save(path, {k: {plat.AMD64: LINES}})
    locked = lock.apply(plain(), path)
    after = locked.digests(plat.AMD64)
    assert [n for n in before if before[n] != after[n]] == ["jupyter-scipy"]
    assert locked.digests(plat.ARM64) == plain().digests(plat.ARM64)
    img = locked.resolve("jupyter-scipy")
    amd = [st for st in img.steps_for(plat.AMD64) if isinstance(st, Pip) and st.locked]
    arm = [st for st in img.steps_for(plat.ARM64) if isinstance(st, Pip)]
    assert len(amd) == 1 and amd[0].packages == step.packages
    assert all(not st.locked for st in arm) and any(st.packages == step.packages for st in arm)


def test_locked_step_installs_exactly_the_lock_with_hashes() -> None:
    st = Pip(packages=("numpy==2.4.6",), locked=LINES)
    script = st.lower()[0].script
    assert "--require-hashes -r /tmp/nbpipe-pip.lock" in script
    assert LINES.strip() in script
    assert "numpy==2.4.6 " not in script.split("NBPIPE_LOCK\n")[-1]  # not resolved afresh


def test_stale_entries_are_ignored_and_reported(tmp_path) -> None:
    cat = plain()
    path = tmp_path / "lock.json"
    lock.save(path, {"jupyter-scipy/9/0000000000000000": {plat.AMD64: LINES}})
    assert lock.apply(plain(), path).digests() == cat.digests()
    missing = lock.check(cat, lock.load(path))
    assert any(m.startswith("jupyter-scipy step") for m in missing)
    assert json.loads(path.read_text())["version"] == 1


def test_unlocked_gives_back_the_recipes(tmp_path) -> None:
    k, _ = _scipy_key(plain())
    path = tmp_path / "lock.json"
    lock.save(path, {k: {plat.AMD64: LINES, plat.ARM64: LINES}})
    locked = lock.apply(plain(), path)
    again = lock.unlocked(locked)
    assert again.digests() == plain().digests()
    assert locked.digests()["jupyter-scipy"] != again.digests()["jupyter-scipy"]


def test_the_family_lock_covers_the_ci_chain_on_amd64() -> None:
    missing = lock.check(images.family(), lock.load(images.LOCK_FILE))
    assert not [m for m in missing if m.startswith(("base step", "jupyter step",
                                                    "jupyter-scipy step"))
                and m.endswith("linux/amd64")]
    img = images.family().resolve("jupyter-scipy")
    locked = [s for i in img.lineage() for s in i.steps_for(plat.AMD64) if getattr(s, "locked", None)]
    assert {type(s).__name__ for s in locked} == {"Apt", "Pip"}


def test_locked_apt_step_installs_the_pinned_closure() -> None:
    from nbpipe.steps import Apt

    st = Apt(packages=("python3",), locked="python3=3.11.2-1+b1\npython3.11=3.11.2-6+deb12u9\n")
    script = st.lower()[0].script
    assert "--no-install-recommends -o APT::Keep-Downloaded-Packages=true " \
           "python3=3.11.2-1+b1 python3.11=3.11.2-6+deb12u9" in script
