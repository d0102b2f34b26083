"""The vault: the unit's accounts and their session state in one encrypted file in the data dir.

Several processes share it (scheduler workers park accounts, stamp their last use, save
sessions), so every change is a read-modify-write under one ``flock``, re-reading the file
under the lock; nothing is cached between calls, and a change made by another process is
seen by the next call. Every read of a secret is appended to ``vault-audit.jsonl``.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import datetime as dt
import getpass
import hashlib
import hmac
import json
import os
import re
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from machine import private_dir, utc_now
from vault._crypto import Header, key_text, new_key, parse_key_text, read_header, seal, stretch, unseal
from vault._errors import (
    AccountExists,
    AccountParked,
    MissingKey,
    NoVault,
    UnknownAccount,
    VaultExists,
    VaultUsageError,
    WrongKey,
)
from vault._files import append_line, fsync_dir, locked, recover, staged, swap, write_atomic, write_new
from vault._keys import ENV, PASSPHRASE, Key, file_source, find_key, read_key_file
from vault._model import AccountInfo, Secret, Secrets
from vault._redact import redact, register_secret

if TYPE_CHECKING:  # cryptography and the settings load with the first vault opened, not with `harvest --help`
    from cryptography.fernet import Fernet

    from settings import Settings

VAULT_FILE = "vault.bin"
LOCK_FILE = "vault.lock"
JOURNAL_FILE = "vault.rotate"
AUDIT_FILE = "vault-audit.jsonl"
MIN_PASSPHRASE = 8
EMPTY_PASSWORD = "密码是空的：给出这个账号在系统上的密码"
SESSION_COOKIE_MIN = 8  # shorter cookie values (a language, a flag) are not secrets worth masking everywhere
_NAME = re.compile(r"^[\w.-]+$")

T = TypeVar("T")
Payload = dict[str, Any]


@contextlib.contextmanager
def _guard(settings: Settings) -> Iterator[None]:
    """The vault's lock, with any interrupted key rotation finished or undone first."""
    with locked(settings.data_dir / LOCK_FILE):
        recover(
            settings.data_dir / JOURNAL_FILE,
            [settings.data_dir / VAULT_FILE, settings.resolved_vault_key_file],
        )
        yield


def _time(text: str | None) -> dt.datetime | None:
    return None if text is None else dt.datetime.fromisoformat(text)


def _check_name(what: str, name: str) -> None:
    if not _NAME.match(name):
        raise VaultUsageError(
            f"{what} {name!r} 不可用：只用字母、数字、'-'、'_' 或 '.'（不要空格，不要 '/'）"
        )


def _check_passphrase(passphrase: str) -> None:
    if len(passphrase) < MIN_PASSPHRASE:
        raise VaultUsageError(f"口令太短：至少要 {MIN_PASSPHRASE} 个字符")


def _no_vault(path: Path) -> NoVault:
    return NoVault(f"{path} 还没有保险库：用 `harvest vault init` 建立一个")


def _totp_seed(seed: str) -> str:
    """The seed in the canonical form authenticator apps print it (base32, upper case, no spaces)."""
    normal = re.sub(r"[\s-]", "", seed).upper()
    try:
        base64.b32decode(normal + "=" * (-len(normal) % 8))
    except (binascii.Error, ValueError):
        normal = ""
    if not normal:
        raise VaultUsageError("TOTP 种子不是 base32 文本（只有字母 A-Z 和数字 2-7）：照原样重新输入")
    return normal


def _register_cookies(state: dict[str, Any]) -> None:
    for cookie in state.get("cookies", []):
        value = cookie.get("value", "")
        if isinstance(value, str) and len(value) >= SESSION_COOKIE_MIN:
            register_secret(value)


def _info(entry: dict[str, Any]) -> AccountInfo:
    return AccountInfo(
        system=entry["system"],
        account=entry["account"],
        username=entry["username"],
        scope=entry["scope"],
        notes=entry["notes"],
        status=entry["status"],
        parked_kind=entry["parked_kind"],
        parked_message=entry["parked_message"],
        parked_at=_time(entry["parked_at"]),
        last_used=_time(entry["last_used"]),
        has_totp=entry["totp_seed"] is not None,
        unconfirmed_logins=entry.get("unconfirmed_logins", 0),
        logs_in_by="http" if entry.get("login_recipe") else "browser",
    )


def _unpark(entry: dict[str, Any]) -> None:
    # A person vouches for the credentials again: the count of unanswered logins starts over.
    entry.update(
        status="ok",
        parked_kind=None,
        parked_message=None,
        parked_at=None,
        session=None,
        unconfirmed_logins=0,
        login_recipe=None,  # the next login is a browser's again: it shows afresh how the form posts
    )


class LoginLedger:
    """One account's count of spent, unconfirmed password submissions, kept in the vault.

    It outlives runs and processes (and machines sharing the vault file), so that a system
    answering logins with errors night after night cannot be driven to its lockout.
    """

    def __init__(self, vault: Vault, system: str, account: str) -> None:
        self._vault, self._system, self._account = vault, system, account

    def spent(self) -> int:
        return self._vault.get(self._system, self._account).unconfirmed_logins

    def spend(self) -> int:
        return self._vault._count_login(self._system, self._account, +1)

    def refund(self) -> None:
        self._vault._count_login(self._system, self._account, -1)

    def confirm(self) -> None:
        if self.spent():
            self._vault._count_login(self._system, self._account, None)


class RecipeBook:
    """How one account's login form posts, as a browser login showed it (``connectors._recipe``).

    Kept apart from the saved session: a session expires overnight, what the form sends does not.
    """

    def __init__(self, vault: Vault, system: str, account: str) -> None:
        self._vault, self._system, self._account = vault, system, account

    def load(self) -> dict[str, Any] | None:
        recipe: dict[str, Any] | None = self._vault._entry(
            self._vault._read(), self._system, self._account
        ).get("login_recipe")
        return recipe

    def keep(self, recipe: dict[str, Any] | None) -> None:
        if recipe == self.load():
            return

        def change(payload: Payload) -> None:
            self._vault._entry(payload, self._system, self._account)["login_recipe"] = recipe

        self._vault._change(change)


class Vault:
    """The unit's accounts, encrypted at rest. Get one with ``Vault.open`` (or ``Vault.init`` once).

    ``seal``/``unseal`` encrypt other copies of personal data under the same key (a recorded
    cassette): Fernet, under a key derived from the vault's key for that use alone, so whatever
    opens the vault opens them and nothing else does. ``Vault.keyed`` gives a handle for them
    where the vault file is absent (a replay test on a CI machine that has only HARVEST_VAULT_KEY).
    """

    def __init__(self, settings: Settings, key: Key, header: Header) -> None:
        self.settings = settings
        self.path = settings.data_dir / VAULT_FILE
        self._key = key
        self._header = header

    def __repr__(self) -> str:
        return f"Vault({str(self.path)!r}, key from {self._key.source})"

    @property
    def key_source(self) -> str:
        """Where this vault's key came from: HARVEST_VAULT_KEY, the key file (with its path), a passphrase."""
        return self._key.source

    @property
    def uses_passphrase(self) -> bool:
        """Whether the vault is locked by a passphrase (its key is stretched from it, not kept in a file)."""
        return self._header.kdf == "scrypt"

    # -- opening -------------------------------------------------------------------------------

    @classmethod
    def open(cls, settings: Settings, *, interactive: bool = False, passphrase: str | None = None) -> Vault:
        """Open the vault of ``settings.data_dir``; a passphrase is prompted only if ``interactive``
        and stdin is a terminal (or given here). Raises NoVault, MissingKey, InsecureKeyFile,
        WrongKey or TamperedVault, each naming the fix, and changes nothing on any of them.
        """
        path = settings.data_dir / VAULT_FILE
        if not settings.data_dir.is_dir():
            raise _no_vault(path)
        with _guard(settings):
            blob = cls._blob(path)
        header, _, _ = read_header(blob, path)
        key = find_key(settings, header, path, interactive=interactive, passphrase=passphrase)
        vault = cls(settings, key, header)
        vault._read()  # authenticates the whole file, not just the key check
        return vault

    @classmethod
    def init(cls, settings: Settings, *, passphrase: str | None = None) -> Vault:
        """Create an empty vault: under HARVEST_VAULT_KEY if set, else under ``passphrase`` if
        given, else under the key file (created 0600, or reused if it is already there).
        Refuses if a vault exists.
        """
        path = settings.data_dir / VAULT_FILE
        private_dir(settings.data_dir)
        if passphrase is not None:
            if settings.vault_key is not None:
                raise VaultUsageError(f"已设置 {ENV}：要建立用口令锁住的保险库，先取消设置它")
            _check_passphrase(passphrase)
        with _guard(settings):
            if path.exists():
                raise VaultExists(f"{path} 已经有保险库：继续用它，或先把它移走")
            if passphrase is not None:
                salt = os.urandom(16)
                register_secret(passphrase)
                key = Key(stretch(passphrase, salt), PASSPHRASE)
                header = Header.for_key(key.value, kdf="scrypt", salt=salt)
            else:
                key = cls._new_key_source(settings)
                header = Header.for_key(key.value)
            write_atomic(path, seal({"format": 1, "accounts": {}}, key.value, header))
        vault = cls(settings, key, header)
        vault._audit("init")
        return vault

    @staticmethod
    def _new_key_source(settings: Settings) -> Key:
        if settings.vault_key is not None:
            return Key(parse_key_text(settings.vault_key.get_secret_value(), ENV), ENV)
        path = settings.resolved_vault_key_file
        if path.exists():
            return Key(read_key_file(path), file_source(path), file=path)
        value = new_key()
        private_dir(path.parent)
        write_atomic(path, (key_text(value) + "\n").encode())
        register_secret(key_text(value))
        return Key(value, file_source(path), file=path)

    @classmethod
    def keyed(cls, settings: Settings, *, key: str | None = None) -> Vault:
        """A handle for ``seal``/``unseal`` only: under ``key`` (a key text, as HARVEST_VAULT_KEY holds
        it), else the key of the vault in ``settings.data_dir`` if there is one, else HARVEST_VAULT_KEY or
        the key file. Its account methods still need the vault file."""
        if key is None and (settings.data_dir / VAULT_FILE).exists():
            return cls.open(settings, interactive=True)
        if key is not None:
            register_secret(key.strip())
            found = Key(parse_key_text(key, "key="), "key=")
        elif settings.vault_key is not None:
            text = settings.vault_key.get_secret_value()
            register_secret(text.strip())
            found = Key(parse_key_text(text, ENV), ENV)
        elif settings.resolved_vault_key_file.exists():
            path = settings.resolved_vault_key_file
            found = Key(read_key_file(path), file_source(path), file=path)
        else:
            raise MissingKey(
                f"没有保险库密钥：设置 {ENV}（加密时所用保险库的密钥），"
                f"或把那个保险库的密钥文件放到 {settings.resolved_vault_key_file}（chmod 600）"
            )
        return cls(settings, found, Header.for_key(found.value))

    def seal(self, data: bytes) -> bytes:
        """``data`` encrypted under this vault's key, for a copy of personal data kept outside the vault."""
        return self._fernet().encrypt(data)

    def unseal(self, token: bytes) -> bytes:
        """What ``seal`` encrypted; WrongKey when another key sealed it or it was altered since."""
        from cryptography.fernet import InvalidToken

        try:
            return self._fernet().decrypt(token)
        except InvalidToken:
            raise WrongKey(
                f"密钥（{self._key.source}）打不开这份加密文件：它由另一个保险库的密钥加密，或已损坏；"
                f"设置 {ENV} 为加密它的保险库的密钥"
            ) from None

    def _fernet(self) -> Fernet:
        from cryptography.fernet import Fernet

        derived = hmac.new(self._key.value, b"gridharvest sealed copy", hashlib.sha256).digest()
        return Fernet(base64.urlsafe_b64encode(derived))

    # -- accounts ------------------------------------------------------------------------------

    def add(
        self,
        system: str,
        account: str,
        *,
        username: str,
        password: str,
        scope: str,
        totp_seed: str | None = None,
        notes: str = "",
    ) -> AccountInfo:
        """Add an account; refuses one that is already there (``set`` changes it)."""
        _check_name("系统", system)
        _check_name("账号", account)
        if not password:
            raise VaultUsageError(EMPTY_PASSWORD)
        if not username.strip():
            raise VaultUsageError("用户名是空的：用 --username 给出系统上的登录名")
        seed = None if totp_seed is None else _totp_seed(totp_seed)

        def change(payload: Payload) -> AccountInfo:
            name = f"{system}/{account}"
            if name in payload["accounts"]:
                raise AccountExists(f"{name} 已在保险库里：用 `harvest vault set {system} {account}` 修改它")
            entry = {
                "system": system,
                "account": account,
                "username": username.strip(),
                "password": password,
                "totp_seed": seed,
                "scope": scope,
                "notes": notes,
                "last_used": None,
            }
            _unpark(entry)  # a new account starts usable, without a session
            payload["accounts"][name] = entry
            return _info(entry)

        info = self._change(change)
        self._audit("add", system, account)
        return info

    def set(
        self,
        system: str,
        account: str,
        *,
        password: str | None = None,
        username: str | None = None,
        scope: str | None = None,
        totp_seed: str | None = None,
        notes: str | None = None,
    ) -> AccountInfo:
        """Change what is given (``totp_seed=""`` removes TOTP). New credentials (password,
        TOTP seed or username) un-park the account and wipe its saved session: a person has
        fixed them, and a session of the old credentials must not outlive them.
        """
        asked = {
            "password": password,
            "username": username,
            "scope": scope,
            "totp_seed": totp_seed,
            "notes": notes,
        }
        given: dict[str, str | None] = {name: value for name, value in asked.items() if value is not None}
        if not given:
            raise VaultUsageError("没有要修改的内容：给出 --password、--totp、--username、--scope 或 --notes")
        if password == "":
            raise VaultUsageError(EMPTY_PASSWORD)
        if totp_seed:
            given["totp_seed"] = _totp_seed(totp_seed)
        elif totp_seed == "":
            given["totp_seed"] = None

        def change(payload: Payload) -> AccountInfo:
            entry = self._entry(payload, system, account)
            entry.update(given)
            if given.keys() & {"password", "totp_seed", "username"}:
                _unpark(entry)
            return _info(entry)

        info = self._change(change)
        self._audit("set", system, account, fields=sorted(given))
        return info

    def remove(self, system: str, account: str) -> None:
        def change(payload: Payload) -> None:
            self._entry(payload, system, account)
            del payload["accounts"][f"{system}/{account}"]

        self._change(change)
        self._audit("remove", system, account)

    def get(self, system: str, account: str) -> AccountInfo:
        return _info(self._entry(self._read(), system, account))

    def accounts(self, system: str | None = None) -> list[AccountInfo]:
        """Every account (of ``system`` if given), sorted by system then account."""
        entries = self._read()["accounts"].values()
        chosen = [_info(e) for e in entries if system is None or e["system"] == system]
        return sorted(chosen, key=lambda info: (info.system, info.account))

    def secrets(self, system: str, account: str, *, robot: str, run_id: str) -> Secrets:
        """The account's secrets for one run: the read is audited, the values are registered for
        redaction, and ``last_used`` is stamped. A parked account gets none (AccountParked):
        its credentials failed and are never retried until a person changes them.
        """

        def change(payload: Payload) -> dict[str, Any]:
            entry = self._entry(payload, system, account)
            if entry["status"] == "parked":
                raise AccountParked(
                    f"{system}/{account} 已停用（{entry['parked_kind']}：{entry['parked_message']}）："
                    f"解决之后运行 `harvest vault set {system} {account} --password`"
                )
            entry["last_used"] = utc_now().isoformat()
            return dict(entry)

        entry = self._change(change)
        self._audit("read", system, account, robot=robot, run=run_id)
        seed = entry["totp_seed"]
        return Secrets(
            password=Secret(f"{system}/{account} password", entry["password"]),
            totp_seed=None if seed is None else Secret(f"{system}/{account} TOTP seed", seed),
        )

    def park(self, system: str, account: str, *, kind: str, message: str) -> AccountInfo:
        """Stop using an account until a person fixes it (bad credentials, a lockout, …)."""

        def change(payload: Payload) -> AccountInfo:
            entry = self._entry(payload, system, account)
            entry.update(
                status="parked",
                parked_kind=kind,
                parked_message=redact(message),
                parked_at=utc_now().isoformat(),
            )
            return _info(entry)

        info = self._change(change)
        self._audit("park", system, account, kind=kind)
        return info

    def login_ledger(self, system: str, account: str) -> LoginLedger:
        """The account's count of unconfirmed password submissions, for the session's lockout rule."""
        self._entry(self._read(), system, account)
        return LoginLedger(self, system, account)

    def login_recipes(self, system: str, account: str) -> RecipeBook:
        """Where the session keeps how the account's login form posts, for logins without a browser."""
        self._entry(self._read(), system, account)
        return RecipeBook(self, system, account)

    def _count_login(self, system: str, account: str, delta: int | None) -> int:
        """Add ``delta`` to the unconfirmed-login count (``None``: a good login sets it to 0)."""

        def change(payload: Payload) -> int:
            entry = self._entry(payload, system, account)
            count = 0 if delta is None else max(0, entry.get("unconfirmed_logins", 0) + delta)
            entry["unconfirmed_logins"] = count
            return count

        return self._change(change)

    # -- sessions ------------------------------------------------------------------------------

    def save_session(self, system: str, account: str, state: dict[str, Any], *, ttl: dt.timedelta) -> None:
        """Keep a Playwright ``storage_state`` (encrypted, like everything here) until ``ttl`` from now."""
        if ttl <= dt.timedelta(0):
            raise VaultUsageError("会话的有效期必须大于 0：检查这个系统声明的 session_hours")
        _register_cookies(state)
        expires = (utc_now() + ttl).isoformat()

        def change(payload: Payload) -> None:
            self._entry(payload, system, account)["session"] = {"state": state, "expires_at": expires}

        self._change(change)

    def load_session(self, system: str, account: str) -> dict[str, Any] | None:
        """The saved ``storage_state``, or None when there is none or it has expired."""
        session = self._entry(self._read(), system, account)["session"]
        if session is None or dt.datetime.fromisoformat(session["expires_at"]) <= utc_now():
            return None
        state: dict[str, Any] = session["state"]
        _register_cookies(state)
        return state

    def clear_session(self, system: str, account: str) -> None:
        def change(payload: Payload) -> None:
            self._entry(payload, system, account)["session"] = None

        self._change(change)

    # -- key rotation --------------------------------------------------------------------------

    def rotate_key(self, *, passphrase: str | None = None) -> None:
        """Re-encrypt everything under a new key (a new key file), or a new ``passphrase`` for a
        vault locked by one. A crash at any point leaves the old vault with the old key or the
        new vault with the new key (see ``vault._files.swap``).
        """
        if self._key.source == ENV:
            raise VaultUsageError(
                f"密钥来自 {ENV}，而更换密钥要写一个新的密钥文件：先把它的密钥存进 "
                f"{self.settings.resolved_vault_key_file}（chmod 600），取消设置 {ENV}，再更换密钥"
            )
        if self.uses_passphrase != (passphrase is not None):
            need = "新口令" if self.uses_passphrase else "不用口令（它用密钥文件）"
            raise VaultUsageError(f"这个保险库更换密钥时{need}")
        if passphrase is not None:
            _check_passphrase(passphrase)
            register_secret(passphrase)
        with self._locked():
            payload = self._read_locked()
            if passphrase is not None:
                salt = os.urandom(16)
                key = Key(stretch(passphrase, salt), PASSPHRASE)
                header = Header.for_key(key.value, kdf="scrypt", salt=salt)
                write_atomic(self.path, seal(payload, key.value, header))
            else:
                key_file = self._key.file or self.settings.resolved_vault_key_file
                key = Key(new_key(), self._key.source, file=key_file)
                header = Header.for_key(key.value)
                register_secret(key_text(key.value))
                write_new(staged(key_file), (key_text(key.value) + "\n").encode())
                write_new(staged(self.path), seal(payload, key.value, header))
                fsync_dir(key_file.parent)
                fsync_dir(self.path.parent)
                swap(self.settings.data_dir / JOURNAL_FILE, [self.path, key_file])
            self._key, self._header = key, header
        self._audit("rotate-key")

    # -- file access ---------------------------------------------------------------------------

    @staticmethod
    def _blob(path: Path) -> bytes:
        try:
            return path.read_bytes()
        except FileNotFoundError:
            raise _no_vault(path) from None

    def _locked(self) -> contextlib.AbstractContextManager[None]:
        return _guard(self.settings)

    def _read_locked(self) -> Payload:
        """The payload, read with the lock held. If another process rotated the key file since we
        read it, the new key file opens the vault and is adopted.
        """
        blob = self._blob(self.path)
        header, _, _ = read_header(blob, self.path)
        if not header.fits(self._key.value) and self._key.file is not None:
            fresh = Key(read_key_file(self._key.file), self._key.source, file=self._key.file)
            if header.fits(fresh.value):
                self._key = fresh
        if not header.fits(self._key.value):
            raise WrongKey(f"密钥（{self._key.source}）已打不开 {self.path}：重新运行命令，重新打开保险库")
        self._header = header
        return unseal(blob, self._key.value, self.path)

    def _read(self) -> Payload:
        with self._locked():
            return self._read_locked()

    def _change(self, change: Callable[[Payload], T]) -> T:
        """Apply ``change`` to the freshest payload and write it back, all under the lock."""
        with self._locked():
            payload = self._read_locked()
            result = change(payload)
            write_atomic(self.path, seal(payload, self._key.value, self._header))
            return result

    @staticmethod
    def _entry(payload: Payload, system: str, account: str) -> dict[str, Any]:
        try:
            entry: dict[str, Any] = payload["accounts"][f"{system}/{account}"]
        except KeyError:
            raise UnknownAccount(
                f"保险库里没有账号 {system}/{account}：用 `harvest vault list` 查看"
            ) from None
        return entry

    def _audit(
        self, event: str, system: str | None = None, account: str | None = None, **fields: Any
    ) -> None:
        """One JSON line per event: who did what to which account; never a secret."""
        try:
            user = getpass.getuser()
        except (KeyError, OSError):
            user = str(os.getuid())
        line = {
            "time": utc_now().isoformat(),
            "event": event,
            "system": system,
            "account": account,
            **fields,
            "user": user,
            "pid": os.getpid(),
        }
        append_line(self.settings.data_dir / AUDIT_FILE, json.dumps(line, ensure_ascii=False))
