"""One settings object (issue 20): every environment variable nbpipe reads is in
settings.ENV and in the README's table, and below the CLI only settings.py reads them
(secrets excepted: they are read where they are used, never kept)."""

from __future__ import annotations

import re
from pathlib import Path

from nbpipe.run.settings import ENV, Settings

REPO = Path(__file__).resolve().parents[2]
# secrets and other tools' own variables, read where they are used
READ_WHERE_USED = {
    "nbpipe/engines/registry.py",  # registry password, auth files
    "nbpipe/supply/signing.py",  # the signing key's passphrase
    "nbpipe/cli/supply.py",  # the same passphrase, asked for by the CLI
}


def test_the_readme_lists_every_variable_settings_reads() -> None:
    readme = (REPO / "README.md").read_text()
    table = dict(re.findall(r"^\| `([A-Z_]+)` \| (.+) \|$", readme, re.M))
    assert set(table) == set(ENV)


def test_below_the_cli_only_settings_reads_nbpipe_variables() -> None:
    readers = []
    for path in sorted((REPO / "nbpipe").rglob("*.py")):
        rel = path.relative_to(REPO).as_posix()
        if rel == "nbpipe/run/settings.py" or rel in READ_WHERE_USED or "/probes/" in rel:
            continue  # probes run inside containers, told by their own command line
        text = path.read_text()
        if re.search(r"(environ(\.get)?\(?\[?|getenv\()\s*[\"']NBPIPE_", text):
            readers.append(rel)
    assert readers == []


def test_settings_come_from_the_environment_given() -> None:
    s = Settings.from_env({
        "NBPIPE_STATE_DIR": "/tmp/st", "NBPIPE_WORKDIR": "/tmp/wd", "NBPIPE_RUNTIME": "runc",
        "NBPIPE_ASSUME_REACHABLE": "a.example, b.example", "NBPIPE_DAGGER_ROOT": "r@sha256:x",
        "DAGGER_SESSION_PORT": "1234", "NBPIPE_CATALOG": "m:f", "NBPIPE_DEBUG": "1"})
    assert (s.state_dir, s.workdir, s.runtime, s.dagger_root, s.catalog) == (
        Path("/tmp/st"), Path("/tmp/wd"), "runc", "r@sha256:x", "m:f")
    assert s.assume_reachable == {"a.example", "b.example"} and s.dagger_session and s.debug
    # the command line prefetches by default; a Pipeline made in code only when asked
    assert Settings.from_env({}) == Settings(prefetch=True)
    assert not Settings.from_env({"NBPIPE_PREFETCH": "0"}).prefetch
