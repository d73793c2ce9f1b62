"""Encryption at rest: AES-256-GCM with a key id stored beside each ciphertext, for rotation.

A stored value looks like ``v1:<key id>:<base64url(nonce | ciphertext+tag)>``. The column it
lives in is bound as associated data, so a ciphertext copied into another column does not open.
Keys come from config or env as ``KEY_ID:BASE64_OF_32_BYTES``; for the embedded SQLite default a
key file is generated once (mode 0600). A missing key is an error, never a plaintext fallback.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import os
import re
import secrets
from dataclasses import dataclass, field
from pathlib import Path

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from engine.config import Settings, data_dir
from engine.errors import DataKeyError

__all__ = [
    "NO_DIGEST",
    "DataCipher",
    "default_key_file",
    "generate_key_spec",
    "key_file_in_use",
    "load_data_cipher",
    "parse_key_spec",
    "secret_digest",
    "write_key_file",
]

_KEY_ID = re.compile(r"^[A-Za-z0-9_.-]{1,32}$")
_PREFIX = "v1"


#: Stands in for a stored digest when none was found, so a miss costs the same comparison as a hit.
NO_DIGEST = "sha256:" + "0" * 64


def secret_digest(secret: str) -> str:
    """How a bearer secret is stored (API keys, checkout links, display tokens, pairing codes): its
    SHA-256, never the secret; compare a presented one's digest with ``hmac.compare_digest``."""
    return "sha256:" + hashlib.sha256(secret.encode()).hexdigest()


def parse_key_spec(spec: str, *, origin: str = "data key") -> tuple[str, bytes]:
    """``KEY_ID:BASE64`` → (key id, 32 key bytes)."""
    kid, sep, b64 = spec.strip().partition(":")
    if not sep or not _KEY_ID.match(kid):
        raise DataKeyError(f"{origin}: expected KEY_ID:BASE64_OF_32_BYTES")
    try:
        key = base64.b64decode(b64.strip(), validate=True)
    except (binascii.Error, ValueError):
        raise DataKeyError(f"{origin}: key {kid!r} is not valid base64") from None
    if len(key) != 32:
        raise DataKeyError(f"{origin}: key {kid!r} must be 32 bytes (AES-256), got {len(key)}")
    return kid, key


def generate_key_spec(kid: str | None = None) -> str:
    """A fresh ``KEY_ID:BASE64`` key (for the key file or `keys rotate-data-key`)."""
    kid = kid or f"k{secrets.token_hex(4)}"
    return f"{kid}:{base64.b64encode(AESGCM.generate_key(bit_length=256)).decode()}"


@dataclass(frozen=True)
class DataCipher:
    """Encrypts with the active key; decrypts with whichever known key a value names."""

    active_id: str
    keys: dict[str, bytes] = field(repr=False)

    def __post_init__(self) -> None:
        if self.active_id not in self.keys:
            raise DataKeyError(f"active data key {self.active_id!r} is not among the loaded keys")

    def __repr__(self) -> str:
        return f"DataCipher(active_id={self.active_id!r}, key_ids={sorted(self.keys)!r})"

    def encrypt(self, plaintext: str, *, context: str) -> str:
        nonce = os.urandom(12)
        sealed = AESGCM(self.keys[self.active_id]).encrypt(nonce, plaintext.encode("utf-8"), context.encode())
        token = base64.urlsafe_b64encode(nonce + sealed).decode().rstrip("=")
        return f"{_PREFIX}:{self.active_id}:{token}"

    def decrypt(self, stored: str, *, context: str) -> str:
        kid = self.key_id_of(stored)
        key = self.keys.get(kid)
        if key is None:
            raise DataKeyError(
                f"data encrypted with key {kid!r}, which is not configured (add it to security.previous_data_keys)"
            )
        token = stored.split(":", 2)[2]
        raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
        try:
            return AESGCM(key).decrypt(raw[:12], raw[12:], context.encode()).decode("utf-8")
        except InvalidTag:
            raise DataKeyError(f"stored secret ({context}) does not open with key {kid!r}") from None

    @staticmethod
    def key_id_of(stored: str) -> str:
        parts = stored.split(":", 2)
        if len(parts) != 3 or parts[0] != _PREFIX:
            raise DataKeyError("stored value is not an encrypted secret")
        return parts[1]

    def needs_rotation(self, stored: str) -> bool:
        return self.key_id_of(stored) != self.active_id


def default_key_file() -> Path:
    return data_dir() / "data.key"


def _read_key_file(path: Path) -> list[str]:
    """A key file holds one ``KEY_ID:BASE64`` per line: the active key first, older ones after."""
    try:
        lines = [line.strip() for line in path.read_text(encoding="utf-8").splitlines()]
    except OSError as exc:
        raise DataKeyError(f"{path}: cannot read the data key file: {exc.strerror}") from None
    specs = [line for line in lines if line and not line.startswith("#")]
    if not specs:
        raise DataKeyError(f"{path}: the data key file is empty")
    return specs


def write_key_file(path: Path, specs: list[str]) -> None:
    """Replace a key file atomically, readable by its owner only (in a directory made 0700 if new)."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        fh.write("\n".join(specs) + "\n")
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)


def key_file_in_use(settings: Settings) -> Path | None:
    """The key file these settings read the key from, if any."""
    sec = settings.security
    if sec.data_key:
        return None
    if sec.data_key_file:
        return Path(sec.data_key_file).expanduser()
    if settings.uses_embedded_database:
        return default_key_file()
    return None


def load_data_cipher(settings: Settings) -> DataCipher:
    """The cipher for these settings: key from config/env, a key file, or (embedded only) a new file."""
    sec = settings.security
    specs: list[tuple[str, str]] = []
    if sec.data_key:
        specs.append((sec.data_key, "security.data_key"))
    else:
        path = key_file_in_use(settings)
        if path is not None:
            if not path.exists() and not sec.data_key_file:
                write_key_file(path, [generate_key_spec("k1")])
            specs.extend((spec, str(path)) for spec in _read_key_file(path))
    if not specs:
        raise DataKeyError(
            "no data encryption key: set BAKONG_CONSOLE_DATA_KEY or security.data_key "
            "(generate one with `bakong-console keys new-data-key`)"
        )
    kid, key = parse_key_spec(specs[0][0], origin=specs[0][1])
    keys = {kid: key}
    for spec, origin in specs[1:]:
        old_id, old_key = parse_key_spec(spec, origin=origin)
        keys.setdefault(old_id, old_key)
    for i, old in enumerate(sec.previous_data_keys):
        old_id, old_key = parse_key_spec(old, origin=f"security.previous_data_keys[{i}]")
        keys.setdefault(old_id, old_key)
    return DataCipher(kid, keys)
