"""The vault file's format: a small clear header, then the accounts sealed with AES-256-GCM.

    GRIDHARVEST-VAULT 1\\n
    {"kdf": "none" | "scrypt", "salt": …, "check": …}\\n
    nonce (12 bytes) · ciphertext and tag

The header is authenticated with the body (it is the AEAD's associated data), so changing
any byte of the file fails authentication. ``check`` is an HMAC of a fixed label under the
key: it tells a wrong key (or passphrase) apart from a damaged file without revealing
anything about the key. A passphrase is stretched with scrypt and a salt kept in the header.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from vault._errors import TamperedVault, WrongKey

MAGIC = b"GRIDHARVEST-VAULT 1\n"
KEY_BYTES = 32
NONCE_BYTES = 12
# scrypt at 2**15 × 8 costs ~32 MiB and a tenth of a second: once per process that opens the vault.
SCRYPT = {"n": 2**15, "r": 8, "p": 1}
_CHECK_LABEL = b"gridharvest vault key check"

Kdf = Literal["none", "scrypt"]


def new_key() -> bytes:
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM  # loaded by the first key or file

    return AESGCM.generate_key(bit_length=KEY_BYTES * 8)


def key_text(key: bytes) -> str:
    """The key as it is written to the key file or HARVEST_VAULT_KEY: URL-safe base64."""
    return base64.urlsafe_b64encode(key).decode()


def parse_key_text(text: str, origin: str) -> bytes:
    """The key in ``text``; ``origin`` names where it came from for the error."""
    try:
        key = base64.urlsafe_b64decode(text.strip().encode())
    except (binascii.Error, ValueError):
        key = b""
    if len(key) != KEY_BYTES:
        raise WrongKey(f"{origin} 里不是保险库密钥（应是 `harvest vault init` 写下的 44 个 base64 字符）")
    return key


def stretch(passphrase: str, salt: bytes) -> bytes:
    return hashlib.scrypt(passphrase.encode(), salt=salt, maxmem=64 * 1024 * 1024, dklen=KEY_BYTES, **SCRYPT)


def _check(key: bytes) -> str:
    return base64.b64encode(hmac.new(key, _CHECK_LABEL, "sha256").digest()[:16]).decode()


@dataclass(frozen=True)
class Header:
    kdf: Kdf
    salt: bytes  # empty unless kdf is scrypt
    check: str

    @classmethod
    def for_key(cls, key: bytes, *, kdf: Kdf = "none", salt: bytes = b"") -> Header:
        return cls(kdf=kdf, salt=salt, check=_check(key))

    def fits(self, key: bytes) -> bool:
        return hmac.compare_digest(self.check, _check(key))

    def line(self) -> bytes:
        fields = {"kdf": self.kdf, "salt": base64.b64encode(self.salt).decode(), "check": self.check}
        return json.dumps(fields, sort_keys=True).encode() + b"\n"


def read_header(blob: bytes, path: Path) -> tuple[Header, bytes, bytes]:
    """The header, its raw bytes (the associated data) and the sealed body of a vault file."""
    damaged = TamperedVault(f"{path} 已损坏或被改动过（不是可读的保险库文件）：从备份恢复它")
    if not blob.startswith(MAGIC):
        raise damaged
    end = blob.find(b"\n", len(MAGIC))
    if end < 0:
        raise damaged
    try:
        fields = json.loads(blob[len(MAGIC) : end])
        header = Header(kdf=fields["kdf"], salt=base64.b64decode(fields["salt"]), check=fields["check"])
    except (ValueError, KeyError, TypeError) as exc:
        raise damaged from exc
    if header.kdf not in ("none", "scrypt"):
        raise damaged
    return header, blob[: end + 1], blob[end + 1 :]


def seal(payload: dict[str, Any], key: bytes, header: Header) -> bytes:
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM

    associated = MAGIC + header.line()
    nonce = os.urandom(NONCE_BYTES)
    body = AESGCM(key).encrypt(nonce, json.dumps(payload, ensure_ascii=False).encode(), associated)
    return associated + nonce + body


def unseal(blob: bytes, key: bytes, path: Path) -> dict[str, Any]:
    """The payload of a vault file; the caller has checked the key against the header."""
    from cryptography.exceptions import InvalidTag
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM

    _, associated, sealed = read_header(blob, path)
    try:
        plain = AESGCM(key).decrypt(sealed[:NONCE_BYTES], sealed[NONCE_BYTES:], associated)
    except (InvalidTag, ValueError) as exc:
        raise TamperedVault(
            f"{path} 未通过认证（写入之后被损坏或改动过）：从备份恢复它；什么都没有改动"
        ) from exc
    payload: dict[str, Any] = json.loads(plain)
    return payload
