"""The framing rule (nbpipe/probes/csp.py) on every form of CSP's frame-ancestors grammar:
a page is frameable only if the dashboard may frame it from any host and port, over http
(``kubectl port-forward`` to localhost:8080) and https (the gateway). Each refusal is
checked through the probe too (test_checks.BROKEN, against the fake notebook server)."""

from __future__ import annotations

import pytest

from nbpipe.probes import csp

FRAMEABLE = [
    ("no CSP", ""),
    ("CSP without frame-ancestors", "default-src 'self'; img-src *"),
    ("any source", "frame-ancestors *"),
    ("'self' and any", "frame-ancestors 'self' *"),
    ("any among several", "frame-ancestors https://a.example.org * 'self'"),
    ("http scheme-only (CSP3: matches https too)", "frame-ancestors http:"),
    ("both schemes", "frame-ancestors https: http:"),
    ("wildcard host and port, no scheme", "frame-ancestors *:*"),
    ("wildcard host and port over http", "frame-ancestors http://*:*"),
    ("wildcard host and port, both schemes", "frame-ancestors https://*:* http://*:*"),
    ("path '/' admits an origin", "frame-ancestors http://*:*/"),
    ("directive name in capitals", "FRAME-ANCESTORS *"),
    ("schemes in capitals", "frame-ancestors HTTPS: HTTP:"),
    ("wildcard source in capitals", "frame-ancestors HTTP://*:*"),
    ("only the first frame-ancestors counts", "frame-ancestors *; frame-ancestors 'none'"),
    ("'none' beside a source is no source", "frame-ancestors 'none' *"),
    ("a host named like the directive", "default-src https://frame-ancestors.example.org; "
                                        "frame-ancestors *"),
    ("extra whitespace", "  frame-ancestors\t *  ;default-src 'self'"),
    ("two policies, both open", "frame-ancestors *, default-src 'self'"),
]

REFUSED = [
    ("'self' only", "default-src 'self'; frame-ancestors 'self'", ["'self'"]),
    ("'SELF' in capitals", "frame-ancestors 'SELF'", ["'SELF'"]),
    ("'none'", "frame-ancestors 'none'", ["'none'"]),
    ("empty list", "frame-ancestors; default-src *", []),
    ("https scheme-only: no http dashboard", "frame-ancestors https:", ["https:"]),
    ("other schemes", "frame-ancestors ws: wss: data:", ["ws:", "wss:", "data:"]),
    ("wildcard subdomain", "frame-ancestors https://*.example.org", ["https://*.example.org"]),
    ("wildcard subdomain, any port", "frame-ancestors *.example.org:*", ["*.example.org:*"]),
    ("wildcard host on the default port only", "frame-ancestors http://*", ["http://*"]),
    ("wildcard host over https only", "frame-ancestors https://*:*", ["https://*:*"]),
    ("a fixed port", "frame-ancestors https://kubeflow.example.org:8443",
     ["https://kubeflow.example.org:8443"]),
    ("wildcard host, fixed port", "frame-ancestors http://*:8080", ["http://*:8080"]),
    ("several named sources", "frame-ancestors 'self' https://kubeflow.example.org "
     "http://localhost:8080", ["'self'", "https://kubeflow.example.org", "http://localhost:8080"]),
    ("a path below '/'", "frame-ancestors http://*:*/notebook/", ["http://*:*/notebook/"]),
    ("'*' as part of a word", "frame-ancestors '*'", ["'*'"]),
    ("directive in capitals", "Frame-Ancestors 'self'", ["'self'"]),
    ("the first of two policies", "frame-ancestors 'self', frame-ancestors *", ["'self'"]),
    ("the second of two policies", "default-src *, frame-ancestors 'none'", ["'none'"]),
]


@pytest.mark.parametrize("header", [h for _, h in FRAMEABLE], ids=[n for n, _ in FRAMEABLE])
def test_frameable_from_any_dashboard(header: str) -> None:
    assert csp.refusal(header) is None


@pytest.mark.parametrize(("header", "sources"), [(h, s) for _, h, s in REFUSED],
                         ids=[n for n, _, _ in REFUSED])
def test_refused_names_the_sources_it_read(header: str, sources: list[str]) -> None:
    assert csp.refusal(header) == sources
