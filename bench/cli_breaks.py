"""Issue 25: break each CLI fix once; the named tests of tests/sdk/test_cli_platform.py must fail.
Run: .venv/bin/python bench/cli_breaks.py [NAME ...]. Restores every file it touches."""

import subprocess
import sys
from pathlib import Path

W = Path(__file__).resolve().parents[1]
BREAKS = [
    ("help markup", "nbpipe/cli/commands.py", "        rich_markup_mode=None,\n", "", "help"),
    (
        "-h",
        "nbpipe/cli/commands.py",
        'HELP = {"help_option_names": ["-h", "--help"], ',
        "HELP = {",
        "help_never",
    ),
    ("placeholders", "nbpipe/cli/commands.py", "    plain(command)\n", "", "help_never"),
    (
        "unbuildable exit",
        "nbpipe/cli/commands.py",
        "if verdict.failed or (verdict.skipped and not allow_unbuildable):",
        "if verdict.failed:",
        "unbuildable_image_asked",
    ),
    (
        "blocked_by root",
        "nbpipe/run/pipeline.py",
        "results[by].blocked_by or by",
        "by",
        "root_of_a_block or allow_unbuildable",
    ),
    (
        "test probes only targets",
        "nbpipe/run/pipeline.py",
        "targets=frozenset(names) if force_probe and names else None",
        "targets=None",
        "probes_afresh_only",
    ),
    (
        "test probes only targets (pipeline)",
        "nbpipe/run/pipeline.py",
        "or st.state is not State.BUILT\n",
        "or True\n",
        "probes_only",
    ),
    (
        "export root",
        "nbpipe/cli/commands.py",
        "        _catalog(catalog, file, from_repo, parent), engine, root, platform,"
        " need_engine=False\n"
        "    )\n"
        "    img = m.catalog.resolve(targets[0])",
        "        _catalog(catalog, file, from_repo, parent), engine, 'registry', platform,"
        " need_engine=False\n"
        "    )\n"
        "    img = m.catalog.resolve(targets[0])",
        "digests_plan_gives",
    ),
    (
        "spec validate root",
        "nbpipe/cli/commands.py",
        "    m = _machine(cat, engine, root, platform, need_engine=False)\n"
        "    from nbpipe.recipe.naming import content_tag",
        "    m = _machine(cat, engine, 'registry', platform, need_engine=False)\n"
        "    from nbpipe.recipe.naming import content_tag",
        "digests_plan_gives",
    ),
    (
        "piped width",
        "nbpipe/cli/output.py",
        "width=None if tty else PIPED_WIDTH",
        "width=None",
        "piped",
    ),
    (
        "images json",
        "nbpipe/cli/commands.py",
        'output.emit_json({"platform": m.platform, "root": m.root_name, "images": rows})',
        "console.print(rows)",
        "every_listing_has_json",
    ),
    (
        "lock names",
        "nbpipe/cli/commands.py",
        "locks.uncovered(cat, entries, wanted, ancestors=own is None)",
        "locks.uncovered(cat, entries, None, ancestors=own is None)",
        "honours_the_names or own_lock",
    ),
    (
        "lock unknown",
        "nbpipe/cli/commands.py",
        "        cat.entry(n)  # an unknown name",
        "        pass  # an unknown name",
        "lock_check_refuses",
    ),
    (
        "lock missing file",
        "nbpipe/cli/commands.py",
        "if lock_file is not None and check and not lock_file.exists():",
        "if False:",
        "lock_check_refuses",
    ),
    (
        "brief",
        "nbpipe/locks/lock.py",
        '    cut = text.rfind(" ", 0, width)',
        "    cut = width",
        "cut_between_words",
    ),
    (
        "spec lock applied",
        "nbpipe/cli/commands.py",
        "            locks.apply_to(cat, sp.name, locks.spec_lock(f))\n    if repo",
        "\n    if repo",
        "own_lock",
    ),
    (
        "unpinned warning",
        "nbpipe/inputs/spec.py",
        "        for line, field, req in where\n        if not PINNED.fullmatch(req.strip())\n",
        "        for line, field, req in where\n        if False\n",
        "own_lock",
    ),
    (
        "since mismatch",
        "nbpipe/run/state.py",
        "    if differ:\n",
        "    if False:\n",
        "since_from_another or piped_messages",
    ),
    (
        "spawner tag",
        "nbpipe/run/spawner.py",
        'refs[GROUPS[server]].append((name, f"{tagged}@{digest}"))',
        'refs[GROUPS[server]].append((name, f"{registry.repo(name)}@{digest}"))',
        "spawner",
    ),
    (
        "spawner blocks top key",
        "nbpipe/run/spawner.py",
        '    for g in pub.groups:\n        lines += _block(g, "  ")',
        '    lines.append("spawnerFormDefaults:")\n'
        '    for g in pub.groups:\n        lines += _block(g, "  ")',
        "spawner_blocks",
    ),
    (
        "spawner default",
        "nbpipe/run/spawner.py",
        "value = (mine or items)[0][1]",
        "value = items[0][1]",
        "spawner",
    ),
    (
        "new venv",
        "nbpipe/cli/commands.py",
        'venv = cat.resolve(parent).config().env_dict().get("VIRTUAL_ENV") == contract.VENV',
        "venv = True",
        "new_spec_validates",
    ),
    (
        "pip on no venv",
        "nbpipe/inputs/spec.py",
        "            ours\n            and pip_node is not None\n            and any(",
        "            False\n            and any(",
        "without_venv",
    ),
    (
        "new family name",
        "nbpipe/cli/commands.py",
        "    if name in cat.entries:\n        raise NbpipeError",
        "    if False:\n        raise NbpipeError",
        "family_name",
    ),
    (
        "spec duplicate name",
        "nbpipe/inputs/spec.py",
        "        if self.name in catalog.entries:\n",
        "        if False:\n",
        "family_name",
    ),
    (
        "ci without repo",
        "nbpipe/cli/commands.py",
        "if ci is not None and repo is None:",
        "if False:",
        "ci_without_repo",
    ),
    (
        "team labels",
        "nbpipe/recipe/naming.py",
        "own = [p for p in options.origins if p.name == image.name]",
        "own = []",
        "team_image_labels",
    ),
    (
        "credentials in remote",
        "nbpipe/run/origin.py",
        r'remote = re.sub(r"^(\w[\w+.-]*://)[^/@]*@", r"\1", remote)',
        "pass",
        "remotes_become",
    ),
    (
        "build origins",
        "nbpipe/cli/commands.py",
        "deb_store=deb_store), origins=origins\n",
        "deb_store=deb_store), origins=()\n",
        "team_origin",
    ),
    (
        "choices",
        "nbpipe/cli/commands.py",
        "            if v is not None and v not in values:",
        "            if False:",
        "bad_choice",
    ),
    (
        "jobs min",
        "nbpipe/cli/commands.py",
        '"--jobs", "-j", metavar="N", min=1,',
        '"--jobs", "-j", metavar="N",',
        "before_any_work",
    ),
    (
        "registry address",
        "nbpipe/engines/registry.py",
        "        if not ADDRESS.fullmatch(address):",
        "        if False:",
        "before_any_work",
    ),
    (
        "validate every file",
        "nbpipe/cli/commands.py",
        "            loaded.append((f, None, str(exc)))",
        "            raise",
        "checks_every_file",
    ),
    (
        "field said once",
        "nbpipe/inputs/spec.py",
        "raise node.fail(rest if sep and kind in STEP_KINDS else message) from None",
        "raise node.fail(message) from None",
        "checks_every_file",
    ),
    (
        "skopeo fatal",
        "nbpipe/engines/registry.py",
        "    if fatal:\n",
        "    if False:\n",
        "unreachable_registry or fatal_lines",
    ),
]
only = sys.argv[1:]
bad = []
for name, f, old, new, k in BREAKS:
    if only and name not in only:
        continue
    p = W / f
    text = p.read_text()
    if text.count(old) != 1:  # the code moved: this break needs rewriting
        print(f"STALE: {name}: {text.count(old)} matches", flush=True)
        bad.append(name)
        continue
    p.write_text(text.replace(old, new))
    try:
        r = subprocess.run(
            [
                str(W / ".venv/bin/pytest"),
                "tests/sdk/test_cli_platform.py",
                "-q",
                "-x",
                "-p",
                "no:cacheprovider",
                "-k",
                k,
            ],
            cwd=W,
            capture_output=True,
            text=True,
        )
    finally:
        p.write_text(text)
    last = r.stdout.strip().splitlines()[-1]
    ok = r.returncode == 1 and "failed" in last
    print(f"{'caught' if ok else 'MISSED'}: {name}: {last}", flush=True)
    if not ok:
        bad.append(name)
print("missed:", bad)
