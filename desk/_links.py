"""Links to a person carry the ID number sealed, so it never shows in an address bar, a browser's
history, a proxy's log or a Referer header.

The key lives in the data dir (``desk.key``, mode 0600) so links keep working across restarts.
"""

from __future__ import annotations

import base64
import binascii
import os
from pathlib import Path

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

NONCE_BYTES = 12


class Sealer:
    """Seals short texts into URL-safe tokens and opens them again; a forged token opens to None."""

    def __init__(self, key_file: Path) -> None:
        self._aead = AESGCM(_key(key_file))

    def seal(self, text: str) -> str:
        nonce = os.urandom(NONCE_BYTES)
        sealed = nonce + self._aead.encrypt(nonce, text.encode(), None)
        return base64.urlsafe_b64encode(sealed).rstrip(b"=").decode()

    def open(self, token: str) -> str | None:
        try:
            raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
            return self._aead.decrypt(raw[:NONCE_BYTES], raw[NONCE_BYTES:], None).decode()
        except (ValueError, binascii.Error, InvalidTag, UnicodeDecodeError):
            return None


def _key(path: Path) -> bytes:
    """The desk's link key, made on first use; two desks starting at once end up with the same one."""
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        fresh = path.with_name(f".{path.name}.{os.getpid()}")
        fd = os.open(fresh, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "wb") as out:
            out.write(AESGCM.generate_key(bit_length=256))
        try:
            os.link(fresh, path)  # fails if another process made one first: then that one is used
        except FileExistsError:
            pass
        finally:
            fresh.unlink()
    key = path.read_bytes()
    if len(key) != 32:
        raise ValueError(f"{path} 不是查询台的链接密钥（应为 32 字节）：删除它，再重启 harvest serve")
    return key
