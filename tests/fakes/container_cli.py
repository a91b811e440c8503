"""A fake container CLI (podman, docker, skopeo) for offline tests of the code that runs
them: every call is appended to $FAKECLI_LOG as JSON, and answered by the first rule in
$FAKECLI_RULES whose ``argv`` is a prefix of the call's argv (and whose ``has`` tokens all
appear in it). A rule can write files named by a flag (``--iidfile``, ``--digestfile``)
and record the text of files named by a flag (``-f`` Dockerfile)."""

from __future__ import annotations

import base64
import json
import os
import stat
import sys
from pathlib import Path


def install(folder: Path, *names: str) -> dict[str, str]:
    """Put executables called ``names`` (default podman) in ``folder``; returns their paths."""
    folder.mkdir(parents=True, exist_ok=True)
    out = {}
    for name in names or ("podman",):
        exe = folder / name
        exe.write_text(f'#!/bin/sh\nexec {sys.executable} {Path(__file__).resolve()} {name} "$@"\n')
        exe.chmod(exe.stat().st_mode | stat.S_IEXEC)
        out[name] = str(exe)
    return out


class Fake:
    """The test side: the rules to answer with, and the calls that were made."""

    def __init__(self, folder: Path, monkeypatch, *names: str) -> None:
        self.folder = folder
        self.log = folder / "calls.jsonl"
        self.rules_file = folder / "rules.json"
        self.paths = install(folder / "bin", *names)
        self.rules: list[dict] = []
        monkeypatch.setenv("FAKECLI_LOG", str(self.log))
        monkeypatch.setenv("FAKECLI_RULES", str(self.rules_file))
        monkeypatch.setenv("PATH", f"{folder / 'bin'}:{os.environ['PATH']}")
        self.save()

    def on(
        self,
        *argv: str,
        rc: int = 0,
        stdout: str = "",
        stderr: str = "",
        stdout_b64: str = "",
        has: tuple[str, ...] = (),
        write: dict[str, str] | None = None,
        record: tuple[str, ...] = (),
    ) -> "Fake":
        self.rules.append(
            {
                "argv": list(argv),
                "rc": rc,
                "stdout": stdout,
                "stderr": stderr,
                "stdout_b64": stdout_b64,
                "has": list(has),
                "write": write or {},
                "record": list(record),
            }
        )
        self.save()
        return self

    def save(self) -> None:
        self.rules_file.write_text(json.dumps(self.rules))

    def calls(self, tool: str | None = None) -> list[list[str]]:
        if not self.log.exists():
            return []
        rows = [json.loads(line) for line in self.log.read_text().splitlines()]
        return [r["argv"] for r in rows if tool is None or r["tool"] == tool]

    def recorded(self) -> list[dict[str, str]]:
        rows = [json.loads(line) for line in self.log.read_text().splitlines()]
        return [r["files"] for r in rows if r["files"]]


def main() -> int:
    tool, argv = sys.argv[1], sys.argv[2:]
    rules = json.loads(Path(os.environ["FAKECLI_RULES"]).read_text())
    rule = next(
        (
            r
            for r in rules
            if argv[: len(r["argv"])] == r["argv"] and all(t in argv for t in r["has"])
        ),
        None,
    )
    files = {}
    for flag in (rule or {}).get("record", []):
        if flag in argv:
            files[flag] = Path(argv[argv.index(flag) + 1]).read_text()
    with open(os.environ["FAKECLI_LOG"], "a") as log:
        log.write(json.dumps({"tool": tool, "argv": argv, "files": files}) + "\n")
    if rule is None:
        sys.stderr.write(f"fake {tool}: no rule for {argv}\n")
        return 125
    for flag, content in rule["write"].items():
        Path(argv[argv.index(flag) + 1]).write_text(content)
    sys.stdout.write(rule["stdout"])
    sys.stdout.flush()
    if rule["stdout_b64"]:
        sys.stdout.buffer.write(base64.b64decode(rule["stdout_b64"]))
    sys.stderr.write(rule["stderr"])
    return rule["rc"]


if __name__ == "__main__":
    sys.exit(main())
