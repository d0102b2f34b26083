"""`harvest vault …`: the IT staff's commands for the unit's accounts.

Passwords, TOTP seeds and passphrases are read by a hidden prompt, or one line each from
stdin when stdin is not a terminal (``printf '%s\\n' "$PW" | harvest vault add …``); never
from an option, because a command line is visible to every user in ``ps``.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import sys
from collections.abc import Iterator
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from settings import load_settings
from vault._crypto import Header, read_header
from vault._errors import AccountExists, UnknownAccount, VaultError, VaultUsageError
from vault._keys import describe_source
from vault._vault import VAULT_FILE, Vault

app = typer.Typer(
    help="The unit's accounts, encrypted at rest: add, change, list, remove, rotate the key.",
    no_args_is_help=True,
    add_completion=False,
)
console = Console()
stderr = Console(stderr=True)

USAGE_ERRORS = (UnknownAccount, AccountExists, VaultUsageError)

System = Annotated[str, typer.Argument(help="System code, e.g. population.")]
Account = Annotated[str, typer.Argument(help="Account name within the system, e.g. donghu.")]


@contextlib.contextmanager
def _handled() -> Iterator[None]:
    """A vault error becomes one red line on stderr: exit 2 for a usage error, 1 otherwise."""
    try:
        yield
    except VaultError as exc:
        stderr.print(str(exc), style="red", markup=False, highlight=False, soft_wrap=True)
        raise typer.Exit(2 if isinstance(exc, USAGE_ERRORS) else 1) from exc


def _read_secret(label: str, *, confirm: bool, empty_ok: bool = False) -> str:
    stdin = sys.stdin
    if stdin.isatty():
        text: str = typer.prompt(
            label, hide_input=True, confirmation_prompt=confirm, default="" if empty_ok else None
        )
        return text
    line = stdin.readline()
    if not line:
        raise VaultUsageError(f"no {label.lower()} on stdin: pipe it as one line, or run in a terminal")
    return line.rstrip("\r\n")


def _open() -> Vault:
    return Vault.open(load_settings(), interactive=True)


def _when(moment: dt.datetime | None) -> str:
    return "" if moment is None else moment.astimezone().strftime("%Y-%m-%d %H:%M")


@app.command()
def init(
    passphrase: Annotated[
        bool,
        typer.Option(
            "--passphrase",
            help="Lock the vault with a passphrase (asked at each start) instead of a key file.",
        ),
    ] = False,
) -> None:
    """Create the vault and its key (the key file, mode 0600, unless HARVEST_VAULT_KEY is set)."""
    with _handled():
        secret = _read_secret("Passphrase", confirm=True) if passphrase else None
        vault = Vault.init(load_settings(), passphrase=secret)
    console.print(f"Created {vault.path} (key from {vault.key_source}).", markup=False)
    if not vault.uses_passphrase:
        console.print("Back up the key apart from the vault: without it the vault cannot be opened.")


@app.command()
def add(
    system: System,
    account: Account,
    username: Annotated[str, typer.Option(help="Login name on the system.")],
    scope: Annotated[str, typer.Option(help="Community whose records the account may see.")],
    notes: Annotated[str, typer.Option(help="Free text for the staff, e.g. who owns the account.")] = "",
    totp: Annotated[
        bool, typer.Option("--totp", help="The account has a TOTP seed: ask for it too.")
    ] = False,
) -> None:
    """Add an account. The password (then the TOTP seed) is asked hidden, or read from stdin."""
    with _handled():
        vault = _open()
        password = _read_secret("Password", confirm=True)
        seed = _read_secret("TOTP seed", confirm=False) if totp else None
        info = vault.add(
            system, account, username=username, password=password, scope=scope, totp_seed=seed, notes=notes
        )
    console.print(f"Added {info.system}/{info.account} ({info.username}, scope {info.scope}).", markup=False)


@app.command("set")
def set_(
    system: System,
    account: Account,
    password: Annotated[
        bool, typer.Option("--password", help="Ask for a new password; un-parks the account.")
    ] = False,
    totp: Annotated[
        bool, typer.Option("--totp", help="Ask for a new TOTP seed (an empty one removes TOTP).")
    ] = False,
    username: Annotated[str | None, typer.Option(help="New login name; un-parks the account.")] = None,
    scope: Annotated[str | None, typer.Option(help="New community.")] = None,
    notes: Annotated[str | None, typer.Option(help="New notes.")] = None,
) -> None:
    """Change an account. New credentials un-park it and drop its saved session."""
    with _handled():
        vault = _open()
        vault.get(system, account)  # an unknown account fails before anyone types a password
        new_password = _read_secret("New password", confirm=True) if password else None
        seed = _read_secret("New TOTP seed", confirm=False, empty_ok=True) if totp else None
        info = vault.set(
            system,
            account,
            password=new_password,
            username=username,
            scope=scope,
            totp_seed=seed,
            notes=notes,
        )
    console.print(f"Changed {info.system}/{info.account}: status {info.status}.", markup=False)


@app.command("list")
def list_(
    system: Annotated[str | None, typer.Argument(help="Only this system's accounts.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")] = False,
) -> None:
    """The accounts: status, why one is parked, last use. Never a secret."""
    with _handled():
        accounts = _open().accounts(system)
    if as_json:
        typer.echo(json.dumps([info.as_dict() for info in accounts], ensure_ascii=False, indent=2))
        return
    table = Table(title=f"Vault accounts ({len(accounts)})")
    for column in (
        "system",
        "account",
        "username",
        "scope",
        "status",
        "why parked",
        "last used",
        "TOTP",
        "notes",
    ):
        table.add_column(column)
    for info in accounts:
        reason = (
            ""
            if info.parked_kind is None
            else f"{info.parked_kind}: {info.parked_message} ({_when(info.parked_at)})"
        )
        table.add_row(
            info.system,
            info.account,
            info.username,
            info.scope,
            "[red]parked[/red]" if info.status == "parked" else "ok",
            reason,
            _when(info.last_used),
            "yes" if info.has_totp else "",
            info.notes,
        )
    console.print(table)


@app.command()
def remove(system: System, account: Account) -> None:
    """Remove an account and its saved session."""
    with _handled():
        _open().remove(system, account)
    console.print(f"Removed {system}/{account}.", markup=False)


@app.command()
def status() -> None:
    """Where the vault and its key are, how many accounts it holds and how many are parked."""
    settings = load_settings()
    path = settings.data_dir / VAULT_FILE
    header: Header | None = None
    with contextlib.suppress(OSError, VaultError):
        header = read_header(path.read_bytes(), path)[0]
    console.print(
        f"vault file: {path}{'' if path.exists() else ' (none yet: harvest vault init)'}", markup=False
    )
    console.print(f"key from:   {describe_source(settings, header)}", markup=False)
    with _handled():
        accounts = _open().accounts()
    parked = sum(info.status == "parked" for info in accounts)
    console.print(f"accounts:   {len(accounts)}, parked: {parked}")


@app.command("rotate-key")
def rotate_key() -> None:
    """Re-encrypt the vault under a new key (or a new passphrase); a crash midway loses nothing."""
    with _handled():
        vault = _open()
        passphrase = _read_secret("New passphrase", confirm=True) if vault.uses_passphrase else None
        vault.rotate_key(passphrase=passphrase)
    console.print(f"{vault.path} is now under a new key ({vault.key_source}).", markup=False)
    if not vault.uses_passphrase:
        console.print("Replace your backup of the key: the old key no longer opens the vault.")


if __name__ == "__main__":
    app()
