"""Where alerts go: DingTalk custom robots, WeCom group robots, any JSON webhook.

Each channel knows its request (URL, body) and how to read the answer; the retrying, the
timeouts and the logging are the notifier's. A channel also lists the values that must
never reach a log line: the DingTalk secret and signature, and every query value of its
URL (``access_token``, WeCom's ``key``).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol
from urllib.parse import parse_qsl, quote_plus, urlsplit

from pydantic import SecretStr

from vault import register_secret

if TYPE_CHECKING:  # imported by the notifier when an alert goes out, not by every command
    import httpx

MIN_SECRET = 8  # shorter query values are not credentials


class Rejected(Exception):
    """The receiver answered, and said no; sending the same request again will not help."""


class Retryable(Exception):
    """The receiver is down, slow or overloaded; the same request may pass later."""


@dataclass(frozen=True)
class Request:
    url: str
    body: dict[str, Any]
    secrets: tuple[str, ...]  # values to mask in anything logged about this request


def dingtalk_sign(secret: str, timestamp_ms: int) -> str:
    """DingTalk's 加签 signature, before URL-encoding.

    base64(HMAC-SHA256(key=secret, msg=f"{timestamp}\\n{secret}")), timestamp in milliseconds.
    """
    digest = hmac.new(
        secret.encode(), f"{timestamp_ms}\n{secret}".encode(), digestmod=hashlib.sha256
    ).digest()
    return base64.b64encode(digest).decode()


def _url_secrets(url: str) -> tuple[str, ...]:
    """The query values and password of a webhook URL: its credentials, whatever their names.

    Short values (``?format=md``) are left alone: masking them would garble every log line.
    Every value found is registered for redaction, so loguru masks it everywhere too.
    """
    parts = urlsplit(url)
    values = [value for _, value in parse_qsl(parts.query)]
    if parts.password:
        values.append(parts.password)
    found = tuple(value for value in values if len(value) >= MIN_SECRET)
    _hide_in_httpx_log(url)
    for value in found:
        register_secret(value)
    return found


class _HideWebhookUrls(logging.Filter):
    """httpx logs each request's full URL at INFO: for our webhooks, keep only host and path."""

    def filter(self, record: logging.LogRecord) -> bool:
        import httpx  # loaded already: only httpx's own logger carries this filter

        try:
            if isinstance(record.args, tuple) and any(isinstance(a, httpx.URL) for a in record.args):
                record.args = tuple(
                    where(str(arg)) if isinstance(arg, httpx.URL) and where(str(arg)) in _webhooks else arg
                    for arg in record.args
                )
        except Exception:  # a log filter must never break logging
            pass
        return True


_webhooks: set[str] = set()  # where() of every channel made in this process
_hide = _HideWebhookUrls()


def _hide_in_httpx_log(url: str) -> None:
    _webhooks.add(where(url))
    httpx_logger = logging.getLogger("httpx")
    if _hide not in httpx_logger.filters:
        httpx_logger.addFilter(_hide)


def where(url: str) -> str:
    """A URL shown without its query or user info: safe to log."""
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.hostname}{f':{parts.port}' if parts.port else ''}{parts.path}"


def _errcode_answer(response: httpx.Response) -> None:
    """DingTalk and WeCom both answer HTTP 200 with {"errcode": 0, …} when the message went out."""
    _http_answer(response)
    try:
        answer = response.json()
    except ValueError:
        raise Rejected(f"HTTP {response.status_code} without a JSON answer") from None
    if not isinstance(answer, dict) or answer.get("errcode") != 0:
        code = answer.get("errcode") if isinstance(answer, dict) else None
        message = answer.get("errmsg") if isinstance(answer, dict) else None
        raise Rejected(f"errcode {code}: {message}")


def _http_answer(response: httpx.Response) -> None:
    status = response.status_code
    if status == 429 or status >= 500:
        raise Retryable(f"HTTP {status}")
    if not 200 <= status < 300:
        raise Rejected(f"HTTP {status}")


class Message(Protocol):
    """What a channel carries: an alert, or anything else that says itself as a dict (a digest)."""

    def to_dict(self) -> dict[str, Any]: ...


class Channel:
    """One destination for alerts: subclasses build the request and judge the answer."""

    name: str

    def request(self, alert: Message, title: str, text: str) -> Request:
        raise NotImplementedError

    def check(self, response: httpx.Response) -> None:
        """Raise ``Rejected`` or ``Retryable`` unless the answer says the alert was taken."""
        _http_answer(response)

    def where(self) -> str:
        """Where this channel sends, safe to log (no query, no token)."""
        return self.name


class DingTalk(Channel):
    """A DingTalk custom robot (自定义机器人), signed with its 加签 secret when one is given.

    ``webhook_url`` is the robot's address as DingTalk shows it
    (``https://oapi.dingtalk.com/robot/send?access_token=…``); each send appends
    ``&timestamp=<ms>&sign=<urlencoded signature>`` and posts a Markdown message.
    """

    def __init__(
        self,
        webhook_url: str,
        secret: str | SecretStr | None = None,
        *,
        name: str = "dingtalk",
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.name = name
        self._url = webhook_url
        self._secret = secret.get_secret_value() if isinstance(secret, SecretStr) else secret
        self._clock = clock
        if self._secret:
            register_secret(self._secret)
        self._secrets = _url_secrets(webhook_url) + ((self._secret,) if self._secret else ())

    def __repr__(self) -> str:
        return f"DingTalk({self.where()!r}, signed={self._secret is not None})"

    def where(self) -> str:
        return where(self._url)

    def request(self, alert: Message, title: str, text: str) -> Request:
        body = {"msgtype": "markdown", "markdown": {"title": title, "text": text}}
        if not self._secret:
            return Request(self._url, body, self._secrets)
        timestamp = round(self._clock() * 1000)
        sign = dingtalk_sign(self._secret, timestamp)
        encoded = quote_plus(sign)
        separator = "&" if urlsplit(self._url).query else "?"
        url = f"{self._url}{separator}timestamp={timestamp}&sign={encoded}"
        return Request(url, body, (*self._secrets, sign, encoded))

    def check(self, response: httpx.Response) -> None:
        _errcode_answer(response)


class WeCom(Channel):
    """A WeCom (企业微信) group robot: ``https://qyapi.weixin.qq.com/cgi-bin/webhook/send?key=…``."""

    def __init__(self, webhook_url: str, *, name: str = "wecom") -> None:
        self.name = name
        self._url = webhook_url
        self._secrets = _url_secrets(webhook_url)

    def __repr__(self) -> str:
        return f"WeCom({self.where()!r})"

    def where(self) -> str:
        return where(self._url)

    def request(self, alert: Message, title: str, text: str) -> Request:
        # WeCom's Markdown has no separate title: the body's first line (### title) is it.
        return Request(self._url, {"msgtype": "markdown", "markdown": {"content": text}}, self._secrets)

    def check(self, response: httpx.Response) -> None:
        _errcode_answer(response)


class JsonWebhook(Channel):
    """Any HTTP endpoint: the alert's fields as JSON, plus ``title`` and ``text`` (the Chinese
    rendering); any 2xx answer counts as delivered."""

    def __init__(self, url: str, *, name: str = "webhook") -> None:
        self.name = name
        self._url = url
        self._secrets = _url_secrets(url)

    def __repr__(self) -> str:
        return f"JsonWebhook({self.where()!r})"

    def where(self) -> str:
        return where(self._url)

    def request(self, alert: Message, title: str, text: str) -> Request:
        return Request(self._url, alert.to_dict() | {"title": title, "text": text}, self._secrets)
