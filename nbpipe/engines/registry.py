"""A registry we publish to: where, how to log in (never on a command line or in a
log), and whether a tag is already there (so a registry works like a binary cache)."""

from __future__ import annotations

import base64
import hashlib
import json
import os
import re
import shutil
import subprocess
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

from nbpipe.errors import NbpipeError
from nbpipe.inputs import safe_io

USER_ENV, PASSWORD_ENV = "NBPIPE_REGISTRY_USER", "NBPIPE_REGISTRY_PASSWORD"
LOOKUP_TIMEOUT = 60.0  # seconds for one manifest look-up (skopeo inspect)
# host[:port][/namespace...], as image references spell them (namespaces lowercase).
ADDRESS = re.compile(
    r"(\[::1\]|[A-Za-z0-9]([A-Za-z0-9.-]*[A-Za-z0-9])?)(:[0-9]{1,5})?"
    r"(/[a-z0-9]+([._-][a-z0-9]+)*)*",
    re.ASCII,
)
# skopeo's (logrus) error line: time="..." level=fatal msg="...": only msg is news.
FATAL = re.compile(r'level=(?:fatal|error) msg="((?:[^"\\]|\\.)*)"')


@dataclass(frozen=True)
class Registry:
    """``address`` is host[:port][/namespace]; images go to address/NAME:TAG."""

    address: str
    tls_verify: bool = True

    @classmethod
    def parse(cls, address: str, flag: str = "--registry") -> "Registry":
        """``flag``: the option (or variable) that gave the address, for the message."""
        address = address.rstrip("/")
        if "://" in address:
            raise NbpipeError(f"{flag} {address}: give host[:port][/namespace], no scheme")
        if not ADDRESS.fullmatch(address):
            raise NbpipeError(
                f"{flag} {address!r}: give host[:port][/namespace] "
                "(e.g. ghcr.io/acme or 127.0.0.1:5000): lowercase letters, "
                "digits, '.', '_', '-', no spaces"
            )
        host = address.split("/")[0]
        local = host.split(":")[0] in ("127.0.0.1", "localhost", "[::1]")
        return cls(address, tls_verify=not local)  # loopback registries speak plain HTTP

    @property
    def host(self) -> str:
        return self.address.split("/")[0]

    def repo(self, name: str) -> str:
        return f"{self.address}/{name}"

    def credentials(self) -> tuple[str | None, str | None]:
        """$NBPIPE_REGISTRY_USER and $NBPIPE_REGISTRY_PASSWORD: a secret is read where it is
        used, never kept in the run's settings."""
        return os.environ.get(USER_ENV), os.environ.get(PASSWORD_ENV)

    @contextmanager
    def authfile(self) -> Iterator[Path | None]:
        """Credentials for this registry as a private temporary auth file: from
        $NBPIPE_REGISTRY_USER/$NBPIPE_REGISTRY_PASSWORD, else $REGISTRY_AUTH_FILE or the
        docker config, else none (anonymous)."""
        user, password = self.credentials()
        if user and password:
            token = base64.b64encode(f"{user}:{password}".encode()).decode()
            with safe_io.private_dir("nbpipe-auth-") as tmp:  # gone on any exit, signals too
                path = tmp / "auth.json"
                path.touch(mode=0o600)
                path.write_text(json.dumps({"auths": {self.host: {"auth": token}}}))
                yield path
            return
        for candidate in (
            os.environ.get("REGISTRY_AUTH_FILE"),
            os.environ.get("DOCKER_CONFIG") and f"{os.environ['DOCKER_CONFIG']}/config.json",
            str(Path.home() / ".docker/config.json"),
        ):
            if candidate and Path(candidate).is_file():
                yield Path(candidate)
                return
        yield None

    def flags(self, auth: Path | None) -> list[str]:
        out = [f"--tls-verify={'true' if self.tls_verify else 'false'}"]
        return out + (["--authfile", str(auth)] if auth else [])

    def manifest(self, ref: str, auth: Path | None) -> bytes | None:
        """The raw manifest bytes at ``ref``, or None if there is none."""
        skopeo = shutil.which("skopeo")
        if skopeo is None:
            raise NbpipeError("skopeo is not installed: apt-get install skopeo")
        args = [skopeo, "inspect", "--raw", *self.flags(auth), f"docker://{ref}"]
        try:
            r = subprocess.run(
                args, capture_output=True, timeout=LOOKUP_TIMEOUT, stdin=subprocess.DEVNULL
            )
        except subprocess.TimeoutExpired:
            raise NbpipeError(
                f"registry {self.host}: no answer within {LOOKUP_TIMEOUT:g} s "
                f"for {ref}; "
                "check the address and the network"
            ) from None
        if r.returncode == 0:
            return r.stdout
        err = r.stderr.decode(errors="replace").lower()
        if "manifest unknown" in err or "not found" in err or "name unknown" in err:
            return None
        why = _clean(r.stderr.decode(errors="replace"))
        if why.startswith("not reachable: "):
            raise NbpipeError(f"registry {self.host} is {why}")
        raise NbpipeError(f"registry {self.host}: cannot inspect {ref}: {why}")

    def digest(self, ref: str, auth: Path | None) -> str | None:
        """The manifest digest at ``ref`` (sha256 of its exact bytes), or None."""
        raw = self.manifest(ref, auth)
        return None if raw is None else "sha256:" + hashlib.sha256(raw).hexdigest()


# What a refused connection, an unknown host, ... means, in one sentence each.
UNREACHABLE = (
    (
        "connection refused",
        "nothing answers at that address (is the registry running, and the port right?)",
    ),
    ("no such host", "that host name does not resolve"),
    ("i/o timeout", "the connection timed out"),
    ("server gave http response to https client", "it speaks plain HTTP, not HTTPS"),
    ("x509:", "its TLS certificate is not trusted here"),
)


def _clean(stderr: str) -> str:
    """One sentence from a tool's error: skopeo's `level=fatal msg="..."` reduced to its
    message (and, for an unreachable registry, to what that means), never a credential."""
    lines = [line for line in stderr.strip().splitlines() if line.strip()]
    last = lines[-1] if lines else "failed"
    fatal = FATAL.search(last)
    if fatal:
        last = fatal.group(1).replace('\\"', '"')
    for secret in (os.environ.get(PASSWORD_ENV),):
        if secret:
            last = last.replace(secret, "***")
    low = last.lower()
    for needle, meaning in UNREACHABLE:
        if needle in low:
            return f"not reachable: {meaning}"
    if "unauthorized" in low or "authentication required" in low:
        return (
            f"{last} (check {USER_ENV}/{PASSWORD_ENV}, $REGISTRY_AUTH_FILE or "
            "~/.docker/config.json)"
        )
    return last
