"""Sigstore signing keys and signatures, in the formats cosign, containers/image
(podman, skopeo, CRI-O) and sigstore's policy-controller read.

Why our own code: Debian's podman 4.3.1 and skopeo 1.9.3 are built with sigstore cut out
(both `--sign-by-sigstore-private-key` and a policy.json `sigstoreSigned` requirement
fail with "Debian-local change: sigstore disabled"). The formats are small and public:
- private key: cosign's encrypted PEM (scrypt N=32768 r=8 p=1 + NaCl secretbox over the
  PKCS#8 ECDSA P-256 key), public key: a PKIX "PUBLIC KEY" PEM;
- image signature: the "simple signing" JSON payload (docker-reference + manifest digest),
  ECDSA-SHA256 over its exact bytes, stored as tag ``sha256-<hex>.sig``;
- attestation: a DSSE envelope over an in-toto statement, stored as ``sha256-<hex>.att``.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec

from nbpipe.errors import NbpipeError
from nbpipe.inputs import safe_io

PASSPHRASE_ENV = "NBPIPE_SIGN_PASSPHRASE"  # cosign's is COSIGN_PASSWORD: both are read
PRIVATE_PEM = "ENCRYPTED SIGSTORE PRIVATE KEY"  # cosign >= 2 writes this; older: COSIGN
PRIVATE_PEMS = (PRIVATE_PEM, "ENCRYPTED COSIGN PRIVATE KEY")
SIMPLE_SIGNING_TYPE = "cosign container image signature"
SIG_MEDIA_TYPE = "application/vnd.dev.cosign.simplesigning.v1+json"
SIG_ANNOTATION = "dev.cosignproject.cosign/signature"
DSSE_MEDIA_TYPE = "application/vnd.dsse.envelope.v1+json"
INTOTO_PAYLOAD_TYPE = "application/vnd.in-toto+json"
SCRYPT = {"N": 32768, "r": 8, "p": 1}  # cosign's (go-securesystemslib encrypted) defaults


@dataclass(frozen=True)
class SigningKey:
    """A decrypted private key; ``source`` says where it came from (never the key)."""

    key: ec.EllipticCurvePrivateKey
    source: str

    def public_pem(self) -> bytes:
        return self.key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )

    def sign(self, data: bytes) -> bytes:
        return self.key.sign(data, ec.ECDSA(hashes.SHA256()))


@dataclass(frozen=True)
class PublicKey:
    key: ec.EllipticCurvePublicKey
    source: str

    def verifies(self, data: bytes, signature: bytes) -> bool:
        try:
            self.key.verify(signature, data, ec.ECDSA(hashes.SHA256()))
            return True
        except InvalidSignature:
            return False


def _pem_body(text: str, kinds: tuple[str, ...], where: str) -> tuple[str, bytes]:
    lines = text.strip().splitlines()
    if len(lines) < 3 or not lines[0].startswith("-----BEGIN "):
        raise NbpipeError(f"{where}: not a PEM key (want -----BEGIN {kinds[0]}-----)")
    kind = lines[0].removeprefix("-----BEGIN ").removesuffix("-----")
    if kind not in kinds or lines[-1] != f"-----END {kind}-----":
        raise NbpipeError(f"{where}: a {kind} PEM; want {' or '.join(kinds)}")
    try:
        return kind, base64.b64decode("".join(lines[1:-1]), validate=True)
    except binascii.Error:
        raise NbpipeError(f"{where}: the PEM body is not base64") from None


def passphrase() -> bytes:
    """The key's passphrase, from $NBPIPE_SIGN_PASSPHRASE or cosign's $COSIGN_PASSWORD
    (empty when neither is set: cosign allows an empty one)."""
    for name in (PASSPHRASE_ENV, "COSIGN_PASSWORD"):
        if name in os.environ:
            return os.environ[name].encode()
    return b""


def read_key_text(spec: str) -> tuple[str, str]:
    """``spec`` is a file path or ``env:NAME`` (a CI secret in an environment variable);
    the key itself is never given on the command line. Returns (text, where)."""
    if spec.startswith("env:"):
        name = spec.removeprefix("env:")
        if not name or name not in os.environ:
            raise NbpipeError(
                f"--sign-key {spec}: the environment variable {name or '?'} is not set"
            )
        return os.environ[name], f"${name}"
    if spec.lstrip().startswith("-----BEGIN"):
        raise NbpipeError(
            "--sign-key takes a file path or env:NAME, never the key itself "
            "(a command line is visible to every user of the machine)"
        )
    return safe_io.read_text(Path(spec), "signing key", limit=64 * 1024), spec


def load_signing_key(spec: str, password: bytes | None = None) -> SigningKey:
    """Decrypt a cosign-format private key (file path or env:NAME)."""
    text, where = read_key_text(spec)
    _, body = _pem_body(text, PRIVATE_PEMS, where)
    try:
        doc = json.loads(body)
        kdf, cipher = doc["kdf"], doc["cipher"]
        if kdf["name"] != "scrypt" or cipher["name"] != "nacl/secretbox":
            raise NbpipeError(
                f"{where}: kdf {kdf['name']} / cipher {cipher['name']}: "
                "want scrypt / nacl/secretbox (cosign's format)"
            )
        params = kdf["params"]
        secret = hashlib.scrypt(
            password if password is not None else passphrase(),
            salt=base64.b64decode(kdf["salt"]),
            n=int(params["N"]),
            r=int(params["r"]),
            p=int(params["p"]),
            maxmem=256 * 1024 * 1024,
            dklen=32,
        )
        nonce, box = base64.b64decode(cipher["nonce"]), base64.b64decode(doc["ciphertext"])
    except (ValueError, KeyError, TypeError, binascii.Error) as exc:
        raise NbpipeError(
            f"{where}: not a cosign private key ({type(exc).__name__}: {exc})"
        ) from None
    import nacl.exceptions
    import nacl.secret

    try:
        der = nacl.secret.SecretBox(secret).decrypt(box, nonce)
    except nacl.exceptions.CryptoError:
        raise NbpipeError(f"{where}: wrong passphrase (set ${PASSPHRASE_ENV})") from None
    key = serialization.load_der_private_key(der, None)
    if not isinstance(key, ec.EllipticCurvePrivateKey):
        raise NbpipeError(f"{where}: not an ECDSA key")
    return SigningKey(key, where)


def load_public_key(path: Path) -> PublicKey:
    text = safe_io.read_text(path, "public key", limit=64 * 1024)
    _, body = _pem_body(text, ("PUBLIC KEY",), str(path))
    try:
        key = serialization.load_der_public_key(body)
    except ValueError as exc:
        raise NbpipeError(f"{path}: not a public key ({exc})") from None
    if not isinstance(key, ec.EllipticCurvePublicKey):
        raise NbpipeError(f"{path}: not an ECDSA public key")
    return PublicKey(key, str(path))


def generate(prefix: Path, password: bytes) -> tuple[Path, Path]:
    """A new key pair, PREFIX.key (encrypted, mode 0600) and PREFIX.pub, as cosign's
    ``generate-key-pair`` writes them; refuses to overwrite."""
    priv, pub = prefix.with_name(prefix.name + ".key"), prefix.with_name(prefix.name + ".pub")
    for p in (priv, pub):
        if p.exists():
            raise NbpipeError(f"{p} exists: not overwriting a key")
    import nacl.secret

    key = ec.generate_private_key(ec.SECP256R1())
    der = key.private_bytes(
        serialization.Encoding.DER, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    salt, nonce = os.urandom(32), os.urandom(24)
    secret = hashlib.scrypt(
        password,
        salt=salt,
        n=SCRYPT["N"],
        r=SCRYPT["r"],
        p=SCRYPT["p"],
        maxmem=256 * 1024 * 1024,
        dklen=32,
    )
    box = nacl.secret.SecretBox(secret).encrypt(der, nonce).ciphertext
    doc = {
        "kdf": {"name": "scrypt", "params": SCRYPT, "salt": _b64(salt)},
        "cipher": {"name": "nacl/secretbox", "nonce": _b64(nonce)},
        "ciphertext": _b64(box),
    }
    body = base64.encodebytes(json.dumps(doc).encode()).decode()
    safe_io.atomic_write(
        priv, f"-----BEGIN {PRIVATE_PEM}-----\n{body}-----END {PRIVATE_PEM}-----\n", mode=0o600
    )
    safe_io.atomic_write(pub, SigningKey(key, "").public_pem())
    return priv, pub


def simple_signing_payload(reference: str, digest: str) -> bytes:
    """What an image signature signs: the image's manifest digest and the name it was
    signed for (containers/image's and cosign's "critical" section)."""
    doc = {
        "critical": {
            "identity": {"docker-reference": reference},
            "image": {"docker-manifest-digest": digest},
            "type": SIMPLE_SIGNING_TYPE,
        },
        "optional": {"creator": "nbpipe"},
    }
    return json.dumps(doc, separators=(",", ":"), sort_keys=True).encode()


def pae(payload_type: str, payload: bytes) -> bytes:
    """DSSE's pre-authentication encoding: what a DSSE signature signs."""
    t = payload_type.encode()
    return b"DSSEv1 %d %s %d %s" % (len(t), t, len(payload), payload)


def dsse_envelope(key: SigningKey, statement: dict) -> bytes:
    payload = json.dumps(statement, separators=(",", ":"), sort_keys=True).encode()
    sig = key.sign(pae(INTOTO_PAYLOAD_TYPE, payload))
    return json.dumps(
        {
            "payloadType": INTOTO_PAYLOAD_TYPE,
            "payload": _b64(payload),
            "signatures": [{"keyid": "", "sig": _b64(sig)}],
        }
    ).encode()


def open_envelope(raw: bytes, key: PublicKey) -> dict | None:
    """The in-toto statement inside a DSSE envelope when one of its signatures is
    ``key``'s, else None."""
    try:
        env = json.loads(raw)
        payload = base64.b64decode(env["payload"])
        sigs = [base64.b64decode(s["sig"]) for s in env["signatures"]]
        message = pae(env["payloadType"], payload)
    except (ValueError, KeyError, TypeError, binascii.Error):
        return None
    if not any(key.verifies(message, s) for s in sigs):
        return None
    try:
        return json.loads(payload)
    except ValueError:
        return None


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()
