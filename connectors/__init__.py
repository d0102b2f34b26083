"""Connectors: how gridharvest reaches each vertical system.

Modules named ``_*.py`` are the framework (browser lifecycle, login, captcha, session
health, polite fetching); every other module declares one of the unit's systems, like
``connectors/sandbox.py`` declares the bundled sandbox systems.

Importing the package loads none of the framework: each name below is loaded from its module on
first use, so ``connectors._browser`` can start Playwright's driver before the rest is imported
(``harvest run`` overlaps the two).
"""

from __future__ import annotations

import importlib
from typing import Any

# Where each public name lives.
_EXPORTS = {
    "CHROMIUM_ARGS": "connectors._browser",
    "TEMP_PREFIX": "connectors._browser",
    "AccountBusy": "connectors._errors",
    "AccountLocked": "connectors._errors",
    "BadCredentials": "connectors._errors",
    "Chromium": "connectors._browser",
    "ChromiumMissing": "connectors._browser",
    "Credentials": "connectors._login",
    "DiskFull": "connectors._errors",
    "Fetched": "connectors._fetcher",
    "Fetcher": "connectors._fetcher",
    "FormLogin": "connectors._system",
    "HarvestFailure": "connectors._errors",
    "LayoutChanged": "connectors._errors",
    "LocalFailure": "connectors._errors",
    "LoginAttempt": "connectors._login",
    "LoginFormMissing": "connectors._errors",
    "LoginLedger": "connectors._login",
    "LoginOutcome": "connectors._system",
    "LoginUnconfirmed": "connectors._errors",
    "LoginUnrecognised": "connectors._errors",
    "MemoryLedger": "connectors._login",
    "NeedsHuman": "connectors._errors",
    "NeedsPerson": "connectors._errors",
    "OcrSolver": "connectors._captcha",
    "Pace": "connectors._polite",
    "Polite": "connectors._polite",
    "Politeness": "connectors._system",
    "Session": "connectors._session",
    "SessionRenewed": "connectors._errors",
    "SessionTaken": "connectors._errors",
    "SolverChain": "connectors._captcha",
    "System": "connectors._system",
    "SystemUnavailable": "connectors._errors",
    "TerminalSolver": "connectors._captcha",
    "backoff": "connectors._polite",
    "configured": "connectors._systems",
    "failure_class": "connectors._errors",
    "launch_browser": "connectors._browser",
    "launch_options": "connectors._browser",
    "owned_browsers": "connectors._browser",
    "read_captcha": "connectors._captcha",
    "start_playwright": "connectors._browser",
    "sweep_orphan_browsers": "connectors._browser",
    "sweep_temp_roots": "connectors._browser",
    "systems": "connectors._systems",
}
__all__ = list(_EXPORTS)


def __getattr__(name: str) -> Any:
    where = _EXPORTS.get(name)
    if where is None:
        raise AttributeError(f"module 'connectors' has no attribute {name!r}")
    value = getattr(importlib.import_module(where), name)
    globals()[name] = value  # asked once
    return value
