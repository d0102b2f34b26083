"""Tables as real back offices write them: spans, grouped headers, <th> row labels, empty markers, totals."""

from __future__ import annotations

import pytest

from connectors import LayoutChanged
from robots._page import Page, Tally

COLUMNS = {"姓名": "name", "身份证号": "id_number"}


def table(head: str, body: str, *, css: str = "t") -> str:
    return (
        f'<html><body><table class="{css}"><thead>{head}</thead><tbody>{body}</tbody></table></body></html>'
    )


def read(html: str, columns: dict[str, str] = COLUMNS) -> tuple[Page, list[dict[str, str]]]:
    page = Page(html, "http://x/list")
    return page, page.table("table.t", columns)


def test_body_rows_led_by_a_th_cell_are_read_like_any_other() -> None:
    html = table(
        "<tr><th>姓名</th><th>身份证号</th><th>操作</th></tr>",
        '<tr><th scope="row"><a href="/p/1">张三</a></th><td>110105194912310029</td><td>详情</td></tr>'
        '<tr><th scope="row"><a href="/p/2">李四</a></th><td>11010519491231002X</td><td>详情</td></tr>',
    )
    page, rows = read(html)
    assert rows == [
        {"name": "张三", "id_number": "110105194912310029"},
        {"name": "李四", "id_number": "11010519491231002X"},
    ]
    assert (page.rows, page.dropped, page.said_empty) == (2, 0, False)


def test_colspan_in_the_header_and_the_body_fills_every_column_it_covers() -> None:
    html = table(
        "<tr><th>姓名</th><th colspan='2'>住址</th><th>曾用名</th><th>身份证号</th></tr>",
        "<tr><td>张三</td><td>东湖花园</td><td>1栋</td><td>张叁</td><td>110105194912310029</td></tr>"
        "<tr><td colspan='2'>李四</td><td>2栋</td><td>-</td><td>11010519491231002X</td></tr>",
    )
    page, rows = read(html, {"姓名": "name", "住址": "compound", "曾用名": "alias", "身份证号": "id_number"})
    assert rows == [
        {"name": "张三", "compound": "东湖花园", "alias": "张叁", "id_number": "110105194912310029"},
        {"name": "李四", "compound": "李四", "alias": "-", "id_number": "11010519491231002X"},
    ]
    assert page.dropped == 0


def test_a_rowspan_cell_repeats_in_the_rows_below() -> None:
    html = table(
        "<tr><th>户号</th><th>姓名</th><th>身份证号</th></tr>",
        "<tr><td rowspan='3'>H001</td><td>张三</td><td>1</td></tr>"
        "<tr><td>李四</td><td>2</td></tr>"
        "<tr><td>王五</td><td rowspan='2'>3</td></tr>"
        "<tr><td>H002</td><td>赵六</td></tr>",
    )
    page, rows = read(html, {"户号": "household_no", "姓名": "name", "身份证号": "id_number"})
    assert rows == [
        {"household_no": "H001", "name": "张三", "id_number": "1"},
        {"household_no": "H001", "name": "李四", "id_number": "2"},
        {"household_no": "H001", "name": "王五", "id_number": "3"},
        {"household_no": "H002", "name": "赵六", "id_number": "3"},
    ]
    assert page.dropped == 0


def test_spans_as_browsers_read_them_zero_and_sloppy_values_included() -> None:
    html = table(
        "<tr><th>户号</th><th>姓名</th><th>身份证号</th></tr>",
        "<tr><td rowspan='0'>H001</td><td colspan='0'>张三</td><td>1</td></tr>"
        "<tr><td colspan='2px'>李四</td></tr>",
    )
    _, rows = read(html, {"户号": "household_no", "姓名": "name", "身份证号": "id_number"})
    assert rows == [
        {"household_no": "H001", "name": "张三", "id_number": "1"},
        {"household_no": "H001", "name": "李四", "id_number": "李四"},
    ]


GROUPED = (
    "<tr><th rowspan='2'>序号</th><th colspan='2'>基本信息</th><th colspan='2'>联系人</th></tr>"
    "<tr><th>姓名</th><th>身份证号</th><th>姓名</th><th>电话</th></tr>"
)


def test_under_grouped_headers_the_lowest_header_names_a_column_or_the_group_path_does() -> None:
    html = table(
        GROUPED, "<tr><td>1</td><td>张三</td><td>110105194912310029</td><td>李四</td><td>138</td></tr>"
    )
    columns = {
        "序号": "n",
        "姓名": "name",
        "身份证号": "id_number",
        "联系人/姓名": "contact",
        "电话": "phone",
    }
    _, rows = read(html, columns)
    assert rows == [
        {"n": "1", "name": "张三", "id_number": "110105194912310029", "contact": "李四", "phone": "138"}
    ]
    with pytest.raises(LayoutChanged, match="表头是 序号、姓名、身份证号、姓名、电话"):
        read(html, {"基本信息": "group"})


def test_hidden_columns_keep_their_positions_and_can_be_named() -> None:
    html = table(
        "<tr><th style='display:none'>ID</th><th>姓名</th><th hidden>内部编号</th><th>身份证号</th></tr>",
        "<tr><td style='display:none'>9</td><td>张三</td><td hidden>N-1</td><td>110105194912310029</td></tr>",
    )
    _, rows = read(html, {**COLUMNS, "ID": "id", "内部编号": "internal"})
    assert rows == [{"name": "张三", "id_number": "110105194912310029", "id": "9", "internal": "N-1"}]


def test_without_a_thead_the_leading_rows_of_th_cells_are_the_header() -> None:
    html = (
        "<table class='t'><tr><th colspan='2'>居民</th></tr><tr><th>姓名</th><th>身份证号</th></tr>"
        "<tr><td>张三</td><td>1</td></tr><tr><th>李四</th><td>2</td></tr></table>"
    )
    _, rows = read(html)
    assert rows == [{"name": "张三", "id_number": "1"}, {"name": "李四", "id_number": "2"}]


def test_every_tbody_is_read_and_a_table_nested_in_a_cell_adds_no_cells() -> None:
    html = (
        "<table class='t'><thead><tr><th>姓名</th><th>身份证号</th></tr></thead>"
        "<tbody><tr><td>张三</td><td>1</td></tr></tbody>"
        "<tbody><tr><td><table><tr><td>李</td><td>四</td></tr></table></td><td>2</td></tr></tbody>"
        "<tfoot><tr><td>合计</td><td>2 人</td></tr></tfoot></table>"
    )
    _, rows = read(html)
    assert rows == [{"name": "张三", "id_number": "1"}, {"name": "李四", "id_number": "2"}]


@pytest.mark.parametrize(
    "marker",
    [
        "暂无数据",
        "没有数据",
        "无数据",
        "无记录",
        "没有找到匹配的记录",
        "查询结果为空",
        "No data",
        "No data available in table",
        "No matching records found",
        "Showing 0 to 0 of 0 entries",
        "暂无数据，请调整查询条件",
    ],
)
def test_a_table_that_says_it_is_empty_is_positively_empty(marker: str) -> None:
    tally = Tally()
    head = "<tr><th>姓名</th><th>身份证号</th></tr>"
    page = Page(
        table(head, f"<tr><td colspan='2' class='empty'>{marker}</td></tr>"), "http://x/", tally=tally
    )
    assert page.table("table.t", COLUMNS) == []
    assert (page.rows, page.dropped, page.said_empty) == (0, 0, True)
    assert tally == Tally(rows=0, dropped=0, said_empty=True)


def test_a_marker_in_a_row_of_empty_cells_is_recognised_too() -> None:
    page, rows = read(
        table("<tr><th>姓名</th><th>身份证号</th></tr>", "<tr><td></td><td> 暂无 数据 </td></tr>")
    )
    assert rows == [] and page.said_empty and page.dropped == 0


def test_rows_that_cannot_be_mapped_are_dropped_not_skipped() -> None:
    tally = Tally()
    head = "<tr><th>序号</th><th>姓名</th><th>身份证号</th></tr>"
    first = Page(
        table(
            head,
            "<tr><td>1</td><td>张三</td><td>1</td></tr>"
            "<tr><td>2</td><td>李四</td></tr>"  # a cell short
            "<tr><td>3</td></tr>"
            "<tr><td colspan='3'>东湖社区</td></tr>"  # a group heading among records: not a record
            "<tr><td></td><td></td><td></td></tr>",  # padding
        ),
        "http://x/1",
        tally=tally,
    )
    assert first.table("table.t", COLUMNS) == [{"name": "张三", "id_number": "1"}]
    assert (first.rows, first.dropped, first.said_empty) == (1, 2, False)
    # A message in place of the records that is no empty marker: the run must not read it as empty.
    second = Page(
        table(head, "<tr><td colspan='3'>系统繁忙，请稍后再试</td></tr>"), "http://x/2", tally=tally
    )
    assert second.table("table.t", COLUMNS) == []
    assert (second.dropped, second.said_empty) == (1, False)
    assert tally == Tally(rows=1, dropped=3, said_empty=False)


def test_a_systems_own_empty_wording_can_be_added() -> None:
    html = table(
        "<tr><th>姓名</th><th>身份证号</th></tr>", "<tr><td colspan='2'>该社区尚未录入居民</td></tr>"
    )
    page = Page(html, "http://x/")
    assert page.table("table.t", COLUMNS, empty=["该社区尚未录入"]) == []
    assert (page.dropped, page.said_empty) == (0, True)


def test_a_header_row_repeated_in_the_body_is_no_record() -> None:
    head = "<tr><th>姓名</th><th>身份证号</th></tr>"
    html = table(head, "<tr><td>张三</td><td>1</td></tr>" + head + "<tr><td>李四</td><td>2</td></tr>")
    page, rows = read(html)
    assert [r["name"] for r in rows] == ["张三", "李四"] and page.dropped == 0


@pytest.mark.parametrize(
    ("shown", "named"),
    [
        ("身份证 号", "身份证号"),
        ("姓名：", "姓名"),
        ("姓名:", "姓名"),
        ("姓名*", "姓名"),
        ("* 姓名", "姓名"),
        ("姓名 ▲", "姓名"),
        ("姓名<i class='sort'>↓</i>", "姓名"),
        ("姓\n  名", "姓 名"),
    ],
)
def test_headers_match_without_whitespace_colons_stars_or_sort_arrows(shown: str, named: str) -> None:
    html = table(f"<tr><th>{shown}</th><th>x</th></tr>", "<tr><td>张三</td><td>1</td></tr>")
    assert read(html, {named: "name"})[1] == [{"name": "张三"}]


def test_a_missing_header_names_what_the_table_shows() -> None:
    html = table("<tr><th>姓名</th><th>公民身份号码</th></tr>", "<tr><td>张三</td><td>1</td></tr>")
    with pytest.raises(LayoutChanged, match=r"没有 身份证号 列（表头是 姓名、公民身份号码）"):
        read(html)


@pytest.mark.parametrize(
    "wording",
    [
        "共 5000 条",
        "共5,000条记录",
        "共 5000 项",
        "共有 5000 人",
        "总计：5000",
        "总数: 5000",
        "合计 5000 条",
        "Total 5000",
        "total: 5,000",
        "Showing 1 to 10 of 5000 entries",
        "共 250 页，共 5000 条",
    ],
)
def test_the_count_a_page_states_is_read(wording: str) -> None:
    page = Page(f"<div class='pager'><span>{wording}</span> <a>1</a><a>2</a></div>", "http://x/")
    assert page.stated_total() == 5000
    assert page.stated_total() == 5000


@pytest.mark.parametrize(
    "wording",
    [
        "共 250 页",
        "第 1 页 / 共 250 页",
        "合计：12,345.00 元",
        "合计 300 元",
        "Total pages: 250",
        "Subtotal 30",
        "无",
    ],
)
def test_pages_and_amounts_are_no_stated_count(wording: str) -> None:
    assert Page(f"<div>{wording}</div>", "http://x/").stated_total() is None


def test_a_count_in_a_script_is_not_stated_by_the_page() -> None:
    shown = "<div>居民</div><script>var pager = '共 9 条';</script><style>/* 共 8 条 */</style>"
    html = shown + "<div>共 12 条</div>"
    page = Page(html, "http://x/")
    assert page.stated_total() == 12


def test_equal_rows_have_equal_fingerprints_in_any_column_or_field_order() -> None:
    one = table(
        "<tr><th>姓名</th><th>身份证号</th></tr>",
        "<tr><td>张三</td><td>1</td></tr><tr><td>李四</td><td>2</td></tr>",
    )
    other = table(
        "<tr><th>身份证号</th><th>姓名</th></tr>",
        "<tr><td>2</td><td>李四</td></tr><tr><td>1</td><td>张三</td></tr>",
    )
    first, second = read(one)[0], read(other, {"身份证号": "id_number", "姓名": "name"})[0]
    assert len(first.fingerprints) == 2 and first.fingerprints == second.fingerprints
    changed = read(one.replace("李四", "李肆"))[0]
    assert len(changed.fingerprints & first.fingerprints) == 1


def test_cards_feed_the_same_counters() -> None:
    tally = Tally()
    html = "".join(f"<div class='c'><dl><dt>名称</dt><dd>{name}</dd></dl></div>" for name in ("甲店", "乙店"))
    page = Page(html, "http://x/", tally=tally)
    assert page.records(".c", {"名称": "name"}) == [{"name": "甲店"}, {"name": "乙店"}]
    assert (page.rows, tally.rows, len(page.fingerprints)) == (2, 2, 2)
    assert (
        page.fingerprints
        == read(
            table("<tr><th>名称</th></tr>", "<tr><td>甲店</td></tr><tr><td>乙店</td></tr>"), {"名称": "name"}
        )[0].fingerprints
    )
