"""Alerts reach a real local receiver: DingTalk signed as DingTalk checks it, WeCom and JSON
bodies as documented, retried through a 500, and a dead channel never breaks the caller
nor leaks its secrets into the log."""

from __future__ import annotations

import dataclasses
import datetime as dt
import logging
import socket
from collections.abc import Iterator
from urllib.parse import parse_qs

import pytest
from loguru import logger
from pydantic import SecretStr

from alerts import KINDS, Alert, DingTalk, JsonWebhook, Notifier, WeCom, dingtalk_sign, render
from alerts.testing import Receiver
from settings import load_settings

SECRET = "SECa1b2c3d4e5f6a7b8c9d0e1f2a3b4c5d6e7f8a9b0c1d2e3f4a5b6c7d8e9f0a1b2"
TOKEN = "0f1e2d3c4b5a69788796a5b4c3d2e1f00f1e2d3c4b5a69788796a5b4c3d2e1f0"
WECOM_KEY = "693a91f6-7aaa-4bc4-97a0-0ec2sifa5aaa"
AT = dt.datetime(2024, 5, 1, 2, 0, 3, tzinfo=dt.UTC)


def alert(kind: str = "bad_credentials", **changes: object) -> Alert:
    fields: dict[str, object] = {
        "kind": kind,
        "system": "population",
        "system_title": "人口管理系统",
        "account": "donghu",
        "robot": "residents",
        "dataset": "persons",
        "message": "population rejected the password of donghu; the account is parked",
        "run_id": "run-7f3a",
        "at": AT,
        "max_age_hours": 36 if kind == "stale" else None,
    }
    return Alert(**(fields | changes))  # type: ignore[arg-type]


@pytest.fixture
def hook() -> Iterator[Receiver]:
    with Receiver() as receiver:
        yield receiver


@pytest.fixture
def log_lines() -> Iterator[list[str]]:
    lines: list[str] = []
    sink = logger.add(lambda message: lines.append(str(message)), level="DEBUG", format="{level} {message}")
    yield lines
    logger.remove(sink)


def fast(*channels: object, attempts: int = 3) -> Notifier:
    return Notifier(channels, attempts=attempts, timeout=2.0, backoff=0.01)  # type: ignore[arg-type]


def dead_url() -> str:
    """A port on 127.0.0.1 with nobody listening: connections are refused at once."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}"


def test_dingtalk_gets_a_signed_markdown_message_that_verifies(hook: Receiver) -> None:
    result = fast(DingTalk(f"{hook.url}/robot/send?access_token={TOKEN}", SECRET)).send(alert())

    assert result == {"dingtalk": True}
    (got,) = hook.requests
    assert got.path == "/robot/send" and got.query["access_token"] == TOKEN
    assert got.raw_query.startswith(f"access_token={TOKEN}&timestamp=")
    assert got.headers["content-type"] == "application/json"
    title, text = render(alert())
    assert got.body == {"msgtype": "markdown", "markdown": {"title": title, "text": text}}
    # The receiver recomputes the signature from the timestamp and the secret, as DingTalk does.
    assert got.dingtalk_signature_valid(SECRET)
    assert not got.dingtalk_signature_valid(SECRET + "x")
    assert not got.dingtalk_signature_valid(SECRET, now=int(got.query["timestamp"]) / 1000 + 7200)


def test_the_signature_follows_dingtalks_documented_recipe() -> None:
    import base64
    import hashlib
    import hmac
    from urllib.parse import quote_plus

    timestamp = 1577262236757
    expected = base64.b64encode(
        hmac.new(SECRET.encode(), f"{timestamp}\n{SECRET}".encode(), hashlib.sha256).digest()
    ).decode()
    assert dingtalk_sign(SECRET, timestamp) == expected
    channel = DingTalk(
        f"https://oapi.dingtalk.com/robot/send?access_token={TOKEN}", SECRET, clock=lambda: 1577262236.757
    )
    request = channel.request(alert(), "t", "x")
    assert request.url.endswith(f"&timestamp={timestamp}&sign={quote_plus(expected)}")
    # '+', '/' and '=' of base64 arrive intact only because the sign is URL-encoded once.
    assert parse_qs(request.url.split("?", 1)[1])["sign"] == [expected]


def test_an_unsigned_dingtalk_robot_gets_no_sign(hook: Receiver) -> None:
    assert fast(DingTalk(f"{hook.url}/robot/send?access_token={TOKEN}")).send(alert()) == {"dingtalk": True}
    assert set(hook.requests[0].query) == {"access_token"}


def test_wecom_gets_markdown_content(hook: Receiver) -> None:
    result = fast(WeCom(f"{hook.url}/cgi-bin/webhook/send?key={WECOM_KEY}")).send(alert("stale"))

    assert result == {"wecom": True}
    (got,) = hook.requests
    assert got.query == {"key": WECOM_KEY}
    assert got.body == {"msgtype": "markdown", "markdown": {"content": render(alert("stale"))[1]}}
    assert "人口管理系统「persons」数据已超过 36 小时未更新" in got.body["markdown"]["content"]


def test_the_json_webhook_gets_every_field_and_the_chinese_text(hook: Receiver) -> None:
    hook.answers.append((204, None))
    assert fast(JsonWebhook(f"{hook.url}/hooks/harvest")).send(alert("layout_changed")) == {"webhook": True}

    body = hook.requests[0].body
    title, text = render(alert("layout_changed"))
    assert body == {
        "kind": "layout_changed",
        "system": "population",
        "system_title": "人口管理系统",
        "account": "donghu",
        "robot": "residents",
        "dataset": "persons",
        "message": alert().message,
        "run_id": "run-7f3a",
        "at": "2024-05-01T02:00:03+00:00",
        "max_age_hours": None,
        "title": title,
        "text": text,
    }


def test_a_500_then_200_is_delivered_on_the_retry(hook: Receiver, log_lines: list[str]) -> None:
    hook.answers.append((500, {"error": "busy"}))
    result = fast(DingTalk(f"{hook.url}/robot/send?access_token={TOKEN}", SECRET)).send(alert())

    assert result == {"dingtalk": True}
    assert [r.status for r in hook.requests] == [500, 200]
    # Each try is signed afresh, and both signatures verify.
    assert all(r.dingtalk_signature_valid(SECRET) for r in hook.requests)
    assert not [line for line in log_lines if line.startswith("WARNING")]


def test_every_channel_gets_the_alert_and_one_failure_spares_the_others(hook: Receiver) -> None:
    notifier = fast(
        DingTalk(f"{dead_url()}/robot/send?access_token={TOKEN}", SECRET),
        WeCom(f"{hook.url}/cgi-bin/webhook/send?key={WECOM_KEY}"),
        JsonWebhook(f"{hook.url}/hooks/harvest"),
    )
    assert notifier.send(alert()) == {"dingtalk": False, "wecom": True, "webhook": True}
    assert [r.path for r in hook.requests] == ["/cgi-bin/webhook/send", "/hooks/harvest"]


@pytest.mark.parametrize("trouble", ["down", "always 500", "errcode"])
def test_a_failing_channel_returns_failure_and_logs_one_line_without_secrets(
    hook: Receiver, log_lines: list[str], trouble: str
) -> None:
    base = dead_url() if trouble == "down" else hook.url
    if trouble == "always 500":
        hook.answers.extend([(500, {"errmsg": "oops"})] * 3)
    if trouble == "errcode":
        hook.answers.append((200, {"errcode": 310000, "errmsg": "sign not match"}))
    url = f"{base}/robot/send?access_token={TOKEN}"

    result = fast(DingTalk(url, SECRET)).send(alert())  # does not raise

    assert result == {"dingtalk": False}
    assert len(hook.requests) == {"down": 0, "always 500": 3, "errcode": 1}[trouble]
    warnings = [line for line in log_lines if line.startswith("WARNING")]
    assert len(warnings) == 1 and "dingtalk" in warnings[0] and "bad_credentials" in warnings[0]
    assert "/robot/send" in warnings[0]
    signs = [r.query["sign"] for r in hook.requests]
    for line in log_lines:
        assert SECRET not in line and TOKEN not in line and url not in line
        assert "sign=" not in line and not any(sign in line for sign in signs)


def test_httpx_request_logs_show_no_token_or_signature(
    hook: Receiver, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.DEBUG):
        notifier = fast(
            DingTalk(f"{hook.url}/robot/send?access_token={TOKEN}", SECRET),
            WeCom(f"{hook.url}/cgi-bin/webhook/send?key={WECOM_KEY}"),
        )
        assert notifier.send(alert()) == {"dingtalk": True, "wecom": True}
    requests = [r.getMessage() for r in caplog.records if r.getMessage().startswith("HTTP Request")]
    assert len(requests) == 2 and f"{hook.url}/robot/send" in requests[0]
    sign = hook.requests[0].query["sign"]
    assert not [m for m in caplog.messages if TOKEN in m or WECOM_KEY in m or SECRET in m or sign in m]


def test_a_slow_receiver_times_out_and_is_retried(log_lines: list[str]) -> None:
    with socket.socket() as listener:  # accepts connections, never answers
        listener.bind(("127.0.0.1", 0))
        listener.listen(8)
        url = f"http://127.0.0.1:{listener.getsockname()[1]}/hook"
        notifier = Notifier([JsonWebhook(url)], attempts=2, timeout=0.2, backoff=0.01)
        assert notifier.send(alert()) == {"webhook": False}
    (warning,) = [line for line in log_lines if line.startswith("WARNING")]
    assert "ReadTimeout" in warning and "已尝试 2 次" in warning


def test_no_channel_sends_nothing_and_logs_the_alert(log_lines: list[str]) -> None:
    assert Notifier().send(alert()) == {}
    (warning,) = [line for line in log_lines if line.startswith("WARNING")]
    assert "人口管理系统 账号 donghu 密码错误" in warning and "HARVEST_ALERT_" in warning


def test_from_settings_builds_the_configured_channels(
    hook: Receiver, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert Notifier.from_settings(load_settings()).channels == ()
    monkeypatch.setenv("HARVEST_ALERT_DINGTALK_URL", f"{hook.url}/robot/send?access_token={TOKEN}")
    monkeypatch.setenv("HARVEST_ALERT_DINGTALK_SECRET", SECRET)
    monkeypatch.setenv("HARVEST_ALERT_WECOM_URL", f"{hook.url}/cgi-bin/webhook/send?key={WECOM_KEY}")
    monkeypatch.setenv("HARVEST_ALERT_WEBHOOK_URL", f"{hook.url}/hooks/harvest")
    settings = load_settings()
    assert isinstance(settings.alert_dingtalk_secret, SecretStr) and SECRET not in repr(settings)

    notifier = Notifier.from_settings(settings, backoff=0.01)
    assert SECRET not in repr(notifier) and TOKEN not in repr(notifier)
    assert notifier.send(alert()) == {"dingtalk": True, "wecom": True, "webhook": True}
    assert hook.requests[0].dingtalk_signature_valid(SECRET)


FIXES = {
    "bad_credentials": ("密码错误", "harvest vault set population donghu --password"),
    "locked": ("锁定", "harvest vault set population donghu --password"),
    "needs_human": ("登录需要人工处理", "harvest run residents --account donghu"),
    "layout_changed": ("页面结构已变化", "runs/run-7f3a/"),
    "system_unavailable": ("无法访问", "自动重试"),
    "disk_full": ("磁盘已满", "df -h"),
    "stale": ("已超过 36 小时未更新", "harvest status"),
    "recovered": ("已恢复更新", "无需处理"),
    "error": ("运行出错", "runs/run-7f3a/"),
}


@pytest.mark.parametrize("kind", KINDS)
def test_each_kind_says_what_happened_where_and_what_to_do(kind: str) -> None:
    what, fix = FIXES[kind]
    title, text = render(alert(kind))

    assert title.startswith("【数据采集】人口管理系统") and what in title
    assert "人口管理系统" in text and "账号：donghu" in text and "persons" in text
    assert "**处理办法：**" in text and fix in text
    assert f"> 详情：{alert().message}" in text
    assert "2024-05-01 10:00:03（北京时间）" in text


def test_an_alert_is_checked_when_made() -> None:
    with pytest.raises(ValueError, match="unknown alert kind"):
        alert("exploded")
    with pytest.raises(ValueError, match="aware"):
        alert(at=dt.datetime(2024, 5, 1, 2, 0))
    with pytest.raises(dataclasses.FrozenInstanceError):
        alert().kind = "locked"  # type: ignore[misc]


def test_every_failure_a_person_is_told_of_has_an_alert_of_its_kind() -> None:
    """The failure tree is the vocabulary: a kind the scheduler alerts must render, not raise."""
    from connectors import HarvestFailure

    def family(cls: type[HarvestFailure]) -> Iterator[type[HarvestFailure]]:
        yield cls
        for sub in cls.__subclasses__():
            yield from family(sub)

    alerted = {cls.kind for cls in family(HarvestFailure) if cls.alerted}
    assert alerted <= set(KINDS), alerted - set(KINDS)
