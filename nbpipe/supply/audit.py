"""Known vulnerabilities of an image's packages, from its SBOM, against advisory sources.

A source answers for one ecosystem (``pypi``, ``deb``). PyPI's JSON API carries the
advisories it knows (from OSV) per release, as pip-audit's PyPI service reads them:
``/pypi/NAME/VERSION/json`` has a ``vulnerabilities`` field. From our machines only the
project JSON (``/pypi/NAME/json``, whose ``vulnerabilities`` cover its latest release)
answers; a pin older than the latest is then reported *not checked*, never clean.
Debian's security tracker and OSV's API are not reachable here: ``Unreachable`` says so
in every report, and an OSV or Debian source plugs in where they answer (any object with
``name``, ``ecosystem`` and ``check``).
"""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Iterable, Protocol
from urllib.parse import quote

import httpx

SEVERITIES = ("low", "medium", "high", "critical")  # ordered; "unknown" fails closed
PYPI = "https://pypi.org/pypi"


@dataclass(frozen=True)
class Package:
    ecosystem: str  # pypi | deb
    name: str
    version: str


@dataclass(frozen=True)
class Advisory:
    id: str
    aliases: tuple[str, ...] = ()
    summary: str = ""
    fixed_in: tuple[str, ...] = ()
    link: str = ""
    severity: str = "unknown"  # PyPI's data carries none


@dataclass(frozen=True)
class Finding:
    package: Package
    advisory: Advisory
    source: str


@dataclass(frozen=True)
class Unchecked:
    package: Package
    reason: str


@dataclass(frozen=True)
class SourceResult:
    source: str
    ecosystem: str
    checked: int = 0
    findings: tuple[Finding, ...] = ()
    unchecked: tuple[Unchecked, ...] = ()
    note: str = ""  # about the source as a whole (e.g. not reachable from here)


class AdvisorySource(Protocol):
    @property
    def name(self) -> str: ...

    @property
    def ecosystem(self) -> str: ...

    def check(self, packages: list[Package]) -> SourceResult: ...


@dataclass(frozen=True)
class Unreachable:
    """A source that cannot be asked from this machine: its packages are not checked,
    and the report says why."""

    name: str
    ecosystem: str
    reason: str

    def check(self, packages: list[Package]) -> SourceResult:
        return SourceResult(
            self.name,
            self.ecosystem,
            0,
            (),
            tuple(Unchecked(p, self.reason) for p in packages),
            note=f"{self.name}: {self.reason}",
        )


DEBIAN_TRACKER = Unreachable(
    "debian-security-tracker",
    "deb",
    "Debian's security tracker (security-tracker.debian.org) and OSV (api.osv.dev) are not "
    "reachable from this machine: Debian packages not checked",
)


@dataclass
class PyPI:
    """PyPI's JSON API. ``transport`` replaces the network (tests: recorded answers)."""

    base: str = PYPI
    transport: httpx.BaseTransport | None = None
    jobs: int = 16
    timeout: float = 20.0
    name: str = "pypi"
    ecosystem: str = "pypi"
    _per_release_refused: bool = field(default=False, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def check(self, packages: list[Package]) -> SourceResult:
        with httpx.Client(
            timeout=self.timeout, follow_redirects=True, transport=self.transport
        ) as client:
            with ThreadPoolExecutor(max_workers=max(1, self.jobs)) as pool:
                answers = list(pool.map(lambda p: self._one(client, p), packages))
        findings = tuple(f for a in answers if isinstance(a, list) for f in a)
        unchecked = tuple(a for a in answers if isinstance(a, Unchecked))
        note = (
            "PyPI's per-release JSON (/pypi/NAME/VERSION/json) is refused from here: "
            "only each project's latest release could be checked"
            if self._per_release_refused
            else ""
        )
        return SourceResult(
            self.name, self.ecosystem, len(packages) - len(unchecked), findings, unchecked, note
        )

    def _get(self, client: httpx.Client, path: str) -> httpx.Response:
        return client.get(f"{self.base}/{path}")

    def _one(self, client: httpx.Client, p: Package) -> list[Finding] | Unchecked:
        name = quote(p.name, safe="")
        try:
            if not self._per_release_refused:
                r = self._get(client, f"{name}/{quote(p.version, safe='')}/json")
                if r.status_code == 200:
                    return self._findings(p, r.json())
                if r.status_code != 404:
                    return Unchecked(p, f"PyPI answered HTTP {r.status_code}")
            r = self._get(client, f"{name}/json")
            if r.status_code == 404:
                return Unchecked(p, "not on PyPI")
            if r.status_code != 200:
                return Unchecked(p, f"PyPI answered HTTP {r.status_code}")
            data = r.json()
            latest = str((data.get("info") or {}).get("version", ""))
            if latest == p.version:
                return self._findings(p, data)
            if p.version not in (data.get("releases") or {}):
                return Unchecked(p, f"version {p.version} is not on PyPI")
            with self._lock:
                self._per_release_refused = True  # the project is there, its release not
            return Unchecked(
                p,
                f"not checked: PyPI's data for {p.version} is not reachable "
                f"here (only the latest, {latest})",
            )
        except (httpx.HTTPError, ValueError) as exc:
            return Unchecked(p, f"PyPI unreachable: {type(exc).__name__}: {exc}")

    def _findings(self, p: Package, data: dict) -> list[Finding]:
        out = []
        for v in data.get("vulnerabilities") or []:
            if not isinstance(v, dict) or v.get("withdrawn"):
                continue
            out.append(
                Finding(
                    p,
                    Advisory(
                        id=str(v.get("id", "?")),
                        aliases=tuple(map(str, v.get("aliases") or ())),
                        summary=str(v.get("summary") or v.get("details") or "")[:200],
                        fixed_in=tuple(map(str, v.get("fixed_in") or ())),
                        link=str(v.get("link") or ""),
                    ),
                    self.name,
                )
            )
        return out


def packages(sbom: dict) -> list[Package]:
    """The packages of a CycloneDX document nbpipe wrote (purl pkg:pypi/..., pkg:deb/...)."""
    out = []
    comps = sbom.get("components")
    for c in comps if isinstance(comps, list) else []:
        purl = str(c.get("purl", "")) if isinstance(c, dict) else ""
        kind = purl.removeprefix("pkg:").split("/", 1)[0]
        if kind in ("pypi", "deb") and c.get("name") and c.get("version"):
            out.append(Package(kind, str(c["name"]), str(c["version"])))
    return sorted(set(out), key=lambda p: (p.ecosystem, p.name.lower(), p.version))


@dataclass(frozen=True)
class Report:
    image: str
    results: tuple[SourceResult, ...]

    @property
    def findings(self) -> tuple[Finding, ...]:
        return tuple(f for r in self.results for f in r.findings)

    def fails(self, threshold: str) -> bool:
        """Whether a finding is at or above ``threshold`` (none: never); a finding whose
        severity is unknown (PyPI gives none) counts at every level."""
        if threshold == "none":
            return False
        rank = SEVERITIES.index(threshold)
        return any(
            f.advisory.severity not in SEVERITIES or SEVERITIES.index(f.advisory.severity) >= rank
            for f in self.findings
        )

    def to_dict(self) -> dict:
        return {
            "image": self.image,
            "sources": [
                {
                    "source": r.source,
                    "ecosystem": r.ecosystem,
                    "checked": r.checked,
                    "unchecked": len(r.unchecked),
                    "note": r.note,
                    "findings": [
                        {
                            "package": f.package.name,
                            "version": f.package.version,
                            "id": f.advisory.id,
                            "aliases": list(f.advisory.aliases),
                            "fixed_in": list(f.advisory.fixed_in),
                            "severity": f.advisory.severity,
                            "link": f.advisory.link,
                        }
                        for f in r.findings
                    ],
                }
                for r in self.results
            ],
        }

    def summary(self) -> str:
        n = len(self.findings)
        unchecked = sum(len(r.unchecked) for r in self.results)
        checked = sum(r.checked for r in self.results)
        return (
            f"{n} known vulnerabilit{'y' if n == 1 else 'ies'} in "
            f"{len({f.package for f in self.findings})} package(s); {checked} checked, "
            f"{unchecked} not checked"
        )


def default_sources() -> list[AdvisorySource]:
    return [PyPI(), DEBIAN_TRACKER]


def audit(image: str, sbom: dict, sources: Iterable[AdvisorySource] | None = None) -> Report:
    """Check every package of ``sbom`` against the source of its ecosystem."""
    pkgs = packages(sbom)
    results = []
    for source in default_sources() if sources is None else list(sources):
        mine = [p for p in pkgs if p.ecosystem == source.ecosystem]
        results.append(source.check(mine))
    return Report(image, tuple(results))


def built_images(
    engine,
    results: list,
    sources: Iterable[AdvisorySource] | None = None,
    on_event=lambda n, w: None,
) -> None:
    """`build --audit`: each image built or cached here gets its report (``r.audit``),
    from the SBOM read out of the image itself."""
    from nbpipe.supply import sbom

    for r in results:
        if not (r.ok and r.ref):
            continue
        on_event(r.name, "auditing its Python packages")
        report = audit(r.name, {"components": sbom.components(engine, r.ref)}, sources)
        r.audit = {**report.to_dict(), "summary": report.summary()}
