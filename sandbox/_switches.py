"""The behaviours of a sandbox system that tests and demos turn on and off."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field


class Switches(BaseModel):
    """Per-system switches; assignment is validated, so a test can flip one at run time."""

    model_config = ConfigDict(validate_assignment=True, extra="forbid")

    captcha: bool = Field(default=False, description="Ask for a distorted-text image captcha at login.")
    lockout_threshold: int = Field(default=3, ge=1, description="Wrong passwords in a row that lock.")
    lockout_minutes: float = Field(default=15, gt=0, description="How long a locked account stays locked.")
    idle_timeout_s: float = Field(default=1800, gt=0, description="Idle seconds before a session expires.")
    single_session: bool = Field(default=True, description="A new login ends the account's other sessions.")
    layout_changed: bool = Field(default=False, description="Rename a column header and reorder columns.")
    fault_500_rate: float = Field(default=0, ge=0, le=1, description="Share of requests answered 500.")
    fault_drop_rate: float = Field(default=0, ge=0, le=1, description="Share of connections dropped.")
    fault_slow_rate: float = Field(default=0, ge=0, le=1, description="Share of responses delayed.")
    slow_seconds: float = Field(default=2.0, ge=0, description="Delay of a slow response.")
    cards_per_batch: int = Field(default=20, ge=1, le=100, description="Cards per 加载更多 batch (market).")
    rate_limit_per_s: float = Field(
        default=0, ge=0, description="Requests per second per client before 429 (0: no limit)."
    )
    serve_at_once: int = Field(
        default=0, ge=0, description="Requests served at once; the others queue (0: no limit)."
    )
    work_seconds: float = Field(default=0, ge=0, description="Seconds each request takes to serve.")

    login_fault: Literal["", "500", "drop"] = Field(
        default="",
        description="Answer each login POST with a 500 or a drop, after checking the password.",
    )
    unfamiliar_texts: bool = Field(
        default=False, description="Login errors in wording no framework knows (vendor codes)."
    )
    hashed_password: bool = Field(
        default=False,
        description="The login page's script posts the password's SHA-256 instead (standard login page).",
    )

    def set_from_text(self, name: str, value: str) -> None:
        """Set one switch from its command-line spelling, e.g. ``captcha`` and ``true``."""
        if name not in type(self).model_fields:
            known = ", ".join(type(self).model_fields)
            raise ValueError(f"unknown sandbox switch {name!r}; known switches: {known}")
        setattr(self, name, value)
