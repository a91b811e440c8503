"""What a build/test run produced, per image: a terminal table, JSON and Markdown."""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING

from nbpipe.probes.result import ProbeResult, Status

if TYPE_CHECKING:
    from rich.table import Table


class Outcome(StrEnum):
    """What a run did to one image (the probes' own results are probes.result.Status)."""

    PENDING = "pending"
    BUILT = "built"  # a new image
    CACHED = "cached"  # its digest was already built: no work
    FAILED = "failed"  # a step or a probe failed
    BLOCKED = "blocked"  # an ancestor failed or is unbuildable
    UNBUILDABLE = "unbuildable"  # needs a source out of reach (or a download with no sha256)


@dataclass
class ImageResult:
    name: str
    platform: str
    digest: str
    ref: str = ""
    status: Outcome = Outcome.PENDING
    seconds: float = 0.0
    size: int | None = None
    message: str = ""
    probes: list[ProbeResult] = field(default_factory=list)
    log: str = ""
    blocked_by: str | None = None  # blocked: the ancestor at the root of it (failed or unbuildable)
    # Lock steps re-resolved in this run because Debian's archive had moved (one line each).
    refreshed: list[str] = field(default_factory=list)
    audit: dict | None = None  # `build --audit`: audit.Report.to_dict() (+ "summary")

    @property
    def ok(self) -> bool:
        return self.status in (Outcome.BUILT, Outcome.CACHED) and not any(
            p.status is Status.FAILED for p in self.probes
        )

    def probe_summary(self) -> str:
        if not self.probes:
            return "-"
        n = {s: sum(p.status is s for p in self.probes) for s in Status}
        return f"{n[Status.PASSED]} passed, {n[Status.FAILED]} failed, {n[Status.SKIPPED]} skipped"

    def to_dict(self) -> dict:
        d = asdict(self)
        d["status"] = self.status.value
        d["probes"] = [p.to_dict() for p in self.probes]
        d["ok"] = self.ok
        return d


@dataclass(frozen=True)
class Verdict:
    """What a run's exit code stands on. ``failed``: built or probed and it went wrong (or
    blocked by such a failure). ``skipped``: not built or probed because a source is out
    of reach here (unbuildable, or blocked by an unbuildable ancestor)."""

    failed: tuple[str, ...]
    skipped: tuple[tuple[str, str], ...]  # (image, why)

    def skipped_line(self) -> str:
        return f"{len(self.skipped)} image(s) skipped, not built or probed: " + "; ".join(
            f"{n} ({why})" for n, why in self.skipped
        )


def verdict(results: list[ImageResult]) -> Verdict:
    """Sort the images a run did not deliver into failed and skipped."""
    by_name = {r.name: r for r in results}
    failed, skipped = [], []
    for r in results:
        if r.status is Outcome.UNBUILDABLE:
            skipped.append(
                (r.name, f"unbuildable here: {r.message}" if r.message else "unbuildable here")
            )
        elif r.status is Outcome.BLOCKED:
            cause = by_name.get(r.blocked_by or "")
            if cause is not None and cause.status is Outcome.UNBUILDABLE:
                skipped.append((r.name, f"blocked by {cause.name}, unbuildable here"))
            else:
                failed.append(r.name)
        elif not r.ok:
            failed.append(r.name)
    return Verdict(tuple(failed), tuple(skipped))


def _size(n: int | None) -> str:
    return "-" if n is None else f"{n / 1e6:,.0f} MB"


def table(results: list[ImageResult]) -> "Table":
    from rich.table import Table

    t = Table("image", "status", "time", "size", "digest", "probes", title="nbpipe report")
    for r in results:
        color = (
            "green"
            if r.ok
            else ("yellow" if r.status in (Outcome.UNBUILDABLE, Outcome.BLOCKED) else "red")
        )
        t.add_row(
            r.name,
            f"[{color}]{r.status}[/{color}]",
            f"{r.seconds:.1f}s",
            _size(r.size),
            r.digest.split(":")[-1][:12],
            r.probe_summary(),
        )
    return t


def markdown(results: list[ImageResult]) -> str:
    lines = [
        "# nbpipe report",
        "",
        f"_{time.strftime('%Y-%m-%d %H:%M:%S %Z')}_",
        "",
        "| image | platform | status | time | size | digest | probes |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in results:
        lines.append(
            f"| {r.name} | {r.platform} | {r.status} | {r.seconds:.1f}s | {_size(r.size)}"
            f" | `{r.digest.split(':')[-1][:12]}` | {r.probe_summary()} |"
        )
    for r in results:
        if r.message or r.probes or r.refreshed:
            lines += ["", f"## {r.name}", ""]
            for line in r.refreshed:
                lines.append(f"- lock refreshed: {line}")
            if r.message:
                lines += ["```", r.message, "```", ""]
            for p in r.probes:
                mark = {"passed": "PASS", "failed": "FAIL", "skipped": "SKIP"}[p.status.value]
                lines.append(f"- **{mark}** `{p.name}` ({p.seconds:.2f}s): {p.message}")
    for r in results:
        if r.audit:
            lines += ["", f"## {r.name}: known vulnerabilities", "", r.audit.get("summary", "")]
            for src in r.audit.get("sources", []):
                for f in src["findings"]:
                    fixed = ", ".join(f["fixed_in"]) or "no fix"
                    lines.append(
                        f"- `{f['package']}` {f['version']}: [{f['id']}]({f['link']})"
                        f" ({', '.join(f['aliases'])}; fixed in {fixed})"
                    )
                if src["note"]:
                    lines.append(f"- note: {src['note']}")
    return "\n".join(lines) + "\n"


def write(results: list[ImageResult], folder: Path) -> tuple[Path, Path]:
    """Both reports, each written whole (temporary file + rename) or not at all."""
    from nbpipe.inputs import safe_io

    js = safe_io.atomic_write(
        folder / "nbpipe-report.json", json.dumps([r.to_dict() for r in results], indent=2) + "\n"
    )
    md = safe_io.atomic_write(folder / "nbpipe-report.md", markdown(results))
    return js, md
