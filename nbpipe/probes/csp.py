"""Content-Security-Policy ``frame-ancestors``, read as browsers read it (CSP Level 3), for
one question: may Kubeflow's dashboard frame this page, from wherever it is served?

The image cannot know the dashboard's origin: any host (``https://kubeflow.example.org``
through the gateway), any port, and http as well as https (``kubectl port-forward`` to
``http://localhost:8080`` is Kubeflow's documented first access). So the sources must
cover every host and port for both schemes; the contract also refuses ``'self'`` alone
(a notebook may be served from another host than the dashboard). What covers them:
``*``; the scheme-source ``http:`` (CSP3 lets an http source match https too) or
``https:`` with ``http:``; a host-source with host ``*`` and port ``*``. A wildcard
subdomain (``https://*.example.org``), a fixed port or host, ``'none'`` and keywords
cover nobody in particular.
"""

from __future__ import annotations

import re

BOTH = frozenset({"http", "https"})
_SCHEME = re.compile(r"([a-z][a-z0-9+.-]*):", re.ASCII)
# host-source: [scheme "://"] host [":" port] [path] (the path, if any, must admit "/")
_HOST_SOURCE = re.compile(
    r"(?:([a-z][a-z0-9+.-]*)://)?(\*|[^:/]+)(?::(\*|[0-9]+))?(/.*)?", re.ASCII
)


def _schemes(source: str) -> frozenset[str]:
    """The schemes for which ``source`` admits every host and port (empty: none)."""
    s = source.lower()  # schemes, hosts and keywords are ASCII case-insensitive
    if s == "*":
        return BOTH
    if m := _SCHEME.fullmatch(s):
        return BOTH if m[1] == "http" else frozenset({m[1]}) & BOTH
    m = _HOST_SOURCE.fullmatch(s)
    if m is None or m[2] != "*" or m[3] != "*" or (m[4] or "/") != "/":
        return frozenset()
    if m[1] is None or m[1] == "http":  # no scheme: the page's own, which the dashboard shares
        return BOTH
    return frozenset({m[1]}) & BOTH


def frame_ancestors(policy: str) -> list[str] | None:
    """The source list of a policy's first ``frame-ancestors`` (later ones are ignored, as
    browsers do), or None when it has none."""
    for directive in policy.split(";"):
        tokens = directive.split()
        if tokens and tokens[0].lower() == "frame-ancestors":
            return tokens[1:]
    return None


def refusal(header: str) -> list[str] | None:
    """The ``frame-ancestors`` sources that keep some dashboard origin from framing the page,
    or None when every origin may. A header may carry several policies (comma-separated),
    and each one is enforced."""
    for policy in header.split(","):
        sources = frame_ancestors(policy)
        if sources is None:
            continue
        covered = frozenset().union(*(_schemes(s) for s in sources)) if sources else frozenset()
        if not BOTH <= covered:
            return sources
    return None
