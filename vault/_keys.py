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

from settings import Settings
from vault._crypto import Header, parse_key_text, stretch
from vault._errors import InsecureKeyFile, MissingKey, WrongKey
from vault._redact import register_secret

ENV = "HARVEST_VAULT_KEY"


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
            f"the vault key file {path} is open to group or others (mode {mode:o}): run `chmod 600 {path}`"
        )
    text = path.read_text(encoding="ascii", errors="replace")
    register_secret(text.strip())
    return parse_key_text(text, f"the key file {path}")


def passphrase_key(passphrase: str, header: Header, vault: Path) -> Key:
    register_secret(passphrase)
    key = stretch(passphrase, header.salt)
    if not header.fits(key):
        raise WrongKey(f"wrong passphrase for {vault}: try again (nothing was changed)")
    return Key(key, "passphrase")


def find_key(
    settings: Settings, header: Header, vault: Path, *, interactive: bool, passphrase: str | None
) -> Key:
    """The key that opens ``vault``, from the first source that has one."""
    if settings.vault_key is not None:
        text = settings.vault_key.get_secret_value()
        register_secret(text.strip())
        key = Key(parse_key_text(text, ENV), ENV)
        if not header.fits(key.value):
            raise WrongKey(f"{ENV} does not open {vault}: set it to the vault's key, or unset it")
        return key
    if header.kdf == "scrypt":
        if passphrase is None and interactive and sys.stdin.isatty():
            passphrase = getpass.getpass(f"Passphrase of the vault {vault}: ")
        if passphrase is None:
            raise MissingKey(
                f"{vault} is locked by a passphrase: run the command in a terminal to type it, or set {ENV}"
            )
        return passphrase_key(passphrase, header, vault)
    path = settings.resolved_vault_key_file
    if not path.exists():
        raise MissingKey(
            f"no key for {vault}: set {ENV}, or put the key file back at {path} (chmod 600), "
            "or point HARVEST_VAULT_KEY_FILE at it"
        )
    key = Key(read_key_file(path), f"key file {path}", file=path)
    if not header.fits(key.value):
        raise WrongKey(f"the key file {path} does not open {vault}: restore the vault's own key file")
    return key


def describe_source(settings: Settings, header: Header | None) -> str:
    """Where the key would come from, without reading it (for `harvest vault status`)."""
    if settings.vault_key is not None:
        return ENV
    if header is not None and header.kdf == "scrypt":
        return "passphrase"
    return f"key file {settings.resolved_vault_key_file}"
