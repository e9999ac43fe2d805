"""Signed evidence: an Ed25519 key under the harness home and a DSSE envelope per run.

Each run dir gets ``attestation.dsse.json``: a DSSE envelope whose payload is an in-toto
Statement v1. Its subjects are ``report.json`` and ``patch.diff`` (sha256); its predicate
carries the run id, verdict, failure class, fixture and provider digests and the head of
the whole event chain (``report_written`` included). Anyone holding the public key
(``cto-harness keys show``) can check that the report, the patch and the chain are the
ones this harness wrote: rewriting any of them, or re-hashing the last event, breaks it.

The private key is ``<harness home>/keys/evidence-ed25519.pem`` (mode 0600, its dir 0700);
the sandbox never shows the harness home to a provider.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import json
import os
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from cto_harness.evidence._atomic import atomic_write_bytes

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

# cryptography (10-20 ms of imports) is imported where a key is used: a run signs only at its
# end, and ``preload_signing`` imports it in the background while the run waits on its tests.

ATTESTATION_FILE = "attestation.dsse.json"
PAYLOAD_TYPE = "application/vnd.in-toto+json"
STATEMENT_TYPE = "https://in-toto.io/Statement/v1"
PREDICATE_TYPE = "https://cto-harness.invalid/attestation/run/v1"
KEYS_DIR = "keys"
PRIVATE_KEY_FILE = "evidence-ed25519.pem"
PUBLIC_KEY_FILE = "evidence-ed25519.pub.pem"


class AttestationError(ValueError):
    """The attestation is missing, malformed, or its signature does not hold."""


@dataclass(frozen=True)
class SigningKey:
    private: Ed25519PrivateKey
    keyid: str
    """SHA-256 of the raw 32-byte public key (hex)."""

    def public_pem(self) -> bytes:
        return public_pem(self.private.public_key())


def preload_signing() -> None:
    """Import the signing code in a background thread, to overlap it with a wait on a child."""
    threading.Thread(target=_import_signing, name="cto-harness-preload-signing", daemon=True).start()


def _import_signing() -> None:
    with contextlib.suppress(Exception):  # the signer's own import reports any failure
        import cryptography.hazmat.primitives.asymmetric.ed25519
        import cryptography.hazmat.primitives.serialization  # noqa: F401


def key_paths(home: Path) -> tuple[Path, Path]:
    return home / KEYS_DIR / PRIVATE_KEY_FILE, home / KEYS_DIR / PUBLIC_KEY_FILE


def keyid_of(public: Ed25519PublicKey) -> str:
    from cryptography.hazmat.primitives import serialization

    raw = public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return hashlib.sha256(raw).hexdigest()


def public_pem(public: Ed25519PublicKey) -> bytes:
    from cryptography.hazmat.primitives import serialization

    return public.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)


def load_or_create_key(home: Path) -> SigningKey:
    """The harness's signing key, created on first use (race-free between parallel runs).

    Raises:
        OSError: the key cannot be created or read.
        ValueError: the key file exists but is not an Ed25519 private key.
    """
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    private_path, public_path = key_paths(home)
    if not private_path.exists():
        _create_key(private_path)
    if private_path.is_symlink() or (private_path.stat().st_mode & 0o077):
        raise ValueError(f"{private_path}: signing key must be a regular file with mode 0600")
    key = serialization.load_pem_private_key(private_path.read_bytes(), password=None)
    if not isinstance(key, Ed25519PrivateKey):
        raise ValueError(f"{private_path}: not an Ed25519 private key")
    signing = SigningKey(private=key, keyid=keyid_of(key.public_key()))
    pem = signing.public_pem()
    if not public_path.is_file() or public_path.read_bytes() != pem:
        atomic_write_bytes(public_path, pem)
    return signing


def _create_key(private_path: Path) -> None:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    private_path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    os.chmod(private_path.parent, 0o700)
    pem = Ed25519PrivateKey.generate().private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    tmp = private_path.with_name(f".{private_path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(pem)
            handle.flush()
            os.fsync(handle.fileno())
        with contextlib.suppress(FileExistsError):  # first writer wins; a concurrent run keeps its key
            os.link(tmp, private_path)
    finally:
        tmp.unlink(missing_ok=True)


def load_public_key(data: bytes) -> Ed25519PublicKey:
    """A PEM public key, or a PEM private key (its public half).

    Raises:
        ValueError: not an Ed25519 key.
    """
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

    if b"PRIVATE KEY" in data:
        private = serialization.load_pem_private_key(data, password=None)
        if isinstance(private, Ed25519PrivateKey):
            return private.public_key()
        raise ValueError("not an Ed25519 key")
    public = serialization.load_pem_public_key(data)
    if not isinstance(public, Ed25519PublicKey):
        raise ValueError("not an Ed25519 public key")
    return public


def home_public_key(home: Path) -> Ed25519PublicKey | None:
    """The public key of the harness home's signing key, if it has one (never creates it)."""
    private_path, public_path = key_paths(home)
    if public_path.is_file():
        return load_public_key(public_path.read_bytes())
    if private_path.is_file():
        return load_public_key(private_path.read_bytes())
    return None


def pae(payload_type: str, payload: bytes) -> bytes:
    """DSSE v1 pre-authentication encoding: what the signature covers."""
    kind = payload_type.encode()
    return b"DSSEv1 %d %s %d %s" % (len(kind), kind, len(payload), payload)


def statement(subjects: dict[str, str], predicate: dict[str, Any]) -> dict[str, Any]:
    return {
        "_type": STATEMENT_TYPE,
        "subject": [{"name": name, "digest": {"sha256": digest}} for name, digest in sorted(subjects.items())],
        "predicateType": PREDICATE_TYPE,
        "predicate": predicate,
    }


def write_attestation(run_dir: Path, key: SigningKey, subjects: dict[str, str], predicate: dict[str, Any]) -> None:
    payload = json.dumps(statement(subjects, predicate), sort_keys=True, separators=(",", ":")).encode()
    signature = key.private.sign(pae(PAYLOAD_TYPE, payload))
    envelope = {
        "payloadType": PAYLOAD_TYPE,
        "payload": base64.b64encode(payload).decode(),
        "signatures": [{"keyid": key.keyid, "sig": base64.b64encode(signature).decode()}],
    }
    atomic_write_bytes(run_dir / ATTESTATION_FILE, (json.dumps(envelope, indent=2) + "\n").encode())


def read_attestation(path: Path, public: Ed25519PublicKey) -> dict[str, Any]:
    """Check the envelope's signature with ``public``; return the Statement.

    Raises:
        AttestationError: missing, malformed, or not signed by that key.
    """
    from cryptography.exceptions import InvalidSignature

    try:
        envelope = json.loads(path.read_bytes())
        payload = base64.b64decode(envelope["payload"], validate=True)
        payload_type = envelope["payloadType"]
        signatures = envelope["signatures"]
    except FileNotFoundError as exc:
        raise AttestationError(f"{ATTESTATION_FILE}: missing (the run is not signed)") from exc
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise AttestationError(f"{ATTESTATION_FILE}: malformed DSSE envelope") from exc
    if payload_type != PAYLOAD_TYPE or not isinstance(signatures, list):
        raise AttestationError(f"{ATTESTATION_FILE}: payloadType is not {PAYLOAD_TYPE}")
    for entry in signatures:
        try:
            public.verify(base64.b64decode(entry["sig"], validate=True), pae(payload_type, payload))
        except (InvalidSignature, ValueError, KeyError, TypeError):
            continue
        break
    else:
        raise AttestationError(f"{ATTESTATION_FILE}: signature does not verify with key {keyid_of(public)[:16]}…")
    try:
        parsed = json.loads(payload)
    except ValueError as exc:
        raise AttestationError(f"{ATTESTATION_FILE}: payload is not JSON") from exc
    if not isinstance(parsed, dict) or parsed.get("_type") != STATEMENT_TYPE \
            or parsed.get("predicateType") != PREDICATE_TYPE or not isinstance(parsed.get("predicate"), dict):
        raise AttestationError(f"{ATTESTATION_FILE}: payload is not a cto-harness in-toto Statement v1")
    return parsed


def subject_digests(parsed: dict[str, Any]) -> dict[str, str]:
    out: dict[str, str] = {}
    for subject in parsed.get("subject") or []:
        if isinstance(subject, dict) and isinstance(subject.get("digest"), dict):
            out[str(subject.get("name"))] = str(subject["digest"].get("sha256"))
    return out
