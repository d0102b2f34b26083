"""No secret the vault handed out reaches a log line: not in messages, extras, exceptions or tracebacks."""

from __future__ import annotations

import io
import json
import secrets
from collections.abc import Iterator

import pytest
from loguru import logger

from vault import install_log_redaction, redact, register_secret

MASK = "******"


@pytest.fixture
def sinks() -> Iterator[dict[str, io.StringIO]]:
    """A plain sink, a coloured one and a JSON one, all with loguru's defaults: backtrace and diagnose on."""
    install_log_redaction()
    outputs = {name: io.StringIO() for name in ("plain", "colour", "json")}
    ids = [
        logger.add(
            outputs["plain"], backtrace=True, diagnose=True, colorize=False, format="{message} {extra}"
        ),
        logger.add(outputs["colour"], backtrace=True, diagnose=True, colorize=True),
        logger.add(outputs["json"], backtrace=True, diagnose=True, serialize=True),
    ]
    yield outputs
    for handler in ids:
        logger.remove(handler)


def _login(password: str) -> None:
    form = {"username": "rk_donghu", "password": password}  # a local that diagnose prints
    raise ValueError(f"login refused for {form['username']} with password {password}")


def _log_a_failed_login(password: str) -> None:
    try:
        _login(password)
    except ValueError:
        logger.bind(typed=password).exception("login failed, password was {}", password)


def test_loguru_tracebacks_with_locals_would_show_a_password_unless_it_is_registered(
    sinks: dict[str, io.StringIO],
) -> None:
    unregistered = f"plain-{secrets.token_hex(6)}"
    _log_a_failed_login(unregistered)
    for name, sink in sinks.items():  # the control: loguru prints it in message, extra, exception and locals
        assert sink.getvalue().count(unregistered) >= 4, name


def test_registered_secrets_are_masked_in_messages_extras_exceptions_and_tracebacks(
    sinks: dict[str, io.StringIO],
) -> None:
    password = f"Pw#{secrets.token_hex(6)}"
    register_secret(password)
    _log_a_failed_login(password)
    for name, sink in sinks.items():
        text = sink.getvalue()
        assert password not in text, name
        assert "ValueError" in text and "_login" in text, name  # the traceback is still there
        assert text.count(MASK) >= 4, name
    record = json.loads(sinks["json"].getvalue())["record"]
    assert record["message"] == f"login failed, password was {MASK}"
    assert record["extra"]["typed"] == MASK


def test_encoded_forms_of_a_secret_are_masked_too() -> None:
    password = f'p@ss word!{secrets.token_hex(3)}"东'
    register_secret(password)
    body = "username=rk&password=" + password.replace("@", "%40").replace(" ", "+").replace("!", "%21")
    body = body.replace('"', "%22").replace("东", "%E4%B8%9C")
    assert redact(body) == f"username=rk&password={MASK}"
    assert password not in redact(json.dumps({"password": password}))
    assert redact(json.dumps({"password": password}, ensure_ascii=False)) == f'{{"password": "{MASK}"}}'


def test_redaction_leaves_text_without_secrets_alone_and_ignores_empty_values() -> None:
    register_secret("")
    assert redact("nothing to hide here") == "nothing to hide here"
    longer, shorter = f"outer-{secrets.token_hex(4)}", "inner-part"
    register_secret(shorter)
    register_secret(longer + shorter)
    assert redact(f"[{longer}{shorter}]") == f"[{MASK}]"
