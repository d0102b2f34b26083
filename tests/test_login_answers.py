"""What the framework recognises in login answers by itself, and what it must not."""

from __future__ import annotations

import pytest

from connectors._answers import classify, says_expired, says_logged_out


@pytest.mark.parametrize(
    ("text", "outcome"),
    [
        ("用户名或密码错误，还可尝试 2 次", "bad_credentials"),
        ("登录名或登录密码不正确，您还有2次机会", "bad_credentials"),
        ("账号或密码不正确", "bad_credentials"),
        ("Invalid username or password", "bad_credentials"),
        ("验证码错误，请重新输入", "bad_captcha"),
        ("校验码输入有误", "bad_captcha"),
        ("图形验证码错误", "bad_captcha"),
        ("The captcha is incorrect", "bad_captcha"),
        ("账号已锁定，请 15 分钟后再试", "locked"),
        ("该账户因多次登录失败已被冻结，请15分钟后重试", "locked"),
        ("系统繁忙，请稍后再试", "system_unavailable"),
    ],
)
def test_common_texts_are_recognised(text: str, outcome: str) -> None:
    assert classify(text) == outcome


@pytest.mark.parametrize(
    "text",
    ["核验未通过 [E1027]，剩余机会 2", "输入项核验未通过 [E2003]", "登录成功", "用户名 密码 验证码 登 录"],
)
def test_texts_nobody_taught_us_are_not_guessed(text: str) -> None:
    assert classify(text) is None  # the session parks on these: never resent as a captcha miss


def test_declared_texts_come_first() -> None:
    assert classify("核验未通过 [E1027]", {"bad_credentials": ("E1027",)}) == "bad_credentials"


def test_a_logged_out_answer_is_told_from_data_that_mentions_logging_in() -> None:
    assert says_logged_out('{"code": 1001, "msg": "登录超时，请重新登录"}')
    assert says_logged_out("<html>请先登录<script>top.location='/login'</script></html>".encode())
    assert not says_logged_out('{"code": 0, "count": 1, "data": [{"status": "未登录"}]}')
    assert not says_logged_out("<p>请先登录</p>" * 1000)  # a long page is a page, not the answer


def test_a_kick_is_not_a_time_out() -> None:
    assert says_expired("会话已超时，请重新登录")
    assert not says_expired("您的账号已在其他地方登录，当前会话已失效")
    assert not says_expired("请先登录")
