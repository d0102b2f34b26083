"""The files ``harvest new`` writes: a system declaration, a declarative robot and its replay test.

Each is text made here and written by ``write``, which refuses to overwrite anything: a
scaffold is a first draft, and the unit's own edits of an earlier one are worth more.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from robots._scaffold_fields import Guess
from robots._scaffold_find import Found, Listing, split_url

_BARE = re.compile(r"[A-Za-z0-9_-]+")
SHAPES = {
    "pages": "带页码的列表页",
    "follow": "靠“下一页”链接翻页的列表页",
    "load_more": "“加载更多”的卡片列表",
    "api": "页面调用的 JSON 接口",
}


@dataclass(frozen=True)
class Files:
    """What ``harvest new`` writes, by path relative to the project."""

    system: tuple[Path, str]
    robot: tuple[Path, str]
    test: tuple[Path, str]

    def __iter__(self) -> Any:
        return iter((self.system, self.robot, self.test))


def files(found: Found, *, dataset: str | None, login_url: str, list_url: str, account: str) -> Files:
    name = found.name
    return Files(
        (Path("connectors") / f"{name}.py", system_text(found, login_url, list_url)),
        (Path("robots") / f"{name}.toml", robot_text(found, dataset=dataset or name)),
        (Path("tests") / f"test_{name}_replay.py", test_text(name, account)),
    )


def write(into: Path, chosen: Iterable[tuple[Path, str]]) -> list[Path]:
    """Write every file under ``into``, or none if one of them is already there."""
    chosen = list(chosen)
    for path, _ in chosen:
        if (into / path).exists():
            raise FileExistsError(
                f"{into / path} 已经存在，harvest new 不会覆盖它：换一个系统名，或先把这个文件移走"
            )
    for path, text in chosen:
        (into / path).parent.mkdir(parents=True, exist_ok=True)
        (into / path).write_text(text, encoding="utf-8")
    return [into / path for path, _ in chosen]


def system_text(found: Found, login_url: str, list_url: str) -> str:
    proof = (
        "登录后列表页上才有、登录页上没有的元素"
        if found.proof_checked
        else "请检查：没有找到用户名或“退出”链接，暂用列表本身；它应只在登录后出现"
    )
    captcha = (
        "登录页上有验证码图片（先由 OCR 识别）" if found.captcha == "image" else "登录页上没有验证码图片"
    )
    return f'''"""{found.title}（{found.name}）：由 `harvest new` 写出，检查后可随意修改。

登录页 {login_url}，列表页 {list_url}。
"""

from connectors import FormLogin, System

{found.name} = System(
    name={_s(found.name)},
    title={_s(found.title)},
    base_url={_s(found.base_url)},
    home={_s(found.home)},  # 只有登录后才能打开的页面：用来确认保存的会话仍然有效
    logged_in={_s(found.logged_in)},  # {proof}
    login=FormLogin(path={_s(found.login_path)}),  # 表单由密码框找到，无需选择器
    captcha={_s(found.captcha)},  # {captcha}
    lockout_threshold=3,  # 输错几次密码会锁定账号：请向系统管理员确认后改成实际的次数
)
'''


def robot_text(found: Found, *, dataset: str) -> str:
    """The robot in the compact form the demo robots use: ``robot`` and ``list`` inline, a line a field."""
    listing = found.listing
    head = {"system": found.name, "dataset": dataset, "title": found.list_title, "schedule": "0 2 * * *"}
    lines = [
        f"# robots/{found.name}.toml：由 harvest new 写出的声明式机器人（格式见 README「声明式机器人」）",
        *_found(listing),
        "",
        f"robot = {_value(head)}",
        "",
        SHAPE_HELP,
        f"list = {_value({'shape': listing.shape, 'path': listing.path, **listing.options})}",
        "",
        "[fields]",
        *map(_field, listing.fields),
    ]
    return "\n".join(lines) + "\n"


def test_text(name: str, account: str) -> str:
    return f'''"""Robot {name} replayed from its cassette, with no system or browser (by `harvest new`).

Record the cassette once with `harvest record {name} --account {account}`; the test then reads it
through the robot and compares the records with tests/cassettes/{name}.expected.jsonl.
"""

from pathlib import Path

import pytest

from robots.testing import assert_records, replay

CASSETTE = Path(__file__).parent / "cassettes" / "{name}.cassette"


@pytest.mark.skipif(
    not CASSETTE.exists(), reason="还没有录制：先运行 harvest record {name} --account {account}"
)
def test_{name}_replays_to_the_expected_records() -> None:
    result = replay("{name}", CASSETTE)
    assert_records(result, CASSETTE.with_suffix(".expected.jsonl"))
'''


def summary(found: Found, written: list[Path], account: str) -> list[str]:
    """What ``harvest new`` tells the operator at the end, in Chinese."""
    listing, name = found.listing, found.name
    lines = ["已写出：", *(f"  {path}" for path in written), *_found(listing, prefix="")]
    lines.append("字段（表头 → 名字，类型，角色）：")
    for guess in listing.fields:
        todo = "（TODO 改个英文名）" if not guess.named else ""
        key = "，主键" if guess.key else ""
        lines.append(f"  {guess.title} → {guess.name}{todo}，{guess.type}，{guess.role or '-'}{key}")
    lines += [
        "接下来：",
        f"  harvest check {name} --account {account}      # 试读前几页，不发布",
        f"  harvest record {name} --account {account}     # 录制一次，供离线重放",
        f"  pytest tests/test_{name}_replay.py",
        f"  harvest run {name} --account {account}",
    ]
    return lines


def _found(listing: Listing, prefix: str = "# ") -> list[str]:
    stated = (
        f"，页面声明共 {listing.stated_total} 条"
        if listing.stated_total is not None
        else "，页面没有声明总数"
    )
    shape = f"{SHAPES.get(listing.shape, listing.shape)}（shape = {listing.shape}）"
    lines = [f"{prefix}发现：{shape}{stated}，第一页 {listing.rows} 条。"]
    checks = [*listing.notes, "类型、optional 和主键是按第一页的样本猜的：运行 harvest check 核对"]
    if any(not g.named for g in listing.fields):
        checks.append("名为 field_N 的字段请改个英文名")
    return lines + [f"{prefix}请检查：{check}" for check in checks]


def _field(guess: Guess) -> str:
    """``name = { title = "姓名", role = "name" }``; ``gender = "性别"`` for a field that is only a title."""
    keys = {
        "title": guess.title,
        "aliases": list(guess.aliases),
        "type": guess.type if guess.type != "str" else None,
        "role": guess.role,
        "key": guess.key,
        "optional": guess.optional,
    }
    written = {key: value for key, value in keys.items() if value}
    notes = [] if guess.named else ["TODO 改个英文名"]
    if not guess.source:
        notes.append("列表上没有这一列：由账号的 scope 填写")
    line = f"{guess.name} = {_s(guess.title) if len(written) == 1 else _value(written)}"
    return line + (f"  # {'；'.join(notes)}" if notes else "")


def _value(value: Any) -> str:
    """A TOML value: JSON's strings, numbers, booleans and arrays are TOML's too; tables inline."""
    if isinstance(value, dict) and value:  # spaced as the demo robots write them: { shape = "pages" }
        return "{ " + ", ".join(f"{_key(k)} = {_value(v)}" for k, v in value.items()) + " }"
    return json.dumps(value, ensure_ascii=False)


def _key(name: str) -> str:
    """A bare key where TOML allows one (every field name); a query parameter may need quotes."""
    return name if _BARE.fullmatch(name) else _s(name)


def _s(text: str) -> str:
    return json.dumps(text, ensure_ascii=False)


SHAPE_HELP = """\
# 其他形状及其键（按页面改写下面的 list）：
#   pages:     path 含 {n}（页码的位置），table = "表格的 css"，last = "翻页栏链接的 css"，render = false
#   follow:    table = "css"，next = "“下一页”链接的 css"，render = true（链接是 javascript: 时）
#   load_more: item = "一张卡片的 css"，button = "“加载更多”按钮的 css"
#   api:       page_param = "pageNum"，size_param = "pageSize"，size = 100，rows = "rows"，total = "total"
#   excel:     sheet = 0"""


def template(name: str, login_url: str | None, list_url: str | None, title: str | None) -> Found:
    """A system and a list of placeholders, for a system nobody can reach from here yet."""
    base, login = split_url(login_url) if login_url else ("http://127.0.0.1:8080", "/login")
    home = split_url(list_url)[1] if list_url else "/list"
    listing = Listing(
        "pages",
        home.split("?")[0] + "?page={n}",
        {"table": "table.list", "last": ".pagination a"},
        [
            Guess("id_number", "身份证号", role="id_number", key=True),
            Guess("name", "姓名", role="name"),
            Guess("community", "社区", role="community", source=False),
        ],
        0,
        notes=["这是模板：网址、选择器和字段都是占位，请照着列表页改写"],
    )
    return Found(
        name, title or name, base, login, home, "#current-user", False, "none", listing, title or name
    )
