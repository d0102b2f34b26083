"""Vault: the unit's credentials and session state, encrypted at rest, and redaction of secrets.

Robots and the scheduler read secrets only through ``Vault.secrets`` (audited, registered
for redaction); nothing else stores them. Call ``install_log_redaction()`` once at startup
so that no log line, exception text or traceback ever shows a secret this process has read.
"""

from vault._errors import (
    AccountExists,
    AccountParked,
    InsecureKeyFile,
    MissingKey,
    NoVault,
    TamperedVault,
    UnknownAccount,
    VaultError,
    VaultExists,
    VaultUsageError,
    WrongKey,
)
from vault._model import AccountInfo, Secret, Secrets
from vault._redact import install_log_redaction, redact, redact_record, register_secret
from vault._vault import Vault

__all__ = [
    "AccountExists",
    "AccountInfo",
    "AccountParked",
    "InsecureKeyFile",
    "MissingKey",
    "NoVault",
    "Secret",
    "Secrets",
    "TamperedVault",
    "UnknownAccount",
    "Vault",
    "VaultError",
    "VaultExists",
    "VaultUsageError",
    "WrongKey",
    "install_log_redaction",
    "redact",
    "redact_record",
    "register_secret",
]
