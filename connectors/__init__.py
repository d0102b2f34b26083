"""Connectors: how gridharvest reaches each vertical system.

Modules named ``_*.py`` are the framework (browser lifecycle, login, captcha, session
health, polite fetching); every other module declares one of the unit's systems, like
``connectors/sandbox.py`` declares the bundled sandbox systems.
"""

from connectors._browser import (
    CHROMIUM_ARGS,
    ChromiumMissing,
    launch_browser,
    launch_options,
    owned_browsers,
    sweep_orphan_browsers,
)
from connectors._captcha import OcrSolver, SolverChain, TerminalSolver, read_captcha
from connectors._errors import (
    EXIT_CODES,
    AccountLocked,
    BadCredentials,
    HarvestFailure,
    LayoutChanged,
    LoginFormMissing,
    LoginUnconfirmed,
    LoginUnrecognised,
    NeedsHuman,
    NeedsPerson,
    SessionTaken,
    SystemUnavailable,
)
from connectors._login import Credentials, LoginAttempt, LoginLedger, MemoryLedger
from connectors._polite import Polite, backoff
from connectors._session import Fetched, Session
from connectors._system import FormLogin, LoginOutcome, Politeness, System

__all__ = [
    "CHROMIUM_ARGS",
    "EXIT_CODES",
    "AccountLocked",
    "BadCredentials",
    "ChromiumMissing",
    "Credentials",
    "Fetched",
    "FormLogin",
    "HarvestFailure",
    "LayoutChanged",
    "LoginAttempt",
    "LoginFormMissing",
    "LoginLedger",
    "LoginOutcome",
    "LoginUnconfirmed",
    "LoginUnrecognised",
    "MemoryLedger",
    "NeedsHuman",
    "NeedsPerson",
    "OcrSolver",
    "Polite",
    "Politeness",
    "Session",
    "SessionTaken",
    "SolverChain",
    "System",
    "SystemUnavailable",
    "TerminalSolver",
    "backoff",
    "launch_browser",
    "launch_options",
    "owned_browsers",
    "read_captcha",
    "sweep_orphan_browsers",
]
