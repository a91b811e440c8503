"""The audit against PyPI itself (skipped with the reason where PyPI does not answer):
the recorded answers in tests/sdk/data/pypi keep the offline tests honest only while
PyPI still answers this way."""

from __future__ import annotations

import httpx
import pytest

from nbpipe.supply import audit


def _get(path: str) -> httpx.Response:
    try:
        return httpx.get(f"{audit.PYPI}/{path}", timeout=20, follow_redirects=True)
    except httpx.HTTPError as exc:
        pytest.skip(f"PyPI is not reachable: {type(exc).__name__}: {exc}")


def test_pypi_lists_the_advisory_of_a_vulnerable_release() -> None:
    r = _get("ecdsa/json")
    if r.status_code != 200:
        pytest.skip(f"PyPI answered HTTP {r.status_code} for /pypi/ecdsa/json")
    latest = r.json()["info"]["version"]
    src = audit.PyPI()
    report = audit.audit(
        "live",
        {
            "components": [
                {"name": "ecdsa", "version": latest, "purl": f"pkg:pypi/ecdsa@{latest}"},
                {
                    "name": "six",
                    "version": _get("six/json").json()["info"]["version"],
                    "purl": "pkg:pypi/six",
                },
            ]
        },
        [src],
    )
    # ecdsa: GHSA-wj6h-64fc-37mp (Minerva), which upstream will not fix; six: none
    assert {f.package.name for f in report.findings} == {"ecdsa"}
    assert "GHSA-wj6h-64fc-37mp" in {f.advisory.id for f in report.findings}
    assert report.results[0].checked == 2


def test_pypi_per_release_advisories() -> None:
    """What pip-audit reads: an old release's own advisories (jinja2 2.10: CVE-2019-10906)."""
    r = _get("jinja2/2.10/json")
    if r.status_code == 404 and _get("jinja2/json").status_code == 200:
        pytest.skip(
            "PyPI's per-release JSON (/pypi/NAME/VERSION/json) is refused from this "
            "machine (HTTP 404 while /pypi/NAME/json answers): old pins are reported "
            "'not checked' here"
        )
    report = audit.audit(
        "live",
        {"components": [{"name": "Jinja2", "version": "2.10", "purl": "pkg:pypi/jinja2@2.10"}]},
        [audit.PyPI()],
    )
    assert "PYSEC-2019-217" in {f.advisory.id for f in report.findings}
