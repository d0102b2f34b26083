"""What a browser login teaches about its form: only a POST that can be sent again exactly as it was."""

from __future__ import annotations

import json
from urllib.parse import urlencode

import pytest

from connectors._recipe import (
    LoginRecipe,
    Posted,
    RecipeStale,
    Served,
    Typed,
    check_cookies,
    fill,
    learn,
    post_url,
)

PAGE = "http://127.0.0.1:9000/login"
SERVED = Served(
    """<form method="post" action="/login">
  <input type="hidden" name="csrf" value="tok-1">
  <input name="user"> <input name="pass" type="password">
  <input type="radio" name="kind" value="a" checked> <input type="radio" name="kind" value="b">
  <input type="checkbox" name="remember">
  <button type="submit" name="go" value="登录">登录</button>
</form>"""
)
TYPED = Typed("alice", "S3cret-pass")
FORM = {"content-type": "application/x-www-form-urlencoded", "user-agent": "UA", "sec-ch-ua": '"x"'}


def _post(fields: dict[str, str], headers: dict[str, str] | None = None, url: str = PAGE) -> Posted:
    return Posted(url, "POST", headers or FORM, urlencode(fields))


GOOD = {"csrf": "tok-1", "user": "alice", "pass": "S3cret-pass", "kind": "a", "remember": "on", "go": "登录"}


def test_a_plain_form_is_learned_by_roles_and_holds_no_value_of_the_account() -> None:
    recipe = learn(SERVED, PAGE, [_post(GOOD)], TYPED, "UA")

    assert recipe is not None
    roles = {part.name: part.role for part in recipe.fields}
    assert roles == {
        "csrf": "page",
        "user": "username",
        "pass": "password",
        "kind": "const",
        "remember": "page",
        "go": "page",
    }
    kept = json.dumps(recipe.to_dict(), ensure_ascii=False)
    assert "alice" not in kept and "S3cret-pass" not in kept
    assert LoginRecipe.from_dict(json.loads(kept)) == recipe
    fresh = Served(SERVED.text.replace("tok-1", "tok-2"))
    assert fill(recipe, fresh, TYPED) == {**GOOD, "csrf": "tok-2"}


@pytest.mark.parametrize(
    ("why", "posts"),
    [
        ("the page hashed the password", [_post({**GOOD, "pass": "5e884898da28047151d0e56f8dc629"})]),
        ("a script added a field", [_post({**GOOD, "ts": "1733090000123"})]),
        ("a script changed a page value", [_post({**GOOD, "csrf": "tok-1.signed"})]),
        ("a header of the page's own", [_post(GOOD, {**FORM, "x-sign": "abc"})]),
        ("another host", [_post(GOOD, url="http://127.0.0.1:9001/login")]),
        ("two posts", [_post(GOOD), _post(GOOD)]),
        ("multipart", [Posted(PAGE, "POST", {"content-type": "multipart/form-data; boundary=x"}, "--x")]),
        ("no user name", [_post({k: v for k, v in GOOD.items() if k != "user"})]),
    ],
)
def test_what_cannot_be_sent_again_as_it_was_teaches_nothing(why: str, posts: list[Posted]) -> None:
    assert learn(SERVED, PAGE, posts, TYPED, "UA") is None, why


def test_a_json_login_by_xhr_is_learned_with_its_script_constants_but_not_its_numbers() -> None:
    served = Served('<div class="layui-form"><input type="hidden" name="csrf" value="t"></div>')
    headers = {"content-type": "application/json", "x-requested-with": "XMLHttpRequest"}
    body = {"account": "alice", "pwd": "S3cret-pass", "csrf": "t", "remember": True}
    recipe = learn(served, PAGE, [Posted(PAGE + "/do", "POST", headers, json.dumps(body))], TYPED, "UA")
    assert recipe is not None and recipe.encoding == "json" and recipe.xhr and recipe.post == "/login/do"
    assert fill(recipe, served, TYPED) == body

    stamped = json.dumps({**body, "t": 1733090000123})
    assert learn(served, PAGE, [Posted(PAGE, "POST", headers, stamped)], TYPED, "UA") is None


def test_a_captcha_is_learned_only_with_a_picture_to_fetch_next_time() -> None:
    served = Served(SERVED.text.replace("</form>", '<input name="code"><img src="/captcha.png?t=1"></form>'))
    posts = [_post({**GOOD, "code": "x7k2"})]
    read = Typed("alice", "S3cret-pass", captcha="x7k2", captcha_image="/captcha.png?t=1")
    recipe = learn(served, PAGE, posts, read, "UA")
    assert recipe is not None and recipe.has("captcha") and recipe.captcha_image == "/captcha.png?t=1"

    drawn = Typed("alice", "S3cret-pass", captcha="x7k2", captcha_image=None)  # a canvas
    assert learn(served, PAGE, posts, drawn, "UA") is None


def test_a_page_that_changed_since_is_stale_before_anything_is_sent() -> None:
    recipe = learn(SERVED, PAGE, [_post(GOOD)], TYPED, "UA")
    assert recipe is not None
    for changed in (
        SERVED.text.replace('<input name="user">', '<input name="user"><input name="sms">'),  # a new field
        SERVED.text.replace('value="b"', 'value="c"').replace('value="a"', 'value="d"'),  # options changed
        SERVED.text.replace('<input type="hidden" name="csrf" value="tok-1">', ""),  # a token gone
    ):
        with pytest.raises(RecipeStale):
            fill(recipe, Served(changed), TYPED)
    with pytest.raises(RecipeStale):
        fill(recipe, Served(SERVED.text, "gbk"), TYPED)  # another charset


def test_a_gbk_page_is_read_and_posted_in_gbk() -> None:
    html = '<meta http-equiv="Content-Type" content="text/html; charset=gb2312"><input name="b" value="登录">'
    served = Served.of(html.encode("gbk"), "text/html")
    assert served.charset == "gbk" and "登录" in served.text
    body = urlencode({"b": "登录", "u": "alice", "p": "S3cret-pass"}, encoding="gbk")  # as Chromium posts it
    served = Served(served.text + '<input name="u"><input name="p" type="password">', "gbk")
    recipe = learn(served, PAGE, [Posted(PAGE, "POST", FORM, body)], TYPED, "UA")
    assert recipe is not None and recipe.charset == "gbk"


@pytest.mark.parametrize(
    "kept",
    [None, {}, {"version": 0}, {"version": 1, "post": "/x"}, {"version": 1, "fields": "no"}],
)
def test_a_recipe_kept_in_another_shape_is_no_recipe(kept: dict | None) -> None:
    assert LoginRecipe.from_dict(kept) is None


def test_the_address_is_the_fresh_forms_action_or_one_that_carries_no_token() -> None:
    with_token = Served(SERVED.text.replace('action="/login"', 'action="/login?t=aa1"'))
    posted = [_post(GOOD, url=PAGE + "?t=aa1")]
    recipe = learn(with_token, PAGE, posted, TYPED, "UA")
    assert recipe is not None and recipe.from_action
    fresh = Served(with_token.text.replace("t=aa1", "t=bb2"))
    assert post_url(recipe, fresh, PAGE) == PAGE + "?t=bb2"
    with pytest.raises(RecipeStale):
        post_url(recipe, Served(with_token.text.replace('action="/login?', 'action="/auth?')), PAGE)

    # Posted by a script to an address with a query the page's form does not name: maybe a token.
    assert learn(SERVED, PAGE, [_post(GOOD, url=PAGE + "/do?t=aa1")], TYPED, "UA") is None
    recipe = learn(SERVED, PAGE, [_post(GOOD, url=PAGE + "/do")], TYPED, "UA")
    assert recipe is not None and not recipe.from_action and post_url(recipe, SERVED, PAGE) == PAGE + "/do"


def test_every_cookie_the_browser_sent_must_be_set_again_before_the_password_goes() -> None:
    recipe = learn(SERVED, PAGE, [_post(GOOD, {**FORM, "cookie": "JSESSIONID=abc; lang=zh"})], TYPED, "UA")
    assert recipe is not None and recipe.cookies == ("JSESSIONID", "lang")
    assert "abc" not in json.dumps(recipe.to_dict())
    check_cookies(recipe, {"JSESSIONID", "lang", "other"})
    with pytest.raises(RecipeStale, match="lang"):
        check_cookies(recipe, {"JSESSIONID"})  # set by the page's script: Set-Cookie never brings it
