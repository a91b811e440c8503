"""Plain HTTP from outside the container (urllib: no dependency, no magic)."""

from __future__ import annotations

import http.client
import json
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from http.cookiejar import CookieJar


@dataclass
class Response:
    status: int
    headers: dict[str, str]
    body: bytes

    def json(self):
        return json.loads(self.body.decode())


@dataclass
class Client:
    """Keeps cookies (Jupyter's _xsrf) and follows redirects, like a browser would.
    ``headers`` go with every request (e.g. the Host and Origin a gateway forwards)."""

    base_url: str
    cookies: CookieJar = field(default_factory=CookieJar)
    headers: dict[str, str] = field(default_factory=dict)

    def request(
        self,
        method: str,
        path: str,
        *,
        body: bytes | None = None,
        headers: dict[str, str] | None = None,
        timeout: float = 10,
    ) -> Response:
        opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(self.cookies))
        req = urllib.request.Request(
            self.base_url + path,
            data=body,
            method=method,
            headers={**self.headers, **(headers or {})},
        )
        try:
            with opener.open(req, timeout=timeout) as r:
                return Response(r.status, {k.lower(): v for k, v in r.headers.items()}, r.read())
        except urllib.error.HTTPError as e:
            return Response(e.code, {k.lower(): v for k, v in e.headers.items()}, e.read())

    def get(self, path: str, **kw) -> Response:
        return self.request("GET", path, **kw)

    def xsrf(self) -> str | None:
        for c in self.cookies:
            if c.name == "_xsrf":
                return c.value
        return None


def wait_ready(
    client: Client, path: str, timeout: float, accept=(200,)
) -> tuple[float, Response | str]:
    """Poll until ``path`` answers with an accepted status; returns (seconds, last answer)."""
    start = time.monotonic()
    last: Response | str = "no answer yet"
    while time.monotonic() - start < timeout:
        try:
            last = client.get(path, timeout=2)
            if last.status in accept:
                return time.monotonic() - start, last
        except (OSError, http.client.HTTPException) as exc:
            last = f"{type(exc).__name__}: {exc}"
        time.sleep(0.05)
    return time.monotonic() - start, last
