"""One typed settings object for the whole project.

Every field can be set from the environment with the ``HARVEST_`` prefix
(``HARVEST_DATA_DIR=/srv/harvest``) or from a ``.env`` file in the working directory.
README.md documents each field; a test keeps the two in step.
"""

from __future__ import annotations

import ipaddress
import json
import re
import typing
from pathlib import Path
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_core import ErrorDetails
from pydantic_settings import BaseSettings, SettingsConfigDict, SettingsError

from machine import zone


class PolitenessLimits(BaseModel):
    """A unit's own limits for one system, over what its declaration says (``connectors.Politeness``)."""

    model_config = ConfigDict(extra="forbid")

    concurrency: int | None = Field(default=None, ge=1)
    sessions: int | None = Field(default=None, ge=1)
    rate: float | None = Field(default=None, gt=0)
    hours: tuple[Annotated[int, Field(ge=0, le=23)], Annotated[int, Field(ge=0, le=23)]] | None = None
    retries: int | None = Field(default=None, ge=0)

    def given(self) -> dict[str, Any]:
        return self.model_dump(exclude_unset=True)


class DigestTarget(BaseModel):
    """Where one desk user's daily digest goes: one webhook (its URL carries a token: a secret)."""

    model_config = ConfigDict(extra="forbid")

    dingtalk: str | None = None
    secret: SecretStr | None = None  # the DingTalk robot's 加签 secret
    wecom: str | None = None
    webhook: str | None = None

    @model_validator(mode="after")
    def _one_webhook(self) -> DigestTarget:
        urls = [url for url in (self.dingtalk, self.wecom, self.webhook) if url]
        if len(urls) != 1:
            raise ValueError("每个用户写一个推送地址：dingtalk、wecom 或 webhook 中的一个")
        _check_web_url(urls[0], "推送地址 ")
        if self.secret and not self.dingtalk:
            raise ValueError("secret 是钉钉机器人的加签密钥，只能与 dingtalk 一起写")
        return self


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
    politeness: dict[str, PolitenessLimits] = Field(
        default_factory=dict,
        description="A system's politeness by name, over its declaration: the ceilings the unit allows "
        '(JSON: {"population": {"concurrency": 2, "rate": 5, "hours": [22, 6]}}).',
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
    executor: Literal["local", "dramatiq"] = Field(
        default="local",
        description="Where the scheduler's runs go: its own threads (local), or the worker pool over Redis.",
    )
    redis_url: SecretStr | None = Field(
        default=None,
        description="Redis of the worker pool (redis://:password@host:6379/0); its password is never shown.",
    )
    worker_threads: int = Field(default=2, ge=1, description="Runs one `harvest worker` has going at once.")
    worker_heartbeat_s: float = Field(
        default=60,
        gt=0,
        description="Seconds a worker may go silent before its run counts as orphaned and goes to another.",
    )
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
    account_wait_s: float = Field(
        default=60,
        ge=0,
        description="How long a run waits for another run of its account to end, then refuses: account_busy.",
    )

    retention_days: int | None = Field(
        default=None,
        ge=1,
        description="Purge gone records and history older than this many days (unset: keep).",
    )

    desk_host: str = Field(default="127.0.0.1", description="Address `harvest serve` (the desk) listens on.")
    desk_port: int = Field(default=8700, ge=0, le=65535, description="Port the desk listens on.")
    desk_workers: int = Field(
        default=1, ge=1, le=64, description="Processes `harvest serve` answers with (about one per CPU core)."
    )
    desk_session_hours: float = Field(
        default=12, gt=0, description="A desk login ends this many hours after it began, however busy."
    )
    desk_idle_minutes: float = Field(
        default=30, gt=0, description="A desk login ends after this many minutes without a request."
    )
    desk_login_failures: int = Field(
        default=5,
        ge=1,
        description="Failed desk logins of one user name that lock it; from one address, those after which "
        "each attempt waits longer (1 s, 2 s, 4 s … a minute at most), never a lock.",
    )
    desk_lock_minutes: float = Field(
        default=15,
        gt=0,
        description="How long a locked desk user name stays locked, and the window failures count within.",
    )
    communities: dict[str, str] = Field(
        default_factory=dict,
        description="The Chinese name of each community code the accounts' scopes use, shown on the desk "
        '(JSON: {"donghu": "东湖社区"}); a code without one shows as it is.',
    )
    desk_url: str = Field(
        default="http://127.0.0.1:8700",
        description="The desk's address as staff open it: the daily digest links to its 本期变动 page.",
    )
    desk_digests: dict[str, DigestTarget] = Field(
        default_factory=dict,
        description="Desk user -> the webhook that gets their grid's daily digest; URLs and secrets are "
        'never shown (JSON: {"wang": {"dingtalk": "https://…", "secret": "SEC…"}}; or "wecom" or "webhook").',
    )
    desk_digest_at: str = Field(
        default="07:30",
        description="Time of day (HH:MM) `harvest schedule` sends the daily digests, when any is configured.",
    )
    desk_trusted_proxies: list[str] = Field(
        default_factory=list,
        description='Reverse proxies (addresses or networks) whose X-Forwarded-For the desk believes (JSON).',
    )

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, name: str) -> str:
        try:
            zone(name)
        except ValueError:
            raise ValueError(f"{name!r} 不是已知的时区；写成 IANA 时区名，例如 Asia/Shanghai") from None
        return name

    @field_validator("database_url")
    @classmethod
    def _usable_database(cls, url: str | None) -> str | None:
        if url is not None:
            _check_database_url(url)
        return url

    @field_validator("system_urls")
    @classmethod
    def _web_addresses(cls, urls: dict[str, str]) -> dict[str, str]:
        for name, url in urls.items():
            _check_web_url(url, f"系统 {name} 的网址 ")
        return urls

    @field_validator("alert_dingtalk_url", "alert_wecom_url", "alert_webhook_url", "desk_url")
    @classmethod
    def _webhook(cls, url: str | None) -> str | None:
        if url is not None:
            _check_web_url(url, "")
        return url

    @field_validator("redis_url")
    @classmethod
    def _redis_address(cls, url: SecretStr | None) -> SecretStr | None:
        if url is not None:
            parts = urlsplit(url.get_secret_value())
            if parts.scheme not in ("redis", "rediss", "unix") or not (parts.hostname or parts.path):
                raise ValueError(
                    f"{_redacted(url.get_secret_value())!r} 不是 Redis 网址；"
                    "写成 redis://:密码@主机:6379/0（TLS 用 rediss://）"
                )
        return url

    @field_validator("desk_digest_at")
    @classmethod
    def _clock_time(cls, text: str) -> str:
        if not re.fullmatch(r"([01]\d|2[0-3]):[0-5]\d", text):
            raise ValueError(f"{text[:20]!r} 不是一天中的时刻；写成 HH:MM，例如 07:30")
        return text

    @field_validator("desk_trusted_proxies")
    @classmethod
    def _proxy_addresses(cls, addresses: list[str]) -> list[str]:
        for address in addresses:
            try:
                ipaddress.ip_network(address, strict=False)
            except ValueError:
                raise ValueError(
                    f'{_redacted(address)!r} 不是 IP 地址；写成地址的 JSON 列表，例如 ["127.0.0.1"]'
                ) from None
        return addresses

    @property
    def resolved_database_url(self) -> str:
        """The database URL in force: the configured one, or SQLite in the data dir."""
        return self.database_url or f"sqlite:///{self.data_dir / 'harvest.db'}"

    @property
    def resolved_vault_key_file(self) -> Path:
        """The vault key file in force: the configured one, or vault.key in the data dir."""
        return self.vault_key_file or self.data_dir / "vault.key"


def _check_web_url(url: str, whose: str) -> None:
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(
            f"{whose}{_redacted(url)!r} 不是 http(s) 网址；写成带主机名的完整网址，例如 http://10.1.2.3:8080"
        )


def _check_database_url(url: str) -> None:
    """The URL parses, SQLAlchemy knows its dialect and its driver is installed: else one line why."""
    shown = repr(_redacted(url))
    example = "例如 sqlite:////srv/harvest/harvest.db 或 postgresql+psycopg://用户@主机/库"
    import sqlalchemy as sa  # slow to import: only when a database URL is given, not at every start

    try:
        dialect = sa.make_url(url).get_dialect()
    except sa.exc.NoSuchModuleError:  # a subclass of ArgumentError: first
        raise ValueError(f"SQLAlchemy 不认识 {shown} 的数据库种类；{example}") from None
    except sa.exc.ArgumentError:
        raise ValueError(f"{shown} 不是 SQLAlchemy 数据库网址；{example}") from None
    try:
        dialect.import_dbapi()
    except ImportError as exc:
        raise ValueError(
            f"{shown} 要用的数据库驱动 {exc.name or dialect.driver} 没有安装；"
            "在项目的 venv 里安装它，或换一种数据库网址"
        ) from None


# Values never shown in a message: secrets, and the parts of a URL that carry tokens or passwords.
_SECRET_FIELDS = frozenset(
    name
    for name, info in Settings.model_fields.items()
    if SecretStr in (info.annotation, *typing.get_args(info.annotation))
) | {"desk_digests"}  # webhook URLs and secrets, nested
_QUERY = re.compile(r"[?#][^\s'\"]*")
_PASSWORD = re.compile(r"(://[^/\s:@]*):[^/\s@]*@")


def _redacted(value: object) -> str:
    """``value`` as a message may show it: query strings and URL passwords blanked."""
    text = str(value) if isinstance(value, str) else repr(value)
    return _PASSWORD.sub(r"\1:***@", _QUERY.sub("?…", text))


def _json_example(name: str) -> str:
    """The JSON example a field's description gives (``JSON: {"persons": …}``), if any."""
    found = re.search(r"JSON[^\[{]*([\[{].*[\]}])", Settings.model_fields[name].description or "")
    return f"，例如 {found.group(1)}" if found else ""


_PROBLEMS = {
    "int_parsing": "不是整数",
    "int_from_float": "不是整数",
    "float_parsing": "不是数字",
    "bool_parsing": "不是 true 或 false",
    "dict_type": "不是 JSON 对象",
    "list_type": "不是 JSON 列表",
    "string_type": "不是文字",
    "greater_than": "应大于 {gt}",
    "greater_than_equal": "应不小于 {ge}",
    "less_than": "应小于 {lt}",
    "less_than_equal": "应不大于 {le}",
}


def _explain(error: ErrorDetails, more: int) -> str:
    """One pydantic error as one line: the setting, the value's problem, the fix."""
    name = str(error["loc"][0])
    where = "".join(f" 中 {part}" for part in error["loc"][1:])
    context: dict[str, Any] = dict(error.get("ctx") or {})
    others = f"（另有 {more} 处设置有误）" if more else ""
    if error["type"] == "value_error":  # our validators' messages name the value themselves
        return f"设置 HARVEST_{name.upper()}{where} 有误：{context['error']}{others}"
    shown = "（不显示）" if name in _SECRET_FIELDS else repr(_redacted(error["input"]))
    default = Settings.model_fields[name].get_default(call_default_factory=True)
    default_text = "不设" if default is None else json.dumps(default, ensure_ascii=False, default=str)
    return (
        f"设置 HARVEST_{name.upper()}{where} 的值 {shown} 有误："
        f"{_PROBLEMS.get(error['type'], error['msg']).format(**context)}；改正它{_json_example(name)}，"
        f"或删去它（环境变量或 .env 文件里的）以用默认值 {default_text}{others}"
    )


def load_settings(**overrides: object) -> Settings:
    """Read settings from the environment; keyword arguments win over it.

    A malformed setting is a ``ConfigurationError`` whose one line names the setting and the fix.
    """
    try:
        return Settings(**overrides)  # type: ignore[arg-type]
    except ValidationError as exc:
        errors = exc.errors()
        raise ConfigurationError(_explain(errors[0], len(errors) - 1)) from None
    except SettingsError as exc:  # a JSON setting that does not parse at all
        found = re.search(r'field "(\w+)"', str(exc))
        name = found.group(1) if found else "?"
        cause = exc.__cause__
        at = f"（第 {cause.lineno} 行第 {cause.colno} 列）" if isinstance(cause, json.JSONDecodeError) else ""
        raise ConfigurationError(
            f"设置 HARVEST_{name.upper()} 不是合法的 JSON{at}；改正它{_json_example(name)}"
        ) from None


class ConfigurationError(ValueError):
    """A setting, a schedule or a declaration that cannot work as written: one line that names the fix.

    The CLI prints it as one line and exits 2; nothing has been sent or written when it is raised.
    """
