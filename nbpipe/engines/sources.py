"""Can we reach the hosts an image downloads from? Asked once per host, up front, so a
build says "rstudio needs download2.rstudio.org" instead of failing half-way."""

from __future__ import annotations

import socket
import ssl
from functools import lru_cache

# Hosts reached over plain HTTP (apt verifies by signature, not TLS).
HTTP_HOSTS = {"deb.debian.org"}


@lru_cache(maxsize=None)
def reachable(host: str, assume: frozenset[str] = frozenset(), timeout: float = 5.0) -> bool:
    """A TCP connect plus TLS handshake (any certificate: we only ask "is it there").
    ``assume``: hosts taken as reachable without asking (``*``: all; settings.py)."""
    if host in assume or "*" in assume:
        return True
    port = 80 if host in HTTP_HOSTS else 443
    try:
        with socket.create_connection((host, port), timeout=timeout) as sock:
            if port == 443:
                ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)  # no CA store to load:
                ctx.check_hostname = False  # we only ask "is it there"
                ctx.verify_mode = ssl.CERT_NONE
                with ctx.wrap_socket(sock, server_hostname=host):
                    pass
        return True
    except OSError:
        return False
