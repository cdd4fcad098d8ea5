"""Ed25519 keys and the signed envelope of plans and commands.

Envelope (DESIGN.md, contract): ``{"body": "<JSON text>", "key_id": "...",
"sig": "<base64 Ed25519 over the body's bytes>"}``. The signature covers the
body's UTF-8 bytes exactly as sent, so nobody has to agree on a canonical JSON
form: the body is parsed only after its bytes have been verified.
"""

from __future__ import annotations

import base64
import binascii
import json
import os
import re
import sys
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

__all__ = [
    "MAX_ENVELOPE_BYTES",
    "EnvelopeError",
    "Opened",
    "TrustedKeys",
    "cmd_keys_new",
    "load_private_key",
    "load_public_key",
    "open_envelope",
    "seal",
    "trusted_keys_from_config",
]

TrustedKeys = Mapping[str, Ed25519PublicKey]
# A day-ahead plan at 1-minute steps is ~300 kB; anything far larger is not a plan.
MAX_ENVELOPE_BYTES = 4_000_000
_KEY_ID = re.compile(r"^[A-Za-z0-9._-]{1,64}$")


class EnvelopeError(ValueError):
    """Why an envelope was refused, as one line."""


@dataclass(frozen=True, slots=True)
class Opened:
    body_text: str
    key_id: str


def load_public_key(spec: str, base_dir: Path | None = None) -> Ed25519PublicKey:
    """A trusted key from config: a PEM file path or the base64 of the 32 raw bytes."""
    text = spec.strip()
    if text.startswith("-----BEGIN"):
        return _public_from_pem(text.encode(), "inline PEM")
    try:
        raw = base64.b64decode(text, validate=True)
    except binascii.Error:
        raw = b""
    if len(raw) == 32:
        return Ed25519PublicKey.from_public_bytes(raw)
    path = Path(text)
    if base_dir is not None and not path.is_absolute():
        path = base_dir / path
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ValueError(f"{path}: public_key: not base64 of 32 bytes and not a readable PEM "
                         f"file ({exc.strerror})") from None
    return _public_from_pem(data, str(path))


def _public_from_pem(data: bytes, where: str) -> Ed25519PublicKey:
    try:
        key = serialization.load_pem_public_key(data)
    except ValueError as exc:
        raise ValueError(f"{where}: public_key: not a PEM public key ({exc})") from None
    if not isinstance(key, Ed25519PublicKey):
        raise ValueError(f"{where}: public_key: {type(key).__name__} is not Ed25519")
    return key


def load_private_key(path: Path) -> Ed25519PrivateKey:
    try:
        key = serialization.load_pem_private_key(path.read_bytes(), password=None)
    except OSError as exc:
        raise ValueError(f"{path}: cannot read private key ({exc.strerror})") from None
    except ValueError as exc:
        raise ValueError(f"{path}: not an unencrypted PEM private key ({exc})") from None
    if not isinstance(key, Ed25519PrivateKey):
        raise ValueError(f"{path}: {type(key).__name__} is not Ed25519")
    return key


def _field(entry: object, name: str) -> str:
    value = entry.get(name, "") if isinstance(entry, Mapping) else getattr(entry, name, "")
    return str(value)


def trusted_keys_from_config(entries: Iterable[object],
                             base_dir: Path | None = None) -> dict[str, Ed25519PublicKey]:
    """``security.trusted_keys`` -> {key_id: key}; errors name the entry.

    Entries are mappings or objects (edge.config.TrustedKey) with ``key_id``
    and ``public_key``.
    """
    keys: dict[str, Ed25519PublicKey] = {}
    for i, entry in enumerate(entries):
        key_id = _field(entry, "key_id")
        if not _KEY_ID.match(key_id):
            raise ValueError(f"security.trusted_keys[{i}].key_id: {key_id!r} is not [A-Za-z0-9._-]{{1,64}}")
        if key_id in keys:
            raise ValueError(f"security.trusted_keys[{i}].key_id: {key_id!r} is listed twice")
        try:
            keys[key_id] = load_public_key(_field(entry, "public_key"), base_dir)
        except ValueError as exc:
            raise ValueError(f"security.trusted_keys[{i}] ({key_id}): {exc}") from None
    return keys


def seal(body_text: str, key_id: str, key: Ed25519PrivateKey) -> dict[str, str]:
    """The envelope for ``body_text``, signed over its UTF-8 bytes."""
    sig = key.sign(body_text.encode("utf-8"))
    return {"body": body_text, "key_id": key_id, "sig": base64.b64encode(sig).decode("ascii")}


def open_envelope(raw: bytes | str, keys: TrustedKeys) -> Opened:
    """Check the envelope's shape, key id and signature; the body is not parsed here."""
    if len(raw) > MAX_ENVELOPE_BYTES:
        raise EnvelopeError(f"envelope is {len(raw)} bytes, more than {MAX_ENVELOPE_BYTES}")
    try:
        env = json.loads(raw)
    except (ValueError, UnicodeDecodeError) as exc:
        raise EnvelopeError(f"envelope is not JSON ({exc})") from None
    if not isinstance(env, dict):
        raise EnvelopeError(f"envelope is a JSON {type(env).__name__}, not an object")
    body, key_id, sig = env.get("body"), env.get("key_id"), env.get("sig")
    if sig is None or key_id is None:
        raise EnvelopeError("unsigned: envelope has no 'sig' or no 'key_id'")
    if not isinstance(body, str):
        raise EnvelopeError("envelope.body: must be a JSON text in a string")
    if not isinstance(key_id, str) or not isinstance(sig, str):
        raise EnvelopeError("envelope.key_id and envelope.sig must be strings")
    extra = set(env) - {"body", "key_id", "sig"}
    if extra:
        raise EnvelopeError(f"envelope: unknown keys {sorted(extra)}")
    key = keys.get(key_id)
    if key is None:
        raise EnvelopeError(f"unknown key_id {key_id!r} (trusted: {sorted(keys)})")
    try:
        sig_bytes = base64.b64decode(sig, validate=True)
    except binascii.Error:
        raise EnvelopeError("envelope.sig: not base64") from None
    try:
        key.verify(sig_bytes, body.encode("utf-8"))
    except InvalidSignature:
        raise EnvelopeError(f"bad signature for key_id {key_id!r}") from None
    return Opened(body_text=body, key_id=key_id)


def cmd_keys_new(out_dir: Path, key_id: str, *, out: TextIO = sys.stdout,
                 err: TextIO = sys.stderr) -> int:
    """`parkedge keys new`: write ``{key_id}.key.pem`` (0600) and ``{key_id}.pub.pem``.

    Prints the trusted_keys entry to paste into a site file (base64 raw key).
    """
    if not _KEY_ID.match(key_id):
        print(f"key_id: {key_id!r} is not [A-Za-z0-9._-]{{1,64}}", file=err)
        return 2
    private_path, public_path = out_dir / f"{key_id}.key.pem", out_dir / f"{key_id}.pub.pem"
    if private_path.exists():
        print(f"{private_path}: exists; refusing to overwrite a key", file=err)
        return 1
    key = Ed25519PrivateKey.generate()
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
        fd = os.open(private_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as f:
            f.write(key.private_bytes(serialization.Encoding.PEM,
                                      serialization.PrivateFormat.PKCS8,
                                      serialization.NoEncryption()))
        public_path.write_bytes(key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo))
    except OSError as exc:
        print(f"{exc.filename}: {exc.strerror}", file=err)
        return 1
    raw = key.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    print(json.dumps({"key_id": key_id, "private_key": str(private_path),
                      "public_key": str(public_path),
                      "public_key_base64": base64.b64encode(raw).decode("ascii")}), file=out)
    return 0
