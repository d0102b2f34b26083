"""The vault keeps accounts encrypted in one file; wrong keys and damaged files stop it cold."""

from __future__ import annotations

import datetime as dt
import json
import pickle
import re
import stat
from pathlib import Path

import pytest

from settings import load_settings
from tests.vault_helpers import make_vault
from vault import (
    AccountExists,
    AccountParked,
    InsecureKeyFile,
    MissingKey,
    NoVault,
    Secret,
    TamperedVault,
    UnknownAccount,
    Vault,
    VaultExists,
    VaultUsageError,
    WrongKey,
)
from vault._crypto import key_text, new_key

SEED = "JBSWY3DPEHPK3PXP"


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_accounts_round_trip_through_the_encrypted_file() -> None:
    vault = Vault.init(load_settings())
    vault.add("population", "donghu", username="rk_donghu", password="s3cret-东湖", scope="donghu")
    vault.add(
        "civil", "xiyuan", username="mz_xy", password="p w", scope="xiyuan", totp_seed="jbsw y3dp ehpk 3pxp"
    )
    again = Vault.open(load_settings())
    assert [(a.system, a.account) for a in again.accounts()] == [
        ("civil", "xiyuan"),
        ("population", "donghu"),
    ]
    assert [a.account for a in again.accounts("civil")] == ["xiyuan"]
    info = again.get("population", "donghu")
    assert (info.username, info.scope, info.status, info.has_totp, info.last_used) == (
        "rk_donghu",
        "donghu",
        "ok",
        False,
        None,
    )
    secrets = again.secrets("civil", "xiyuan", robot="elderly", run_id="run-1")
    assert secrets.password.reveal() == "p w"
    assert secrets.totp_seed is not None and secrets.totp_seed.reveal() == SEED
    assert again.get("civil", "xiyuan").last_used is not None
    raw = vault.path.read_bytes()
    assert "s3cret-东湖".encode() not in raw and b"rk_donghu" not in raw
    assert _mode(vault.path) == 0o600 and _mode(load_settings().resolved_vault_key_file) == 0o600


def test_add_set_remove_say_what_is_wrong() -> None:
    vault = make_vault(1)
    with pytest.raises(AccountExists, match="vault set population acct0"):
        vault.add("population", "acct0", username="u", password="p", scope="s")
    with pytest.raises(UnknownAccount, match="harvest vault list"):
        vault.get("population", "nobody")
    with pytest.raises(VaultUsageError, match="不要空格"):
        vault.add("population", "two words", username="u", password="p", scope="s")
    with pytest.raises(VaultUsageError, match="base32"):
        vault.add("population", "x", username="u", password="p", scope="s", totp_seed="not base32!")
    with pytest.raises(VaultUsageError, match="没有要修改的内容"):
        vault.set("population", "acct0")
    changed = vault.set("population", "acct0", scope="nanshan", notes="王芳的账号", totp_seed=SEED)
    assert (changed.scope, changed.notes, changed.has_totp) == ("nanshan", "王芳的账号", True)
    assert not vault.set("population", "acct0", totp_seed="").has_totp
    vault.remove("population", "acct0")
    assert vault.accounts() == []
    with pytest.raises(UnknownAccount):
        vault.remove("population", "acct0")


def test_a_parked_account_gets_no_secrets_until_its_password_changes() -> None:
    vault = make_vault(2)
    parked = vault.park("population", "acct1", kind="bad_credentials", message="用户名或密码错误")
    assert (parked.status, parked.parked_kind, parked.parked_message) == (
        "parked",
        "bad_credentials",
        "用户名或密码错误",
    )
    assert parked.parked_at is not None
    with pytest.raises(AccountParked, match="vault set population acct1 --password"):
        vault.secrets("population", "acct1", robot="r", run_id="1")
    assert vault.set("population", "acct1", notes="still wrong").status == "parked"  # notes fix nothing
    fixed = vault.set("population", "acct1", password="new-password")
    assert (fixed.status, fixed.parked_kind, fixed.parked_at) == ("ok", None, None)
    assert vault.secrets("population", "acct1", robot="r", run_id="2").password.reveal() == "new-password"
    assert vault.get("population", "acct0").status == "ok"


def test_sessions_are_kept_until_they_expire_and_wiped_by_new_credentials(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    vault = make_vault(1)
    state = {
        "cookies": [{"name": "SESSION", "value": "cookie-value-123456", "domain": "127.0.0.1"}],
        "origins": [],
    }
    assert vault.load_session("population", "acct0") is None
    vault.save_session("population", "acct0", state, ttl=dt.timedelta(hours=1))
    assert Vault.open(load_settings()).load_session("population", "acct0") == state
    assert b"cookie-value-123456" not in vault.path.read_bytes()
    later = dt.datetime.now(dt.UTC) + dt.timedelta(hours=2)
    monkeypatch.setattr("vault._vault.utc_now", lambda: later)
    assert vault.load_session("population", "acct0") is None
    monkeypatch.undo()
    vault.save_session("population", "acct0", state, ttl=dt.timedelta(hours=1))
    vault.set("population", "acct0", scope="elsewhere")
    assert vault.load_session("population", "acct0") == state  # a scope change is not a credential change
    vault.set("population", "acct0", password="changed")
    assert vault.load_session("population", "acct0") is None
    vault.save_session("population", "acct0", state, ttl=dt.timedelta(hours=1))
    vault.clear_session("population", "acct0")
    assert vault.load_session("population", "acct0") is None
    with pytest.raises(VaultUsageError):
        vault.save_session("population", "acct0", state, ttl=dt.timedelta(0))


def test_every_secret_read_is_audited_without_the_secret() -> None:
    vault = make_vault(1)
    vault.secrets("population", "acct0", robot="residents", run_id="run-42")
    lines = [
        json.loads(line) for line in (vault.settings.data_dir / "vault-audit.jsonl").read_text().splitlines()
    ]
    read = [line for line in lines if line["event"] == "read"]
    assert len(read) == 1
    assert {k: read[0][k] for k in ("system", "account", "robot", "run")} == {
        "system": "population",
        "account": "acct0",
        "robot": "residents",
        "run": "run-42",
    }
    assert dt.datetime.fromisoformat(read[0]["time"]).tzinfo is not None
    assert "pw-0-secret" not in (vault.settings.data_dir / "vault-audit.jsonl").read_text()


def test_reprs_show_names_never_secrets() -> None:
    vault = make_vault(1)
    secrets = vault.secrets("population", "acct0", robot="r", run_id="1")
    assert repr(secrets.password) == str(secrets.password) == "Secret('population/acct0 password')"
    assert "pw-0-secret" not in f"{secrets} {secrets!r} {secrets.password} {vault!r}"
    with pytest.raises(TypeError, match="不能被 pickle"):
        pickle.dumps(secrets)
    key = key_text(new_key())
    settings = load_settings(vault_key=key)
    assert key not in repr(settings) and key not in str(settings.model_dump())
    assert "密钥文件" in repr(vault) and key_text(new_key()) not in repr(vault)
    assert repr(Secret("a name", "a value only this test uses")) == "Secret('a name')"


def _one_line(error: Exception) -> str:
    """The error's text, checked to be one line in the CLI's language."""
    text = str(error)
    assert "\n" not in text and re.search("[\u4e00-\u9fff]", text), text
    return text


def test_a_missing_vault_or_key_names_the_fix() -> None:
    with pytest.raises(NoVault, match="harvest vault init"):
        Vault.open(load_settings())
    make_vault(1)
    with pytest.raises(VaultExists):
        Vault.init(load_settings())
    key_file = load_settings().resolved_vault_key_file
    key_file.rename(key_file.with_name("elsewhere"))
    with pytest.raises(MissingKey) as missing:
        Vault.open(load_settings())
    assert "HARVEST_VAULT_KEY" in _one_line(missing.value)


@pytest.mark.parametrize("mode", [0o644, 0o640, 0o604])
def test_a_key_file_open_to_others_is_refused(mode: int) -> None:
    make_vault(1)
    key_file = load_settings().resolved_vault_key_file
    key_file.chmod(mode)
    with pytest.raises(InsecureKeyFile) as refused:
        Vault.open(load_settings())
    assert f"chmod 600 {key_file}" in _one_line(refused.value)
    key_file.chmod(0o600)
    assert len(Vault.open(load_settings()).accounts()) == 1


def test_a_wrong_key_is_refused_and_changes_nothing(monkeypatch: pytest.MonkeyPatch) -> None:
    vault = make_vault(2)
    before = vault.path.read_bytes()
    monkeypatch.setenv("HARVEST_VAULT_KEY", key_text(new_key()))
    with pytest.raises(WrongKey) as wrong:
        Vault.open(load_settings())
    assert "HARVEST_VAULT_KEY" in _one_line(wrong.value)
    monkeypatch.setenv("HARVEST_VAULT_KEY", "not a key")
    with pytest.raises(WrongKey, match="44 个 base64"):
        Vault.open(load_settings())
    monkeypatch.delenv("HARVEST_VAULT_KEY")
    key_file = load_settings().resolved_vault_key_file
    key_file.write_text(key_text(new_key()))
    with pytest.raises(WrongKey) as wrong_file:
        Vault.open(load_settings())
    assert str(key_file) in _one_line(wrong_file.value)
    assert vault.path.read_bytes() == before


def test_the_key_from_the_environment_wins_over_the_key_file(monkeypatch: pytest.MonkeyPatch) -> None:
    key = key_text(new_key())
    monkeypatch.setenv("HARVEST_VAULT_KEY", key)
    vault = Vault.init(load_settings())
    assert vault.key_source == "HARVEST_VAULT_KEY" and not load_settings().resolved_vault_key_file.exists()
    vault.add("market", "m1", username="u", password="pw", scope="s")
    assert Vault.open(load_settings()).get("market", "m1").username == "u"
    with pytest.raises(VaultUsageError, match="取消设置 HARVEST_VAULT_KEY"):
        vault.rotate_key()


@pytest.mark.parametrize("where", ["magic", "header", "nonce", "middle", "tag"])
def test_a_tampered_byte_is_detected_and_changes_nothing(where: str) -> None:
    vault = make_vault(2)
    data = bytearray(vault.path.read_bytes())
    body = data.index(b"\n", 20) + 1
    header_kdf = data.index(b'"kdf"') + 9  # inside the value "none"
    position = {"magic": 0, "header": header_kdf, "nonce": body + 3, "middle": (body + len(data)) // 2}.get(
        where, len(data) - 1
    )
    data[position] ^= 0x01
    vault.path.write_bytes(bytes(data))
    with pytest.raises(TamperedVault) as tampered:
        Vault.open(load_settings())
    assert "从备份恢复" in _one_line(tampered.value)
    with pytest.raises(TamperedVault):
        vault.add("population", "more", username="u", password="p", scope="s")
    assert vault.path.read_bytes() == bytes(data)


def test_a_passphrase_vault_opens_with_its_passphrase_only() -> None:
    vault = Vault.init(load_settings(), passphrase="correct horse battery")
    assert vault.uses_passphrase and not load_settings().resolved_vault_key_file.exists()
    vault.add("population", "p1", username="u", password="pw-passphrase", scope="s")
    before = vault.path.read_bytes()
    with pytest.raises(MissingKey, match="用口令锁住"):
        Vault.open(load_settings())  # not interactive: nobody to ask
    with pytest.raises(WrongKey, match="的口令不对"):
        Vault.open(load_settings(), passphrase="wrong horse battery")
    assert vault.path.read_bytes() == before
    with pytest.raises(VaultUsageError, match="口令太短"):
        vault.rotate_key(passphrase="short")
    vault.rotate_key(passphrase="a new passphrase")
    with pytest.raises(WrongKey):
        Vault.open(load_settings(), passphrase="correct horse battery")
    again = Vault.open(load_settings(), passphrase="a new passphrase")
    assert again.secrets("population", "p1", robot="r", run_id="1").password.reveal() == "pw-passphrase"


def test_a_vault_open_in_another_process_follows_a_key_rotation() -> None:
    first = make_vault(1)
    second = Vault.open(load_settings())
    old_key = load_settings().resolved_vault_key_file.read_text()
    second.rotate_key()
    assert load_settings().resolved_vault_key_file.read_text() != old_key
    first.park("population", "acct0", kind="locked", message="账号已锁定")  # adopts the new key file
    assert second.get("population", "acct0").status == "parked"
