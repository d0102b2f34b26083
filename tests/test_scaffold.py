"""`harvest new`: what it finds on a list page, what it writes, and that its robot harvests the truth."""

from __future__ import annotations

import json
import sys
import tomllib
from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

import connectors
from cli import app
from robots._declared import declare
from robots._registry import _ROBOTS
from robots._scaffold_fields import Guess, from_headers, guess_type
from robots._scaffold_find import (
    Captured,
    Found,
    Listing,
    find_api,
    find_cards,
    find_pager,
    find_table,
    has_captcha,
    json_titles,
    proof_selector,
)
from robots._scaffold_write import robot_text
from sandbox import Sandbox
from sandbox._population import PERSON_COLUMNS
from settings import Settings
from store import Store, record_spec
from tests.runtime_helpers import harvest, snapshot
from vault import Vault

runner = CliRunner()
BASE = "http://127.0.0.1:9000"
LIST = """<html><head><title>人员信息 - 人口管理系统</title></head><body>
<span id="current-user">当前用户：donghu</span><form action="/logout"><button>退出</button></form>
<table class="data-table persons"><thead><tr><th>序号</th><th>身份证号</th><th>姓名</th><th>手机号</th>
<th>出生日期</th><th>人数</th><th>婚姻状况</th><th>操作</th></tr></thead><tbody>
<tr><td>1</td><td>330102195701032636</td><td>蔡华</td><td>15446830203</td><td>1957年1月3日</td><td>3</td>
<td>已婚</td><td><a href="/p/1">详情</a></td></tr>
<tr><td>2</td><td>421002199507182361</td><td>吴晓蕾</td><td>-</td><td>1995-07-18</td><td>1</td>
<td>已婚</td><td><a href="/p/2">详情</a></td></tr>
</tbody></table>
<div class="pager">共 <b>45</b> 条记录 <ul class="pagination"><li class="active"><span>1</span></li>
<li><a href="?name=&size=20&page=2">2</a></li><li><a href="?name=&size=20&page=3">3</a></li>
<li class="next"><a href="?name=&size=20&page=2">下一页</a></li></ul></div></body></html>"""
LOGIN = """<html><body><form><input id="username"><input type="password">
<img id="captcha-img" src="/captcha.png" alt="验证码"><button>登 录</button></form></body></html>"""


def test_the_largest_table_is_read_by_its_headers_without_row_numbers_and_actions() -> None:
    table = find_table(LIST, f"{BASE}/persons")
    assert table is not None and table.css == "table.persons" and table.stated_total == 45
    assert list(table.columns) == ["身份证号", "姓名", "手机号", "出生日期", "人数", "婚姻状况"]
    assert table.columns["姓名"] == ["蔡华", "吴晓蕾"]


def test_headers_become_named_typed_fields_with_the_id_number_as_key() -> None:
    table = find_table(LIST, f"{BASE}/persons")
    assert table is not None
    fields = {g.name: g for g in from_headers(table.columns)}
    assert list(fields) == ["id_number", "name", "phone", "birth_date", "size", "field_6", "community"]
    assert fields["id_number"].key and fields["id_number"].role == "id_number"
    assert (fields["phone"].type, fields["phone"].optional, fields["phone"].role) == ("str", True, "phone")
    assert fields["birth_date"].type == "date" and fields["size"].type == "int"
    assert not fields["field_6"].named and fields["field_6"].title == "婚姻状况"
    assert not fields["community"].source and fields["community"].role == "community"


def test_types_are_read_as_a_record_would_convert_them() -> None:
    assert guess_type(["1,200.50元", "3"]) == ("decimal", False)
    assert guess_type(["010000001", "010000002"]) == ("str", False)  # leading zeros: a code
    assert guess_type(["2020-01-02 10:00", ""]) == ("datetime", True)
    assert guess_type(["暂无", "-"]) == ("str", True)


def test_numbered_links_make_pages_and_a_next_link_makes_follow() -> None:
    assert find_pager(LIST, f"{BASE}/persons", BASE) == (
        "pages",
        {"path": "/persons?name=&size=20&page={n}", "last": ".pagination a"},
    )
    linked = LIST.replace(">2</a>", ">二</a>").replace(">3</a>", ">三</a>")
    assert find_pager(linked, f"{BASE}/persons", BASE) == ("follow", {"next": 'a:has-text("下一页")'})
    postback = linked.replace(
        'href="?name=&size=20&page=2">下一页', "href=\"javascript:__doPostBack('g','Page$Next')\">下一页"
    )
    assert find_pager(postback, f"{BASE}/persons", BASE) == (
        "follow",
        {"next": 'a:has-text("下一页")', "render": True},
    )


def test_the_logged_in_proof_is_on_the_list_page_and_not_on_the_login_page() -> None:
    assert proof_selector(LIST, LOGIN, "table.persons") == ("#current-user", True)
    bare = "<html><body><table class='x'><tr><th>姓名</th></tr></table></body></html>"
    assert proof_selector(bare, LOGIN, "table.x") == ("table.x", False)
    assert has_captcha(LOGIN) and not has_captcha(LOGIN.replace("<img", "<br"))


def test_a_json_list_the_page_loaded_is_an_api_with_its_paging_parameters() -> None:
    rows = [{"archiveNo": "YL1", "idCard": "330102195701032636", "subsidy": 200}]
    captured = [
        Captured(f"{BASE}/api/user/info", json.dumps({"code": 200, "user": {"name": "x"}})),
        Captured(f"{BASE}/api/list?pageNum=1&pageSize=20&keyword=", json.dumps({"total": 41, "rows": rows})),
    ]
    api = find_api(captured, BASE)
    assert api is not None and (api.path, api.page_param, api.size_param, api.size) == (
        "/api/list",
        "pageNum",
        "pageSize",
        20,
    )
    assert (api.rows, api.total_key, api.total, api.params) == ("rows", "total", 41, {})
    shown = find_table(
        "<table><tr><th>档案编号</th><th>身份证号</th><th>补贴</th></tr>"
        "<tr><td>YL1</td><td>330102195701032636</td><td>200</td></tr></table>",
        BASE,
    )
    assert json_titles(rows, shown) == {"archiveNo": "档案编号", "idCard": "身份证号", "subsidy": "补贴"}


def test_repeated_cards_under_a_load_more_button_are_found() -> None:
    cards = "".join(
        f'<div class="card"><dl><dt>名称</dt><dd>店{i}</dd><dt>地址</dt><dd>路{i}号</dd></dl></div>'
        for i in range(3)
    )
    html = f'<html><body><div id="cards">{cards}</div><button id="load-more">加载更多</button></body></html>'
    assert find_cards(html, BASE) == (
        ".card",
        "#load-more",
        {"名称": ["店0", "店1", "店2"], "地址": ["路0号", "路1号", "路2号"]},
    )


def test_template_writes_commented_files_and_never_overwrites(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    args = ["new", "somesys", "--template", "--into", str(tmp_path)]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    robot = (tmp_path / "robots" / "somesys.toml").read_text(encoding="utf-8")
    lines = robot.splitlines()
    head = 'robot = { system = "somesys", dataset = "somesys", title = "somesys", schedule = "0 2 * * *" }'
    assert head in lines and "# 其他形状及其键（按页面改写下面的 list）：" in lines
    first = 'id_number = { title = "身份证号", role = "id_number", key = true }'
    assert lines[lines.index("[fields]") + 1] == first and "[[field]]" not in lines
    assert (tmp_path / "tests" / "test_somesys_replay.py").exists()
    monkeypatch.setattr(connectors, "__path__", [*connectors.__path__, str(tmp_path / "connectors")])
    try:
        spec = declare(tmp_path / "robots" / "somesys.toml")
    finally:
        _ROBOTS.pop("somesys", None)
        sys.modules.pop("connectors.somesys", None)
    assert spec.system.name == "somesys"
    assert list(spec.record.model_fields) == ["id_number", "name", "community"]
    again = runner.invoke(app, args)
    assert again.exit_code == 2 and "已经存在" in again.output and "somesys.py" in again.output


def test_the_robot_is_written_one_line_a_field_with_its_notes_at_the_end(tmp_path: Path) -> None:
    fields = [
        Guess("archive_no", "档案编号", key=True, aliases=("archiveNo2",)),
        Guess("gender", "性别"),
        Guess("field_3", "婚姻状况", named=False),
        Guess("subsidy", "补贴", type="decimal", optional=True),
        Guess("community", "社区", role="community", source=False),
    ]
    options = {"page_param": "pageNum", "size": 100, "params": {"status": 1, "type[]": "a"}}
    listing = Listing("api", "/api/list", options, fields, 20, stated_total=41)
    found = Found("civil", "民政", BASE, "/login", "/elderly", "#u", True, "none", listing, "老人")
    text = robot_text(found, dataset="zz_written")
    lines = text.splitlines()
    assert lines[lines.index("[fields]") + 1 :] == [
        'archive_no = { title = "档案编号", aliases = ["archiveNo2"], key = true }',
        'gender = "性别"',
        'field_3 = "婚姻状况"  # TODO 改个英文名',
        'subsidy = { title = "补贴", type = "decimal", optional = true }',
        'community = { title = "社区", role = "community" }  # 列表上没有这一列：由账号的 scope 填写',
    ]
    listed = tomllib.loads(text)["list"]
    assert listed == {"shape": "api", "path": "/api/list", **options}
    (tmp_path / "civil.toml").write_text(text, encoding="utf-8")
    try:
        spec = declare(tmp_path / "civil.toml")
    finally:
        _ROBOTS.pop("civil", None)
    assert (spec.dataset, spec.title, spec.system.name) == ("zz_written", "老人", "civil")
    columns = {c.name: c for c in record_spec(spec.record).columns}
    assert columns["archive_no"].aliases == ("archiveNo2",) and columns["subsidy"].nullable


# The civil system's page, which loads a JSON API, is tests/test_tutorial.py's: new, check, record,
# replay and run, then every column against the truth.
@pytest.mark.browser
@pytest.mark.parametrize(
    ("system", "name", "page", "dataset", "titles"),
    [
        ("population", "newpop", "/persons", "persons", dict(PERSON_COLUMNS)),
    ],
)
def test_harvest_new_writes_a_robot_that_harvests_exactly_the_truth(
    system: str,
    name: str,
    page: str,
    dataset: str,
    titles: dict[str, str],
    settings: Settings,
    store: Store,
    vault: Vault,
    sandbox: Sandbox,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    box = sandbox[system]
    account = box.accounts[0]
    vault.add(
        name, account.account, username=account.username, password=account.password, scope=account.scope
    )
    args = ["new", name, "--login", f"{box.url}/login", "--list", f"{box.url}{page}"]
    result = runner.invoke(app, [*args, "--account", account.account, "--into", str(tmp_path)])
    assert result.exit_code == 0, result.output
    assert f"harvest check {name} --account {account.account}" in result.output
    written = tomllib.loads((tmp_path / "robots" / f"{name}.toml").read_text(encoding="utf-8"))
    assert written["list"]["shape"] == ("pages" if system == "population" else "api")

    monkeypatch.setattr(connectors, "__path__", [*connectors.__path__, str(tmp_path / "connectors")])
    try:
        robot = declare(tmp_path / "robots" / f"{name}.toml")
        (report,) = harvest(settings, store, vault, [(robot, account.account)])
    finally:
        _ROBOTS.pop(name, None)
        sys.modules.pop(f"connectors.{name}", None)
    assert (report.status, report.kind) == ("ok", None), report.message
    truth = box.truth(dataset, account.username)
    got = snapshot(store, name)
    fields = robot.record.model_fields.items()
    columns = {name: titles[f.title] for name, f in fields if f.title in titles} | {"community": "community"}
    assert len(columns) == len(titles) + 1  # every column of the list is harvested
    key = next(d.key for d in box.spec.datasets if d.name == dataset)
    got = got.rename(columns=columns)[list(columns.values())].sort_values(key).reset_index(drop=True)
    truth = truth[list(columns.values())].sort_values(key).reset_index(drop=True)
    pd.testing.assert_frame_equal(_text(got), _text(truth), check_dtype=False)


def _text(frame: pd.DataFrame) -> pd.DataFrame:
    text = frame.astype(object).where(frame.notna(), "").astype(str)
    return text.replace({"None": ""}).reset_index(drop=True)
