"""Where the vault key comes from, in order: HARVEST_VAULT_KEY, the key file, a passphrase.

A vault made with a passphrase says so in its header (``kdf: scrypt``); for it the key file
is not consulted, and the passphrase comes from the caller or, in a terminal, a prompt.
The key and the passphrase are registered for redaction as soon as they are read.
"""

from __future__ import annotations

import getpass
import stat
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from vault._crypto import Header, parse_key_text, stretch
from vault._errors import InsecureKeyFile, MissingKey, WrongKey
from vault._redact import register_secret

if TYPE_CHECKING:
    from settings import Settings

ENV = "HARVEST_VAULT_KEY"
PASSPHRASE = "口令"  # the key source of a vault locked by a passphrase, as messages name it


def file_source(path: Path) -> str:
    """How messages and `harvest vault status` name a key file as the key's source."""
    return f"密钥文件 {path}"


@dataclass(frozen=True)
class Key:
    value: bytes
    source: str  # said in messages and `harvest vault status`: never the key itself
    file: Path | None = None  # the key file it came from, re-read when another process rotates the key

    def __repr__(self) -> str:
        return f"Key(from {self.source})"


def read_key_file(path: Path) -> bytes:
    """The key in ``path``, refused if anyone but its owner may read or write it."""
    mode = stat.S_IMODE(path.stat().st_mode)
    if mode & 0o077:
        raise InsecureKeyFile(
            f"保险库密钥文件 {path} 同组或其他用户也能访问（权限 {mode:o}）：运行 `chmod 600 {path}`"
        )
    text = path.read_text(encoding="ascii", errors="replace")
    register_secret(text.strip())
    return parse_key_text(text, file_source(path))


def passphrase_key(passphrase: str, header: Header, vault: Path) -> Key:
    register_secret(passphrase)
    key = stretch(passphrase, header.salt)
    if not header.fits(key):
        raise WrongKey(f"{vault} 的口令不对：再试一次（什么都没有改动）")
    return Key(key, PASSPHRASE)


def find_key(
    settings: Settings, header: Header, vault: Path, *, interactive: bool, passphrase: str | None
) -> Key:
    """The key that opens ``vault``, from the first source that has one."""
    if settings.vault_key is not None:
        text = settings.vault_key.get_secret_value()
        register_secret(text.strip())
        key = Key(parse_key_text(text, ENV), ENV)
        if not header.fits(key.value):
            raise WrongKey(f"{ENV} 打不开 {vault}：把它设为这个保险库的密钥，或取消设置它")
        return key
    if header.kdf == "scrypt":
        if passphrase is None and interactive and sys.stdin.isatty():
            passphrase = getpass.getpass(f"保险库 {vault} 的口令：")
        if passphrase is None:
            raise MissingKey(f"{vault} 用口令锁住：在终端里运行命令以输入口令，或设置 {ENV}")
        return passphrase_key(passphrase, header, vault)
    path = settings.resolved_vault_key_file
    if not path.exists():
        raise MissingKey(
            f"没有打开 {vault} 的密钥：设置 {ENV}，或把密钥文件放回 {path}（chmod 600），"
            "或让 HARVEST_VAULT_KEY_FILE 指向它"
        )
    key = Key(read_key_file(path), file_source(path), file=path)
    if not header.fits(key.value):
        raise WrongKey(f"{file_source(path)} 打不开 {vault}：换回这个保险库自己的密钥文件")
    return key


def describe_source(settings: Settings, header: Header | None) -> str:
    """Where the key would come from, without reading it (for `harvest vault status`)."""
    if settings.vault_key is not None:
        return ENV
    if header is not None and header.kdf == "scrypt":
        return PASSPHRASE
    return file_source(settings.resolved_vault_key_file)
