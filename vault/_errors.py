"""What can go wrong with the vault; each message is one line that tells the operator what to do,
in Chinese like the rest of the ``harvest`` command (command names, settings and paths as they are).

    VaultError
     ├── NoVault            no vault file yet: `harvest vault init`
     ├── VaultExists        init refused: a vault is already there
     ├── MissingKey         no key source gave a key (environment, key file, passphrase)
     ├── InsecureKeyFile    the key file is open to group or others: `chmod 600`
     ├── WrongKey           the key or passphrase does not open this vault
     ├── TamperedVault      the file fails authentication: damaged or altered, restore a backup
     ├── UnknownAccount     no such system/account
     ├── AccountExists      add refused: the account is already there (use `set`)
     ├── AccountParked      secrets refused: a person must fix the credentials first
     └── VaultUsageError    a request the vault cannot do as asked (bad name, bad TOTP seed, …)

None of them changes the vault file: every check happens before anything is written.
"""

from __future__ import annotations


class VaultError(Exception):
    """Base of the vault's errors; ``str()`` is the one line to show."""


class NoVault(VaultError):
    pass


class VaultExists(VaultError):
    pass


class MissingKey(VaultError):
    pass


class InsecureKeyFile(VaultError):
    pass


class WrongKey(VaultError):
    pass


class TamperedVault(VaultError):
    pass


class UnknownAccount(VaultError, LookupError):
    pass


class AccountExists(VaultError):
    pass


class AccountParked(VaultError):
    pass


class VaultUsageError(VaultError, ValueError):
    pass
