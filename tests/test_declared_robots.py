"""A robot declared in a TOML file registers like a Python one, and each mistake in it names its line."""

from __future__ import annotations

import datetime as dt
import inspect
import io
import json
import re
import sys
import uuid
from collections.abc import Iterator, Mapping
from decimal import Decimal
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import pandas as pd
import pytest

import robots.runtime
from connectors import Fetched, Polite, Politeness, System, systems
from connectors.sandbox import civil, population
from robots import Walk
from robots._declared import declare
from robots._records import validated
from robots.runtime import RobotDeclarationError, broken, discover, registered, run_blocking
from sandbox import Sandbox
from settings import Settings, load_settings
from store import Store, record_spec
from tests.runtime_helpers import harvest, snapshot
from vault import Vault

ELDERLY = """\
# the civil system's elderly list, read from its JSON API
[robot]
name = "toml_elderly"
system = "civil"
dataset = "toml_elderly"
title = "养老服务"
schedule = "30 3 * * *"
max_pages = 50
allow = ["image"]

[list]
shape = "api"
path = "/api/elderly/list"
size = 50
params = {status = "在册"}

[[field]]
name = "archive_no"
title = "档案编号"
key = true

[[field]]
name = "id_number"
title = "身份证号"
aliases = ["idCard"]
role = "id_number"

[[field]]
name = "subsidy"
title = "补贴标准(元/月)"
type = "decimal"

[[field]]
name = "start_date"
title = "开始日期"
type = "date"

[[field]]
name = "phone"
title = "联系电话"
role = "phone"
optional = true
"""

README = (Path(__file__).parent.parent / "README.md").read_text(encoding="utf-8")
# The tutorial's block is what `harvest new` writes for a system it declares (tests/test_tutorial.py).
EXAMPLES = re.findall(r"(?<!-->\n)```toml\n(.*?)```", README, re.S)

SMALL = """\
[robot]
system = "civil"

[list]
shape = "pages"
path = "/elderly?page={n}"
table = "table.elderly"

[[field]]
name = "archive_no"
title = "档案编号"
key = true

[[field]]
name = "name"
title = "姓名"
"""


def _edit(text: str, old: str, new: str) -> str:
    assert old in text, old
    return text.replace(old, new, 1)


# Each mistake: the file's text, the line the message must name, and words it must say.
MISTAKES = {
    "syntax": (_edit(SMALL, 'system = "civil"', "system = civil"), 2, "TOML 写法有误"),
    "unknown_table": (SMALL + '\n[robots]\nname = "x"\n', 18, "[robots] 不是声明的一部分"),
    "both_field_spellings": (
        _edit(SMALL, '[[field]]\nname = "name"', '[fields]\nname = "name"'),
        9,
        "只用一种写法",
    ),
    "top_level_key": ('shape = "pages"\n' + SMALL, 1, "shape = ... 不是声明的一部分"),
    "robot_key_typo": (
        _edit(SMALL, 'system = "civil"', 'system = "civil"\nshedule = "0 2 * * *"'),
        3,
        "shedule",
    ),
    "list_key_typo": (_edit(SMALL, 'table = "table.elderly"', 'tabel = "table.elderly"'), 7, "tabel"),
    "field_key_typo": (_edit(SMALL, 'title = "姓名"', 'tilte = "姓名"'), 16, "tilte"),
    "missing_system": (_edit(SMALL, 'system = "civil"', 'title = "养老"'), 1, "缺少 system"),
    "missing_list": (
        SMALL.replace(SMALL[SMALL.index("[list]") : SMALL.index("[[field]]")], ""),
        1,
        "缺少 [list]",
    ),
    "unknown_shape": (
        _edit(SMALL, 'shape = "pages"', 'shape = "page"'),
        5,
        "pages、follow、load_more、api、excel",
    ),
    "missing_path": (_edit(SMALL, 'path = "/elderly?page={n}"\n', ""), 4, "缺少 path"),
    "follow_without_next": (
        _edit(SMALL, 'shape = "pages"\npath = "/elderly?page={n}"', 'shape = "follow"\npath = "/elderly"'),
        4,
        "缺少 next",
    ),
    "pages_without_n": (_edit(SMALL, 'path = "/elderly?page={n}"', 'path = "/elderly"'), 6, "{n}"),
    "neither_table_nor_cards": (_edit(SMALL, 'table = "table.elderly"\n', ""), 4, "二者选一"),
    "label_with_table": (
        _edit(SMALL, 'table = "table.elderly"', 'table = "t"\nlabel = "th"'),
        8,
        "只用于 cards",
    ),
    "frame_unrendered": (
        _edit(
            SMALL, 'pages"\npath = "/elderly?page={n}"', 'follow"\npath = "/e"\nnext = "a"\nframe = "#main"'
        ),
        8,
        "render = true",
    ),
    "wrong_kind": (
        _edit(SMALL, 'table = "table.elderly"', 'table = "t"\nrender = "yes"'),
        8,
        "true 或 false",
    ),
    "count_as_flag": (_edit(SMALL, 'system = "civil"', 'system = "civil"\nmax_pages = true'), 3, "整数"),
    "bad_type": (_edit(SMALL, 'title = "姓名"', 'title = "姓名"\ntype = "text"'), 17, "decimal"),
    "bad_role": (
        _edit(SMALL, 'title = "姓名"', 'title = "姓名"\nrole = "names"'),
        17,
        "没有 'names' 这个角色",
    ),
    "no_key": (_edit(SMALL, "key = true\n", ""), 9, "没有自然键"),
    "optional_key": (_edit(SMALL, "key = true", "key = true\noptional = true"), 13, "去掉 optional"),
    "bad_field_name": (_edit(SMALL, 'name = "name"', 'name = "full name"'), 15, "字段名 'full name'"),
    "method_field_name": (_edit(SMALL, 'name = "name"', 'name = "copy"'), 15, "字段名 'copy'"),
    "twice": (_edit(SMALL, 'name = "name"', 'name = "archive_no"'), 15, "写了两次"),
    "no_title": (_edit(SMALL, 'title = "姓名"\n', ""), 14, "缺少 title"),
    "no_fields": (SMALL[: SMALL.index("[[field]]")], 1, "没有字段"),
    "unknown_system": (_edit(SMALL, 'system = "civil"', 'system = "civl"'), 2, "population"),
    "bad_schedule": (
        _edit(SMALL, 'system = "civil"', 'system = "civil"\nschedule = "nightly"'),
        3,
        "五段 cron",
    ),
    "bad_max_pages": (_edit(SMALL, 'system = "civil"', 'system = "civil"\nmax_pages = 0'), 3, "不小于 1"),
    "bad_start": (_edit(SMALL, 'table = "table.elderly"', 'table = "t"\nstart = 2'), 8, "0 或 1"),
    "bad_tolerance": (
        _edit(SMALL, 'system = "civil"', 'system = "civil"\ninvalid_tolerance = 5'),
        3,
        "0 到 1",
    ),
    "bad_dataset": (_edit(SMALL, 'system = "civil"', 'system = "civil"\ndataset = "养老"'), 3, "数据集名"),
}


@pytest.fixture
def package(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[str, Path]]:
    """A throwaway robots package on sys.path (the real ``robots/`` folder is never written)."""
    folder = tmp_path / "tomlbots"
    folder.mkdir()
    (folder / "__init__.py").write_text("")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.chdir(tmp_path)
    yield "tomlbots", folder
    for name in [n for n, spec in registered().items() if spec.module.startswith("tomlbots.")]:
        del robots._registry._ROBOTS[name]
    for module in [m for m in sys.modules if m.startswith("tomlbots")]:
        del sys.modules[module]


def test_a_declared_robot_is_registered_as_a_python_robot_would_be(package: tuple[str, Path]) -> None:
    name, folder = package
    (folder / "sandbox_civil.toml").write_text(ELDERLY, encoding="utf-8")
    spec = discover(name)["toml_elderly"]
    assert broken(name) == {}
    assert spec.system is civil and spec.dataset == "toml_elderly" and spec.title == "养老服务"
    assert (spec.schedule, spec.max_pages, spec.allow) == ("30 3 * * *", 50, frozenset({"image"}))
    assert spec.module == "tomlbots.sandbox_civil" and spec.doc == "养老服务"
    assert inspect.isasyncgenfunction(spec.walk) and spec.walk.__name__ == "toml_elderly"
    assert (spec.record.__name__, spec.record.__module__) == ("TomlElderly", "tomlbots.sandbox_civil")
    columns = {c.name: c for c in record_spec(spec.record).columns}
    assert list(columns) == ["archive_no", "id_number", "subsidy", "start_date", "phone"]
    assert record_spec(spec.record).key == ("archive_no",)
    assert (columns["id_number"].role, columns["id_number"].aliases) == ("id_number", ("idCard",))
    assert (columns["subsidy"].type, columns["start_date"].type) == (Decimal, dt.date)
    assert columns["phone"].nullable and not columns["archive_no"].nullable
    assert columns["subsidy"].label == "补贴标准(元/月)"


def test_defaults_come_from_the_file_name(package: tuple[str, Path]) -> None:
    name, folder = package
    (folder / "toml_small.toml").write_text(SMALL, encoding="utf-8")
    spec = discover(name)["toml_small"]
    assert (spec.dataset, spec.title, spec.schedule, spec.max_pages) == ("toml_small",) * 2 + (
        "0 2 * * *",
        None,
    )
    assert spec.record.__name__ == "TomlSmall"


@pytest.mark.parametrize("mistake", list(MISTAKES))
def test_each_mistake_is_refused_with_its_file_and_line(package: tuple[str, Path], mistake: str) -> None:
    text, line, words = MISTAKES[mistake]
    _, folder = package
    path = folder / "wrong.toml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(RobotDeclarationError) as raised:
        declare(path, "tomlbots")
    message = str(raised.value)
    assert message.startswith(f"tomlbots/wrong.toml:{line}: "), message
    assert words in message and "\n" not in message, message


def test_a_broken_file_is_kept_aside_while_the_others_register(package: tuple[str, Path]) -> None:
    name, folder = package
    (folder / "good.toml").write_text(SMALL, encoding="utf-8")
    (folder / "bad.toml").write_text(MISTAKES["list_key_typo"][0], encoding="utf-8")
    (folder / "plain.py").write_text(
        "from connectors.sandbox import civil\nfrom robots import Field, Record, robot\n\n\n"
        "class Thing(Record):\n    code: str = Field(key=True, title='编号')\n\n\n"
        "@robot(system=civil, record=Thing)\nasync def plain(walk):\n    yield {}\n",
        encoding="utf-8",
    )
    found = discover(name)
    assert {"good", "plain"} <= set(found) and "bad" not in found
    assert list(broken(name)) == ["tomlbots.bad"]
    assert broken(name)["tomlbots.bad"].startswith("tomlbots/bad.toml:7: [list] 里没有 tabel")
    assert "tomlbots.bad" in robots.runtime.broken(name)  # what `harvest list` and `status` show
    (folder / "bad.toml").write_text(SMALL, encoding="utf-8")  # mended
    (folder / "good.toml").unlink()  # removed
    found = discover(name)
    assert "bad" in found and "good" not in found and broken(name) == {}


def test_a_toml_robot_of_a_python_robots_name_names_both_files(package: tuple[str, Path]) -> None:
    name, folder = package
    (folder / "a_plain.py").write_text(
        "from connectors.sandbox import civil\nfrom robots import Field, Record, robot\n\n\n"
        "class Thing(Record):\n    code: str = Field(key=True, title='编号')\n\n\n"
        "@robot(system=civil, record=Thing)\nasync def twin(walk):\n    yield {}\n",
        encoding="utf-8",
    )
    (folder / "b_twin.toml").write_text(
        _edit(SMALL, "[robot]\n", '[robot]\nname = "twin"\n'), encoding="utf-8"
    )
    (folder / "c_twin.toml").write_text(
        _edit(SMALL, "[robot]\n", '[robot]\nname = "twin"\n'), encoding="utf-8"
    )
    (folder / "a_plain.toml").write_text(SMALL, encoding="utf-8")  # the same module name as a_plain.py
    found = discover(name)
    assert found["twin"].module == "tomlbots.a_plain"
    why = broken(name)
    assert why["tomlbots.b_twin"].startswith("tomlbots/b_twin.toml:2: 有两个机器人都叫 'twin'")
    assert "tomlbots/a_plain.py" in why["tomlbots.b_twin"]
    assert "tomlbots/a_plain.py" in why["tomlbots.c_twin"]  # the first file's, not another .toml's twin
    assert why["tomlbots.a_plain"].startswith("tomlbots/a_plain.toml:1: 与 tomlbots/a_plain.py 同名")


def test_two_toml_robots_of_one_name_name_both_files(package: tuple[str, Path]) -> None:
    name, folder = package
    for stem in ("one", "two"):
        (folder / f"{stem}.toml").write_text(_edit(SMALL, "[robot]\n", '[robot]\nname = "same"\n'))
    assert discover(name)["same"].module == "tomlbots.one"
    why = broken(name)["tomlbots.two"]
    assert why.startswith("tomlbots/two.toml:2: ") and "tomlbots/one.toml" in why


def test_systems_are_found_in_every_connectors_module(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    found = systems()
    assert found["population"] is population and found["civil"] is civil
    assert {"assist", "disability", "health", "market"} <= set(found)
    folder = tmp_path / "unitconnectors"
    folder.mkdir()
    (folder / "__init__.py").write_text("")
    (folder / "_framework.py").write_text("raise RuntimeError('framework modules are not read')\n")
    declared = (
        "from connectors import System\n\n"
        "labour = System(name='labour', title='就业', base_url='http://127.0.0.1:1', home='/', "
        "logged_in='#u')\n"
    )
    (folder / "a.py").write_text(declared)
    (folder / "b.py").write_text("from unitconnectors.a import labour\n")  # the same system, imported
    monkeypatch.syspath_prepend(str(tmp_path))
    try:
        assert list(systems("unitconnectors")) == ["labour"]
        assert isinstance(systems("unitconnectors")["labour"], System)
        (folder / "c.py").write_text(declared.replace("就业", "劳动"))
        with pytest.raises(ValueError, match=r"'labour'（unitconnectors\.a 和 unitconnectors\.c）"):
            systems("unitconnectors")
    finally:
        for module in [m for m in sys.modules if m.startswith("unitconnectors")]:
            del sys.modules[module]


ROWS = [("A1", "甲"), ("A2", "乙"), ("A3", "丙")]
THINGS = """\
[robot]
system = "civil"

[list]
{list}

[[field]]
name = "code_no"
title = "编号"
key = true

[[field]]
name = "name"
title = "名称"

[[field]]
name = "community"
title = "社区"
role = "community"
"""
# Each shape's [list], read from the small system ``Canned`` serves: the same three records each time.
LISTS = {
    "api": 'shape = "api"\npath = "/api/list"\npage_param = "p"\nsize = 2\nparams = {kind = "x"}',
    "excel": 'shape = "excel"\npath = "/export.xlsx"',
    "pages": 'shape = "pages"\npath = "/list?page={n}"\ntable = "table.list"',
    "cards": 'shape = "pages"\npath = "/cards?page={n}"\ncards = "div.card"\nlabel = "span.k"\nvalue = "b"',
    "follow": 'shape = "follow"\npath = "/list?page=1"\nnext = "a.next"\ntable = "table.list"',
}


class Canned:
    """A ``Fetcher`` (the protocol a replay implements) over a small list of three records, two to a page."""

    system = civil
    polite = Polite(Politeness(concurrency=2, rate=1000), name="canned")

    async def fetch(
        self, path: str, *, params: Mapping[str, Any] | None = None, form: Any = None, what: str = ""
    ) -> Fetched:
        url = urlsplit(self.system.url(path))
        query = dict(parse_qsl(url.query)) | {k: str(v) for k, v in (params or {}).items()}
        n = int(query.get("page") or query.get("p") or 1)
        rows = ROWS[2 * (n - 1) : 2 * n]
        if url.path == "/api/list":
            assert (query["kind"], query["pageSize"]) == ("x", "2")
            body = json.dumps({"total": 3, "rows": [{"codeNo": c, "name": m} for c, m in rows]})
        elif url.path == "/export.xlsx":
            buffer = io.BytesIO()
            pd.DataFrame(ROWS, columns=["编号", "名称"]).to_excel(buffer, index=False)
            return Fetched(url.geturl(), 200, {}, buffer.getvalue())
        elif url.path == "/cards":
            cards = "".join(
                f'<div class="card"><span class="k">编号</span><b>{c}</b>'
                f'<span class="k">名称</span><b>{m}</b></div>'
                for c, m in rows
            )
            body = f"<html><body>{cards}</body></html>"
        else:
            cells = "".join(f"<tr><td>{c}</td><td>{m}</td></tr>" for c, m in rows)
            more = f'<a class="next" href="/list?page={n + 1}">下一页</a>' if n == 1 else ""
            head = "<tr><th>编号</th><th>名称</th></tr>"
            body = f'<html><body><table class="list">{head}{cells}</table>{more}</body></html>'
        return Fetched(url.geturl(), 200, {"content-type": "text/html; charset=utf-8"}, body.encode())


@pytest.mark.parametrize("shape", list(LISTS))
def test_each_shape_walks_its_walk_method_and_reads_rows_into_the_record(
    package: tuple[str, Path], shape: str
) -> None:
    _, folder = package
    path = folder / f"things_{shape}.toml"
    path.write_text(THINGS.format(list=LISTS[shape]), encoding="utf-8")
    spec = declare(path, "tomlbots")
    walk = Walk(Canned(), run_id=uuid.uuid4().hex, account="a", scope="c1", settings=load_settings())

    async def read() -> list[tuple[str, str, str]]:
        return [(r.code_no, r.name, r.community) async for r in validated(spec, walk)]  # type: ignore[attr-defined]

    assert run_blocking(read) == [(c, m, "c1") for c, m in ROWS]


def test_every_toml_example_of_the_readme_declares_a_robot(package: tuple[str, Path]) -> None:
    name, folder = package
    assert EXAMPLES
    for n, example in enumerate(EXAMPLES):
        (folder / f"example_{n}.toml").write_text(example, encoding="utf-8")
    discover(name)
    assert broken(name) == {}
    assert {spec.module for spec in registered().values()} >= {
        f"{name}.example_{n}" for n in range(len(EXAMPLES))
    }


@pytest.fixture
def readme_robot(tmp_path: Path) -> Iterator[str]:
    """The README's example, saved as it says, in a second folder of the real ``robots`` package."""
    (example,) = [e for e in EXAMPLES if 'system = "population"' in e and 'shape = "pages"' in e]
    folder = tmp_path / "unit_robots"
    folder.mkdir()
    (folder / "residents_toml.toml").write_text(example, encoding="utf-8")
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(robots, "__path__", [*robots.__path__, str(folder)])
        assert discover()["residents_toml"].module == "robots.residents_toml", broken()
        yield "residents_toml"
    discover()  # forget it again for the tests after this one


@pytest.mark.browser
def test_the_readme_pages_robot_harvests_exactly_the_ground_truth(
    readme_robot: str, settings: Settings, store: Store, vault: Vault, sandbox: Sandbox
) -> None:
    system = sandbox["population"]
    account = system.accounts[0]
    [report] = harvest(settings, store, vault, [(readme_robot, account.account)])
    assert (report.status, report.kind) == ("ok", None), report.message
    spec = registered()[readme_robot]
    truth = system.truth("persons", account.username).sort_values("id_number").reset_index(drop=True)
    got = snapshot(store, spec.dataset, account.scope).sort_values("id_number").reset_index(drop=True)
    fields = [f for f in spec.record.model_fields if f in truth.columns]
    assert {"id_number", "address", "community"} <= set(fields)  # read by an alias; filled from the scope
    assert len(got) == len(truth) > 100  # more than one page of 100
    assert (got["community"] == account.scope).all()
    pd.testing.assert_frame_equal(_text(got[fields]), _text(truth[fields]), check_dtype=False)


def _text(frame: pd.DataFrame) -> pd.DataFrame:
    # Missing values are None, NaN or "" depending on the column's type and pandas' version.
    text = frame.astype(object).where(frame.notna(), "").astype(str)
    return text.replace({"None": ""}).reset_index(drop=True)
