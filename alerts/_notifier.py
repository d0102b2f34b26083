"""Send one alert to every configured channel: retried, time-boxed, never raising."""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING

from loguru import logger

from alerts._alert import Alert, render
from alerts._channels import Channel, DingTalk, JsonWebhook, Message, Rejected, Retryable, WeCom

if TYPE_CHECKING:
    import httpx

    from settings import Settings

MASK = "******"


def _masked(text: str, secrets: Iterable[str]) -> str:
    for value in sorted(secrets, key=len, reverse=True):
        text = text.replace(value, MASK)
    return text


class Notifier:
    """Sends each alert to every channel; returns which got it, and never raises.

    Each channel gets ``attempts`` tries, ``timeout`` seconds each, with exponential backoff
    (``backoff``, then twice that, …, with a little jitter) after a timeout, a dropped
    connection, a 5xx or a 429. An answer that refuses the message (a 4xx, a non-zero
    ``errcode``: a wrong token or signature) is not retried. A channel that fails is logged
    as one warning that names the channel by host and path only: never its token, secret or
    signature. Safe to call from several threads at once.
    """

    def __init__(
        self,
        channels: Iterable[Channel] = (),
        *,
        attempts: int = 3,
        timeout: float = 5.0,
        backoff: float = 1.0,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        if attempts < 1:
            raise ValueError("attempts must be at least 1")
        self.channels = tuple(channels)
        self.attempts = attempts
        self.timeout = timeout
        self.backoff = backoff
        self._sleep = sleep

    @classmethod
    def from_settings(cls, settings: Settings, **options: object) -> Notifier:
        """The channels the settings configure (``HARVEST_ALERT_*``); none configured is allowed."""
        channels: list[Channel] = []
        if settings.alert_dingtalk_url:
            channels.append(DingTalk(settings.alert_dingtalk_url, settings.alert_dingtalk_secret))
        if settings.alert_wecom_url:
            channels.append(WeCom(settings.alert_wecom_url))
        if settings.alert_webhook_url:
            channels.append(JsonWebhook(settings.alert_webhook_url))
        return cls(channels, **options)  # type: ignore[arg-type]

    def __repr__(self) -> str:
        return f"Notifier({list(self.channels)!r})"

    def send(self, alert: Alert) -> dict[str, bool]:
        """Deliver ``alert`` to every channel: ``{channel name: delivered}`` ({} with no channel)."""
        try:
            title, text = render(alert)
        except Exception as exc:  # a bug in rendering must not stop the scheduler either
            logger.error("告警 {}（{}）无法生成正文：{!r}；改发简短告警", alert.kind, alert.system, exc)
            title, text = f"【数据采集】{alert.system_title} {alert.kind}", alert.message
        about = f"{alert.kind}（{alert.system}/{alert.account or '-'}）"
        if not self.channels:
            logger.warning(
                "告警 {} 无处可发（未配置告警渠道，请设置 HARVEST_ALERT_*）：{} | {}",
                about,
                title,
                alert.message,
            )
            return {}
        import httpx  # a fifth of a second: imported when an alert goes out, not by every command

        results: dict[str, bool] = {}
        with httpx.Client(timeout=self.timeout) as client:
            for channel in self.channels:
                results[channel.name] = self.deliver(client, channel, alert, title, text, about)
        sent = [name for name, ok in results.items() if ok]
        if sent:
            logger.info("告警 {} 已发到 {}：{}", about, "、".join(sent), title)
        return results

    def deliver(
        self, client: httpx.Client, channel: Channel, alert: Message, title: str, text: str, about: str
    ) -> bool:
        """One message through one channel: retried with backoff while it may succeed, refused at once
        when the channel says no, logged with the channel's secrets masked; True once delivered."""
        import httpx

        secrets: tuple[str, ...] = ()
        reason = "not tried"
        try:
            for attempt in range(1, self.attempts + 1):
                request = channel.request(alert, title, text)  # fresh each time: a new signature
                secrets = request.secrets
                try:
                    response = client.post(request.url, json=request.body)
                    channel.check(response)
                    return True
                except Rejected as exc:
                    reason = f"被拒绝：{exc}"
                    break
                except Retryable as exc:
                    reason = str(exc)
                except httpx.TransportError as exc:
                    reason = f"{type(exc).__name__}: {exc}"
                if attempt < self.attempts:
                    delay = self.backoff * 2 ** (attempt - 1) * random.uniform(1.0, 1.25)
                    logger.debug(
                        "alert to {} failed ({}), try {} of {} in {:.1f}s",
                        channel.name,
                        _masked(reason, secrets),
                        attempt + 1,
                        self.attempts,
                        delay,
                    )
                    self._sleep(delay)
            else:
                reason = f"{reason}（已尝试 {self.attempts} 次）"
        except Exception as exc:  # never let a channel's bug reach the caller
            reason = f"{type(exc).__name__}: {exc}"
        logger.warning(
            "告警 {} 未能发到 {}（{}）：{}；请检查该渠道的网址和网络",
            about,
            channel.name,
            channel.where(),
            _masked(reason, secrets),
        )
        return False
