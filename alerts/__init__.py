"""Alerts: tell a person, in Chinese, when a harvest needs one (or a dataset goes stale).

An ``Alert`` says what happened to which system, account and dataset; ``render`` turns it
into a Chinese title and a Markdown body that name the fix; a ``Notifier`` sends it to every
configured channel (``DingTalk`` custom robots, signed; ``WeCom`` group robots; a generic
``JsonWebhook``), retrying politely. Sending never raises: a channel that fails is logged,
without its secrets, and ``Notifier.send`` reports which channels got the alert.
"""

from alerts._alert import KINDS, Alert, Kind, render
from alerts._channels import Channel, DingTalk, JsonWebhook, WeCom, dingtalk_sign
from alerts._notifier import Notifier

__all__ = [
    "KINDS",
    "Alert",
    "Channel",
    "DingTalk",
    "JsonWebhook",
    "Kind",
    "Notifier",
    "WeCom",
    "dingtalk_sign",
    "render",
]
