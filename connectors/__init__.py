"""Connectors: how gridharvest reaches each vertical system.

Modules named ``_*.py`` are the framework (browser lifecycle, login, captcha, session
health, polite fetching); every other module declares one of the unit's systems, like
``connectors/sandbox.py`` declares the bundled sandbox systems.
"""

from connectors._browser import (
    CHROMIUM_ARGS,
    TEMP_PREFIX,
    Chromium,
    ChromiumMissing,
    launch_browser,
    launch_options,
    owned_browsers,
    start_playwright,
    sweep_orphan_browsers,
    sweep_temp_roots,
)
from connectors._captcha import OcrSolver, SolverChain, TerminalSolver, read_captcha
from connectors._errors import (
    AccountBusy,
    AccountLocked,
    BadCredentials,
    DiskFull,
    HarvestFailure,
    LayoutChanged,
    LocalFailure,
    LoginFormMissing,
    LoginUnconfirmed,
    LoginUnrecognised,
    NeedsHuman,
    NeedsPerson,
    SessionRenewed,
    SessionTaken,
    SystemUnavailable,
    failure_class,
)
from connectors._fetcher import Fetched, Fetcher
from connectors._login import Credentials, LoginAttempt, LoginLedger, MemoryLedger
from connectors._polite import Pace, Polite, backoff
from connectors._session import Session
from connectors._system import FormLogin, LoginOutcome, Politeness, System
from connectors._systems import configured, systems

__all__ = [
    "CHROMIUM_ARGS",
    "TEMP_PREFIX",
    "AccountBusy",
    "AccountLocked",
    "BadCredentials",
    "Chromium",
    "ChromiumMissing",
    "Credentials",
    "DiskFull",
    "Fetched",
    "Fetcher",
    "FormLogin",
    "HarvestFailure",
    "LayoutChanged",
    "LocalFailure",
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
    "Pace",
    "Polite",
    "Politeness",
    "Session",
    "SessionRenewed",
    "SessionTaken",
    "SolverChain",
    "System",
    "SystemUnavailable",
    "TerminalSolver",
    "backoff",
    "configured",
    "failure_class",
    "launch_browser",
    "launch_options",
    "owned_browsers",
    "read_captcha",
    "start_playwright",
    "sweep_orphan_browsers",
    "sweep_temp_roots",
    "systems",
]
