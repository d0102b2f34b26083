"""One typed settings object for the whole project.

Every field can be set from the environment with the ``HARVEST_`` prefix
(``HARVEST_DATA_DIR=/srv/harvest``) or from a ``.env`` file in the working directory.
README.md documents each field; a test keeps the two in step.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    """Where gridharvest keeps its data and how it reaches its tools."""

    model_config = SettingsConfigDict(env_prefix="HARVEST_", env_file=".env", extra="ignore")

    data_dir: Path = Field(
        default=Path("data"), description="Folder for the database, logs and run artifacts."
    )
    database_url: str | None = Field(
        default=None,
        description="SQLAlchemy URL of the snapshot database; default: a SQLite file in the data dir.",
    )
    chromium: Path = Field(
        default=Path("/usr/bin/chromium"), description="Chromium executable that Playwright drives."
    )
    headless: bool = Field(default=True, description="Run Chromium without a window.")
    sandbox_host: str = Field(default="127.0.0.1", description="Address the sandbox systems listen on.")
    sandbox_port: int = Field(
        default=8701,
        description="First port of the sandbox systems; each further system takes the next one.",
    )
    sandbox_seed: int = Field(default=7, description="Seed of the sandbox's synthetic data.")
    sandbox_persons: int = Field(default=5000, description="Persons in the sandbox's population.")
    sandbox_communities: int = Field(default=4, description="Communities the sandbox persons live in.")

    system_urls: dict[str, str] = Field(
        default_factory=dict,
        description='Base URL of a system by name, overriding its declaration (JSON: {"population": "http://…"}).',
    )
    context_recycle_pages: int = Field(
        default=200, ge=1, description="Pages a browser context serves before it is recycled (bounds memory)."
    )
    max_pages: int = Field(
        default=10_000,
        ge=1,
        description="Pages one list may have: a walk reaching it stops as drift (per robot: max_pages=).",
    )
    captcha_attempts: int = Field(
        default=6, ge=1, description="Captchas read by OCR before a person is asked (or the run needs one)."
    )
    log_json: bool = Field(default=False, description="Also write JSON log lines to logs/harvest.jsonl.")
    vault_key: SecretStr | None = Field(
        default=None,
        description="The vault key itself (from `harvest vault init`); wins over the key file. Never shown.",
    )
    vault_key_file: Path | None = Field(
        default=None,
        description="File holding the vault key (mode 0600); default: vault.key in the data dir.",
    )
    alert_dingtalk_url: str | None = Field(
        default=None,
        description="DingTalk custom robot webhook (…/robot/send?access_token=…) that gets alerts.",
    )
    alert_dingtalk_secret: SecretStr | None = Field(
        default=None,
        description="The DingTalk robot's 加签 secret (SEC…): alerts are signed with it. Never shown.",
    )
    alert_wecom_url: str | None = Field(
        default=None, description="WeCom group robot webhook (…/webhook/send?key=…) that gets alerts."
    )
    alert_webhook_url: str | None = Field(
        default=None, description="Any URL that gets each alert POSTed as JSON (fields plus Chinese text)."
    )

    timezone: str = Field(default="Asia/Shanghai", description="Time zone of schedules and allowed hours.")
    schedules: dict[str, str] = Field(
        default_factory=dict,
        description='Cron line per robot, overriding its declaration (JSON: {"persons": "0 3 * * *"}).',
    )
    schedule_jitter_s: int = Field(
        default=300,
        ge=0,
        description="Random delay of each scheduled run, so units do not all log in at once.",
    )
    misfire_grace_s: int = Field(
        default=6 * 3600, ge=1, description="How late a missed run may still start (a machine that was off)."
    )
    scheduler_workers: int = Field(default=4, ge=1, description="Runs the scheduler may have going at once.")
    retry_limit: int = Field(
        default=3, ge=0, description="Retries of a run that found its system unavailable."
    )
    retry_base_s: float = Field(default=600, gt=0, description="First retry delay; each further one doubles.")
    max_age_hours: float = Field(default=36, gt=0, description="Age after which a dataset counts as stale.")
    freshness_check_s: int = Field(default=600, ge=1, description="How often the scheduler checks freshness.")
    stop_timeout_s: float = Field(
        default=300,
        ge=0,
        description="On SIGTERM, how long a running robot may finish before it is cancelled.",
    )

    retention_days: int | None = Field(
        default=None,
        ge=1,
        description="Purge gone records and history older than this many days (unset: keep).",
    )

    desk_host: str = Field(default="127.0.0.1", description="Address `harvest serve` (the desk) listens on.")
    desk_port: int = Field(default=8700, ge=0, le=65535, description="Port the desk listens on.")
    desk_session_hours: float = Field(
        default=12, gt=0, description="A desk login ends this many hours after it began, however busy."
    )
    desk_idle_minutes: float = Field(
        default=30, gt=0, description="A desk login ends after this many minutes without a request."
    )
    desk_login_failures: int = Field(
        default=5, ge=1, description="Failed desk logins, per user name or per client, that lock it."
    )
    desk_lock_minutes: float = Field(
        default=15, gt=0, description="How long a desk lock lasts, and the window failures count within."
    )
    desk_trusted_proxies: list[str] = Field(
        default_factory=list,
        description='Addresses of reverse proxies whose X-Forwarded-For the desk believes (JSON: ["127.0.0.1"]).',
    )

    @property
    def resolved_database_url(self) -> str:
        """The database URL in force: the configured one, or SQLite in the data dir."""
        return self.database_url or f"sqlite:///{self.data_dir / 'harvest.db'}"

    @property
    def resolved_vault_key_file(self) -> Path:
        """The vault key file in force: the configured one, or vault.key in the data dir."""
        return self.vault_key_file or self.data_dir / "vault.key"


def load_settings(**overrides: object) -> Settings:
    """Read settings from the environment; keyword arguments win over it."""
    return Settings(**overrides)  # type: ignore[arg-type]


class ConfigurationError(ValueError):
    """A setting, a schedule or a declaration that cannot work as written: one line that names the fix.

    The CLI prints it as one line and exits 2; nothing has been sent or written when it is raised.
    """
