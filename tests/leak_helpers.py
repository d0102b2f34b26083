"""Helpers of the leak test: the secrets a harvest handled, where they may hide, and who saw them.

A hit names the file (or process) and the secret's *name*, never its value: the report of a
leak must not be a leak itself.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote, quote_plus

from sandbox import Sandbox


@dataclass
class Secrets:
    """Secret values by a printable name; several names may share a value."""

    values: dict[str, str] = field(default_factory=dict)

    def __repr__(self) -> str:
        return f"Secrets({', '.join(self.values)})"

    def add(self, name: str, value: str | None) -> None:
        if value and value not in self.values.values():
            self.values[name] = value

    def names(self) -> list[str]:
        return list(self.values)

    def forms(self) -> Iterator[tuple[str, str, bytes]]:
        """(secret name, form name, bytes) for every way the secret could be written down."""
        for name, value in self.values.items():
            seen: set[bytes] = set()
            for form, text in _text_forms(value).items():
                for encoding in ("utf-8", "utf-16-le"):
                    raw = text.encode(encoding)
                    if raw not in seen:
                        seen.add(raw)
                        yield name, f"{form}/{encoding}", raw


def _text_forms(value: str) -> dict[str, str]:
    return {
        "plain": value,
        "url-encoded": quote(value, safe=""),
        "form-encoded": quote_plus(value),
        "json-escaped": json.dumps(value)[1:-1],
    }


@dataclass(frozen=True)
class Hit:
    where: str
    secret: str
    form: str

    def __str__(self) -> str:
        return f"{self.where}: {self.secret} ({self.form})"


def search_files(root: Path, secrets: Secrets) -> list[Hit]:
    """Every (file under ``root``, secret) whose bytes contain the secret in any form."""
    hits: list[Hit] = []
    forms = list(secrets.forms())
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        data = path.read_bytes()
        for name, form, raw in forms:
            if raw in data:
                hits.append(Hit(str(path.relative_to(root)), name, form))
    return hits


def files_under(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file())


class IssuedTokens:
    """Records every session token the sandbox's gates hand out while installed.

    The gates forget tokens (a login replaces the pre-login token, an ended session is
    dropped once it has been reported), so reading ``gate.sessions`` afterwards misses some.
    """

    def __init__(self, sandbox: Sandbox) -> None:
        self.sandbox = sandbox
        self.tokens: dict[str, list[str]] = {code: [] for code in sandbox.systems}

    def __enter__(self) -> IssuedTokens:
        for code, system in self.sandbox.systems.items():
            gate = system.gate
            original = gate._new_session
            issued = self.tokens[code]

            def recording(original: Any = original, issued: list[str] = issued) -> Any:
                session = original()
                issued.append(session.token)
                return session

            gate._new_session = recording  # type: ignore[method-assign]
        return self

    def __exit__(self, *exc: object) -> None:
        for system in self.sandbox.systems.values():
            vars(system.gate).pop("_new_session", None)

    def all(self) -> Iterator[tuple[str, str]]:
        """(system, token) of every token issued, plus any still held or ended in the gates."""
        for code, system in self.sandbox.systems.items():
            gate = system.gate
            yield from ((code, t) for t in [*self.tokens[code], *gate.sessions, *gate._ended])


class CommandLines:
    """Samples ``/proc/*/cmdline`` of every process every ``interval`` seconds, in a thread."""

    def __init__(self, interval: float = 0.05, proc: Path = Path("/proc")) -> None:
        self.interval = interval
        self.proc = proc
        self.seen: dict[bytes, str] = {}  # command line → "pid N (comm)" of the first process seen with it
        self.samples = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="cmdline-sampler", daemon=True)

    def __enter__(self) -> CommandLines:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def _loop(self) -> None:
        while True:
            self._sample()
            if self._stop.wait(self.interval):
                self._sample()  # one last look after the harvest
                return

    def _sample(self) -> None:
        self.samples += 1
        for entry in self.proc.iterdir():
            if not entry.name.isdigit():
                continue
            try:
                cmdline = (entry / "cmdline").read_bytes()
                if cmdline and cmdline not in self.seen:
                    comm = (entry / "comm").read_text().strip()
                    self.seen[cmdline] = f"pid {entry.name} ({comm})"
            except OSError:  # the process ended meanwhile, or is not ours to read
                continue

    def search(self, secrets: Secrets) -> list[Hit]:
        forms = list(secrets.forms())
        return [
            Hit(f"command line of {who}", name, form)
            for cmdline, who in self.seen.items()
            for name, form, raw in forms
            if raw in cmdline
        ]

    def programs(self) -> Iterable[str]:
        return self.seen.values()
