"""Injected faults happen at their configured rates; CSRF and control endpoints behave."""

from __future__ import annotations

import math
import re
import time

import httpx
import pytest
from playwright.sync_api import Page, expect

from sandbox import Sandbox
from sandbox._gate import SWEEP_AT


def _within(observed: int, trials: int, rate: float) -> bool:
    """Inside four standard deviations of the binomial expectation (false alarms ~1 in 15,000)."""
    sigma = math.sqrt(trials * rate * (1 - rate))
    return abs(observed - trials * rate) <= 4 * sigma + 1


@pytest.mark.browser
@pytest.mark.parametrize("code", ["population", "civil", "market"])
def test_500s_come_at_the_configured_rate_in_the_browser(page: Page, sandbox: Sandbox, code: str) -> None:
    system = sandbox[code]
    system.switches.fault_500_rate = 0.2
    statuses = []
    for _ in range(120):
        response = page.goto(f"{system.url}/login")
        assert response is not None
        statuses.append(response.status)
    assert set(statuses) == {200, 500}
    assert _within(statuses.count(500), 120, 0.2), statuses.count(500)
    expect(page.locator("body")).to_be_visible()


def test_dropped_connections_come_at_the_configured_rate(sandbox: Sandbox) -> None:
    system = sandbox["population"]
    system.switches.fault_drop_rate = 0.1
    dropped = 0
    with httpx.Client(base_url=system.url) as client:
        for _ in range(300):
            try:
                assert client.get("/login").status_code == 200
            except httpx.TransportError:
                dropped += 1
    assert dropped > 0 and _within(dropped, 300, 0.1), dropped
    assert system.traffic.faults["drop"] == dropped


def test_slow_responses_take_the_configured_delay(sandbox: Sandbox) -> None:
    system = sandbox["civil"]
    system.switches.fault_slow_rate = 0.3
    system.switches.slow_seconds = 0.25
    with httpx.Client(base_url=system.url) as client:
        elapsed = []
        for _ in range(80):
            started = time.perf_counter()
            client.get("/login")
            elapsed.append(time.perf_counter() - started)
    slow = sum(1 for seconds in elapsed if seconds >= 0.25)
    assert slow >= system.traffic.faults["slow"] > 0  # every injected delay was really served
    assert _within(system.traffic.faults["slow"], 80, 0.3)


def test_requests_over_the_rate_get_429_with_retry_after(sandbox: Sandbox) -> None:
    system = sandbox["market"]
    system.switches.rate_limit_per_s = 5
    with httpx.Client(base_url=system.url) as client:
        responses = [client.get("/login") for _ in range(12)]
        statuses = [r.status_code for r in responses]
        assert statuses[:5] == [200] * 5
        assert 429 in statuses[5:]
        refused = next(r for r in responses if r.status_code == 429)
        wait = int(refused.headers["Retry-After"])
        assert 1 <= wait <= 2
        time.sleep(wait)
        assert client.get("/login").status_code == 200


def test_a_lock_lifts_after_the_configured_minutes(sandbox: Sandbox) -> None:
    system = sandbox["civil"]
    system.switches.lockout_minutes = 0.005  # 0.3 s
    account = system.accounts[0]
    with httpx.Client(base_url=system.url) as client:

        def attempt(password: str) -> httpx.Response:
            csrf = re.search(r'name="csrf_token" value="([^"]+)"', client.get("/login").text)
            assert csrf is not None
            data = {"username": account.username, "password": password, "csrf_token": csrf.group(1)}
            return client.post("/login", data=data)

        for _ in range(3):
            attempt("wrong")
        assert "账号已锁定" in attempt(account.password).text
        time.sleep(0.4)
        assert attempt(account.password).status_code == 303


def test_login_without_the_csrf_token_is_refused(sandbox: Sandbox) -> None:
    system = sandbox["population"]
    account = system.accounts[0]
    with httpx.Client(base_url=system.url) as client:
        client.get("/login")
        refused = client.post("/login", data={"username": account.username, "password": account.password})
        assert refused.status_code == 403 and "页面已过期" in refused.text
        csrf = re.search(r'name="csrf_token" value="([^"]+)"', client.get("/login").text)
        assert csrf is not None
        accepted = client.post(
            "/login",
            data={"username": account.username, "password": account.password, "csrf_token": csrf.group(1)},
        )
        assert accepted.status_code == 303 and accepted.headers["location"] == "/persons"
    assert system.gate.wrong_passwords(account.username) == 0


def test_login_redirects_back_only_to_local_paths(sandbox: Sandbox) -> None:
    system = sandbox["population"]
    account = system.accounts[0]
    with httpx.Client(base_url=system.url) as client:
        for target, expected in (
            ("/households?page=2", "/households?page=2"),
            ("//evil.example", "/persons"),
        ):
            csrf = re.search(r'name="csrf_token" value="([^"]+)"', client.get("/login").text)
            assert csrf is not None
            response = client.post(
                "/login",
                data={
                    "username": account.username,
                    "password": account.password,
                    "csrf_token": csrf.group(1),
                    "next": target,
                },
            )
            assert response.headers["location"] == expected


def test_the_truth_endpoint_matches_the_in_process_ground_truth(sandbox: Sandbox) -> None:
    system = sandbox["civil"]
    account = system.accounts[0]
    served = httpx.get(
        f"{system.url}/__sandbox__/truth/elderly", params={"username": account.username}
    ).json()
    assert [row["archive_no"] for row in served] == list(
        system.truth("elderly", account.username)["archive_no"]
    )
    assert {row["community"] for row in served} == {account.scope}


def test_switches_can_be_flipped_over_http_and_reset(sandbox: Sandbox) -> None:
    system = sandbox["market"]
    response = httpx.post(
        f"{system.url}/__sandbox__/switches", json={"captcha": "true", "lockout_threshold": 5}
    )
    assert response.json()["captcha"] is True and system.switches.lockout_threshold == 5
    bad = httpx.post(f"{system.url}/__sandbox__/switches", json={"no_such_switch": 1})
    assert bad.status_code == 422 and "unknown sandbox switch" in bad.json()["detail"]
    system.reset()
    assert system.switches.captcha is False and system.switches.lockout_threshold == 3


def test_idle_sessions_are_swept_but_an_expired_login_still_says_expired(sandbox: Sandbox) -> None:
    system = sandbox["population"]
    gate = system.gate
    system.switches.idle_timeout_s = 0.2
    account = system.accounts[0]
    with httpx.Client(base_url=system.url) as client:
        csrf = re.search(r'name="csrf_token" value="([^"]+)"', client.get("/login").text)
        assert csrf is not None
        data = {"username": account.username, "password": account.password, "csrf_token": csrf.group(1)}
        assert client.post("/login", data=data).status_code == 303
        for _ in range(SWEEP_AT):
            gate.anonymous(None)
        time.sleep(0.3)
        gate.anonymous(None)  # the session past SWEEP_AT triggers the sweep
        assert len(gate.sessions) < 5
        expired = client.get("/persons")
        assert expired.status_code == 303 and "reason=expired" in expired.headers["location"]
