"""Build options: how to build (network trust, local wheels), never what is built.

Options do not enter the digest: a CA bundle or a wheelhouse changes where bytes come
from, not which bytes the recipe asks for. Both engines apply them through ``prepare``,
so an option means the same thing everywhere, and nothing of it stays in a layer.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from nbpipe.errors import NbpipeError
from nbpipe.recipe.ops import BindMount, Exec, SecretMount

if TYPE_CHECKING:
    from nbpipe.run.origin import Origin

CA_ID = "nbpipe-ca"
CA_TARGET = "/run/secrets/nbpipe-ca.crt"
WHEELHOUSE_ID = "nbpipe-wheelhouse"
WHEELHOUSE_TARGET = "/run/nbpipe/wheelhouse"
DEBSTORE_ID = "nbpipe-debs"
DEBSTORE_TARGET = "/run/nbpipe/debs"  # steps.Apt's script looks here for <sha256>.deb
# The machine's package store by default: every pinned .deb a build or `nbpipe lock` saw,
# named by its sha256, so a version that has left Debian's archive still installs.
DEFAULT_DEB_STORE = Path.home() / ".cache" / "nbpipe" / "debs"
HOST_CA = Path("/etc/ssl/certs/ca-certificates.crt")  # Debian's bundle of what it trusts

# Every client we run in builds that speaks TLS, pointed at the mounted bundle.
CA_ENV = (
    "SSL_CERT_FILE",
    "REQUESTS_CA_BUNDLE",
    "CURL_CA_BUNDLE",
    "PIP_CERT",
    "NODE_EXTRA_CA_CERTS",
    "npm_config_cafile",
    "GIT_SSL_CAINFO",
)


@dataclass(frozen=True)
class BuildOptions:
    ca_bundle: Path | None = None  # a complete PEM bundle (e.g. the host's), build-time only
    wheelhouse: Path | None = None  # a folder of wheels pip may use (find-links)
    # A folder of pinned .debs named <sha256>.deb that apt steps install from first
    # (checked by sha256), asking the archive only for what it lacks; builds add to it.
    deb_store: Path | None = None
    source_date_epoch: int = 0  # clamps file times and bytecode: same inputs, same bytes
    # The same two inputs as engine handles (a dagger.Secret / dagger.Directory), for the
    # Dagger module, whose callers pass them as secrets and directories, not host paths.
    ca_secret: Any = None
    wheelhouse_dir: Any = None
    deb_store_dir: Any = None
    # Metadata labels every engine adds (org.opencontainers.image.*): they describe the
    # build, not the recipe, so they stay out of the digest.
    labels: tuple[tuple[str, str], ...] = ()
    # A team image's own origin: its source, revision and parent replace what it inherits
    # from our family's labels (naming.stamp), for the images named there.
    origins: tuple["Origin", ...] = ()

    @property
    def has_ca(self) -> bool:
        return self.ca_bundle is not None or self.ca_secret is not None

    @property
    def has_wheelhouse(self) -> bool:
        return self.wheelhouse is not None or self.wheelhouse_dir is not None

    @property
    def has_deb_store(self) -> bool:
        return self.deb_store is not None or self.deb_store_dir is not None

    def __post_init__(self) -> None:
        if self.ca_bundle is not None:
            ca = Path(self.ca_bundle)
            if not ca.is_file():
                raise NbpipeError(f"--ca-bundle {ca}: no such file")
            if b"BEGIN CERTIFICATE" not in ca.read_bytes()[: 1 << 20]:
                raise NbpipeError(f"--ca-bundle {ca}: not a PEM certificate bundle")
            object.__setattr__(self, "ca_bundle", ca.resolve())
        if self.wheelhouse is not None:
            wh = Path(self.wheelhouse)
            if not wh.is_dir():
                raise NbpipeError(f"--wheelhouse {wh}: no such directory")
            object.__setattr__(self, "wheelhouse", wh.resolve())
        if self.deb_store is not None:
            store = Path(self.deb_store)
            if store.exists() and not store.is_dir():
                raise NbpipeError(f"--deb-store {store}: not a directory")
            object.__setattr__(self, "deb_store", store.resolve())

    @classmethod
    def from_flags(
        cls,
        ca_bundle: str | Path | None = "auto",
        wheelhouse: Path | None = None,
        *,
        oci_labels: bool = True,
        deb_store: str | Path | None = "auto",
    ) -> "BuildOptions":
        """The options a command line asks for: ``--ca-bundle auto`` is this machine's own
        trust (what a TLS-intercepting proxy needs), ``none`` the image's own."""
        if ca_bundle == "auto":
            ca = HOST_CA if HOST_CA.is_file() else None
        else:
            ca = None if ca_bundle in (None, "none") else Path(ca_bundle)
        store = (
            DEFAULT_DEB_STORE
            if deb_store == "auto"
            else None
            if deb_store in (None, "none")
            else Path(deb_store)
        )
        options = cls(ca_bundle=ca, wheelhouse=wheelhouse, deb_store=store)
        return options.with_oci_labels() if oci_labels else options

    def with_oci_labels(self, source: str = "https://github.com/nbpipe/nbpipe") -> "BuildOptions":
        """org.opencontainers.image.{created,revision,source}: created is the pinned
        epoch (so it never breaks reproducibility), revision this checkout's commit."""
        import datetime
        import subprocess

        created = datetime.datetime.fromtimestamp(self.source_date_epoch, datetime.timezone.utc)
        labels = [
            ("org.opencontainers.image.created", created.strftime("%Y-%m-%dT%H:%M:%SZ")),
            ("org.opencontainers.image.source", source),
        ]
        try:
            rev = subprocess.run(
                ["git", "rev-parse", "HEAD"],
                capture_output=True,
                text=True,
                cwd=Path(__file__).parent,
                timeout=10,
            )
            if rev.returncode == 0:
                labels.append(("org.opencontainers.image.revision", rev.stdout.strip()))
        except (OSError, subprocess.TimeoutExpired):  # no revision label: never a hang
            pass
        return replace(self, labels=(*self.labels, *labels))

    def ca(self, op: Exec) -> tuple[tuple[SecretMount, ...], tuple[tuple[str, str], ...]]:
        """What the CA bundle adds to ``op``: a secret mount at CA_TARGET and every TLS
        client's variable (CA_ENV) pointing at it, when a CA is set and ``op`` uses the
        network; nothing otherwise. The one rule for how a CA reaches a build step (through
        ``prepare``) or a resolve in a built image (locks/lock.py)."""
        if not (self.has_ca and op.network):
            return (), ()
        return (SecretMount(CA_TARGET, CA_ID),), tuple((k, CA_TARGET) for k in CA_ENV)

    def prepare(self, op: Exec) -> Exec:
        """The Exec an engine really runs: reproducibility env, plus CA and wheels if set."""
        env = [
            ("SOURCE_DATE_EPOCH", str(self.source_date_epoch)),
            ("PYTHONHASHSEED", "0"),
            ("FORCE_SOURCE_DATE", "1"),
        ]  # TeX: format files dated by the epoch too
        mounts = list(op.mounts)
        ca_mounts, ca_env = self.ca(op)
        mounts += ca_mounts
        env += ca_env
        if self.has_wheelhouse and op.pip:
            mounts.append(BindMount(WHEELHOUSE_TARGET, WHEELHOUSE_ID))
            env += [("PIP_FIND_LINKS", WHEELHOUSE_TARGET), ("UV_FIND_LINKS", WHEELHOUSE_TARGET)]
        if self.has_deb_store and op.apt:
            mounts.append(BindMount(DEBSTORE_TARGET, DEBSTORE_ID))
        return replace(op, mounts=tuple(mounts), env=(*env, *op.env))
