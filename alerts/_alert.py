"""The alert itself and its Chinese rendering: what happened, where, and what to do."""

from __future__ import annotations

import datetime as dt
from dataclasses import asdict, dataclass, field
from typing import Any, Literal, get_args

from machine import local_time, utc_now, zone_label

Kind = Literal[
    "bad_credentials",
    "locked",
    "needs_human",
    "layout_changed",
    "system_unavailable",
    "disk_full",
    "stale",
    "recovered",
    "error",
]
KINDS: tuple[str, ...] = get_args(Kind)

PREFIX = "【数据采集】"


@dataclass(frozen=True, kw_only=True)
class Alert:
    """One thing a person should know about a harvest.

    ``message`` is the run's one-line English message, kept as a detail line. ``account``,
    ``robot``, ``dataset`` and ``run_id`` are None where they do not apply (a stale dataset
    has no run). ``max_age_hours`` is the dataset's maximum age, for ``stale`` alerts.
    """

    kind: Kind
    system: str
    system_title: str
    account: str | None = None
    robot: str | None = None
    dataset: str | None = None
    message: str = ""
    run_id: str | None = None
    at: dt.datetime = field(default_factory=utc_now)
    max_age_hours: float | None = None

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"unknown alert kind {self.kind!r}; one of {', '.join(KINDS)}")
        if self.at.tzinfo is None or self.at.utcoffset() is None:
            raise ValueError("Alert.at must be an aware datetime (give it a tzinfo)")

    def to_dict(self) -> dict[str, Any]:
        """Every field as JSON-ready values (``at`` in ISO 8601 with its offset)."""
        return asdict(self) | {"at": self.at.isoformat()}


def _hours(value: float | None) -> str:
    if value is None:
        return "规定时间"
    return f"{value:g} 小时"


def _what_and_fix(a: Alert) -> tuple[str, str]:
    """The headline (after the prefix) and what a person should do, per kind."""
    who = f"{a.system_title} 账号 {a.account}" if a.account else a.system_title
    data = f"{a.system_title}「{a.dataset}」数据" if a.dataset else f"{a.system_title}数据"
    account = a.account or "ACCOUNT"
    robot = a.robot or "ROBOT"
    run_dir = f"数据目录下的 `runs/{a.run_id}/`" if a.run_id else "数据目录下该次运行的 `runs/` 文件夹"
    vault_set = f"`harvest vault set {a.system} {account} --password`"
    match a.kind:
        case "bad_credentials":
            return (
                f"{who} 密码错误，已停用该账号",
                f"请核对密码后运行 {vault_set}，账号随即恢复采集（停用期间不会再尝试登录，以免被锁定）",
            )
        case "locked":
            return (
                f"{who} 已被系统锁定，已停用该账号",
                f"请联系 {a.system_title} 管理员解锁（或等锁定期满）并核对密码，然后运行 {vault_set}",
            )
        case "needs_human":
            return (
                f"{who} 登录需要人工处理",
                f"验证码未能自动识别时，请在有人值守的终端运行 `harvest run {robot} --account {account}`，"
                f"按提示输入验证码；若账号已停用（登录结果无法识别或登录多次无应答），请查看{run_dir}中的"
                f"登录页截图，人工登录一次确认账号正常后运行 {vault_set}",
            )
        case "layout_changed":
            return (
                f"{who} 页面结构已变化，本次采集未发布任何数据",
                f"请查看{run_dir}中保存的页面和截图，按新页面修改采集机器人 {robot} 的表头或字段，"
                f"再运行 `harvest run {robot} --account {account}`；现有数据保持不变",
            )
        case "system_unavailable":
            return (
                f"{who} 系统暂时无法访问，本次采集未完成",
                "一般无需处理：系统恢复后会按计划自动重试；若长时间未恢复，请确认该系统能否从本机访问",
            )
        case "disk_full":
            return (
                f"{who} 的采集因本机磁盘已满而中止，本次未发布任何数据",
                "请清理数据目录所在磁盘（`df -h` 查看），腾出空间后下次计划会自动重试；"
                f"也可立即运行 `harvest run {robot} --account {account}`",
            )
        case "stale":
            return (
                f"{data}已超过 {_hours(a.max_age_hours)}未更新",
                "请运行 `harvest status` 和 `harvest runs` 查看最近的采集为何没有成功，并处理相应的告警",
            )
        case "recovered":
            return (
                f"{data}已恢复更新" + (f"（账号 {a.account}）" if a.account else ""),
                "无需处理：此前的告警已解除",
            )
        case _:  # "error"
            return (
                f"{who} 的采集机器人 {robot} 运行出错",
                f"请查看{run_dir}里的 `traceback.txt`，修复机器人后运行 "
                f"`harvest run {robot} --account {account}`",
            )


def render(alert: Alert) -> tuple[str, str]:
    """The alert as a Chinese title and a Markdown body that says what happened and what to do."""
    what, fix = _what_and_fix(alert)
    title = PREFIX + what
    facts = [f"- 系统：{alert.system_title}（`{alert.system}`）"]
    if alert.account:
        facts.append(f"- 账号：{alert.account}")
    if alert.robot or alert.dataset:
        robot = f"机器人 `{alert.robot}`" if alert.robot else ""
        dataset = f"数据集 `{alert.dataset}`" if alert.dataset else ""
        facts.append(f"- 采集：{'，'.join(part for part in (robot, dataset) if part)}")
    facts.append(f"- 时间：{local_time(alert.at):%Y-%m-%d %H:%M:%S}（{zone_label()}）")
    if alert.run_id:
        facts.append(f"- 运行编号：`{alert.run_id}`")
    parts = [f"### {title}", "\n".join(facts), f"**处理办法：**{fix}"]
    if alert.message:
        parts.append(f"> 详情：{' '.join(alert.message.split())}")
    return title, "\n\n".join(parts)
