"""Offline replay: each demo robot reads its recorded cassette back without network, login or browser.

The cassettes in ``tests/cassettes`` come from ``tests/cassettes/regenerate.py`` (a small private
sandbox, recorded with ``harvest record --plain``); only the last test here starts the sandbox.
"""

from __future__ import annotations

import dataclasses
import gzip
import json
import re
import shutil
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest
from typer.testing import CliRunner

from cli import app
from connectors import LayoutChanged
from robots import Field, Record, Walk
from robots._cassette import SEALED, TOKEN, Cassette, CassetteError, Entry, ReplayMiss, scrubbed
from robots._declared import declare
from robots._registry import _ROBOTS
from robots.runtime import discover, registered, run_blocking
from robots.testing import assert_records, fake_walk, replay
from sandbox import Sandbox
from settings import Settings, load_settings
from tests.leak_helpers import IssuedTokens, Secrets
from vault import Vault, register_secret

CASSETTES = Path(__file__).parent / "cassettes"
DEMO = ["persons", "households", "elderly", "entities", "family_doctor", "assistance", "disabled"]
XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
runner = CliRunner()


@pytest.mark.parametrize("robot", DEMO)
def test_each_demo_robot_replays_to_its_expected_records(robot: str) -> None:
    replayed = replay(robot, CASSETTES / f"{robot}.cassette")
    assert replayed.records and replayed.pages >= 1
    assert replayed.expected in (None, len(replayed.records))
    assert_records(replayed, CASSETTES / f"{robot}.expected.jsonl")


README_SHAPES = re.findall(
    r"```toml\n# replayed: tests/cassettes/(\w+)\.cassette\n(.*?)```",
    (Path(__file__).parent.parent / "README.md").read_text(encoding="utf-8"),
    re.S,
)


@pytest.mark.parametrize(("demo", "declared"), README_SHAPES, ids=[demo for demo, _ in README_SHAPES])
def test_each_shape_the_readme_declares_replays_to_its_demo_robots_records(
    demo: str, declared: str, tmp_path: Path
) -> None:
    path = tmp_path / f"readme_{demo}.toml"
    path.write_text(declared, encoding="utf-8")
    spec = declare(path)
    try:
        assert_records(replay(spec, CASSETTES / f"{demo}.cassette"), CASSETTES / f"{demo}.expected.jsonl")
    finally:
        _ROBOTS.pop(spec.name, None)


def test_the_readme_declares_the_shapes_it_says() -> None:
    assert [demo for demo, _ in README_SHAPES] == ["entities", "disabled"]


def test_the_demo_robots_are_all_recorded() -> None:
    demo = {r.name for r in discover().values() if r.module.startswith("robots.sandbox_")}
    assert demo == set(DEMO)


def _reading(record: type[Record]) -> Callable[[Walk], AsyncIterator[dict[str, str]]]:
    """The households walk, its table read into ``record``."""

    async def households(walk: Walk) -> AsyncIterator[dict[str, str]]:
        async for page in walk.pages("/households?size=100&page={n}", last=".pagination a, .pagination span"):
            for row in page.table("table.households", record):
                yield row

    return households


def test_a_mapping_broken_on_purpose_fails_the_replay() -> None:
    households = registered()["households"]

    class Renamed(households.record):  # type: ignore[name-defined, misc]
        """The demo record with one header renamed, as an author's typo (or a vendor's rename) would."""

        head: str | None = Field(None, role="name", title="户主姓名")

    as_declared = dataclasses.replace(households, walk=_reading(households.record))
    assert replay(as_declared, CASSETTES / "households.cassette").records
    broken = dataclasses.replace(households, record=Renamed, walk=_reading(Renamed))
    with pytest.raises(LayoutChanged, match="户主姓名"):
        replay(broken, CASSETTES / "households.cassette")


ASPNET = """<html><head><title>持证残疾人</title>
<meta name="csrf-token" content="meta-token-0123456789"></head><body>
<form method="post" action="/List.aspx"><input type="hidden" name="__VIEWSTATE" value="/wEPDwUKLTky">
<input name="__RequestVerificationToken" type="hidden" value='form-token-9876543210'>
<script>var session = "{secret}"; var xsrf = "meta-token-0123456789";</script></form></body></html>"""


def test_scrubbing_masks_secrets_and_puts_one_placeholder_for_every_token() -> None:
    secret = "cookie-value-" + "7f3a9c2e41b8"
    register_secret(secret)
    page = ASPNET.replace("{secret}", secret).encode("gb18030")
    posted = (("__VIEWSTATE", "/wEPDwUKLTky"), ("__RequestVerificationToken", "form-token-9876543210"))
    entries = [
        Entry("GET", "/List.aspx", (), None, "/List.aspx", 200, "text/html; charset=gbk", page),
        Entry("POST", "/List.aspx", (("sid", secret),), posted, "/List.aspx", 200, "text/html", b"<p>ok</p>"),
        Entry("GET", "/export.xlsx", (), None, "/export.xlsx", 200, XLSX, b"PK\x03\x04 binary"),
    ]
    page_, post, export = scrubbed(entries)
    assert isinstance(page_.body, str) and "<title>持证残疾人</title>" in page_.body  # GBK, read as served
    for gone in (secret, "meta-token-0123456789", "form-token-9876543210"):
        assert gone not in json.dumps([e.to_json() for e in (page_, post)])
    assert page_.body.count(TOKEN) == 3 and "/wEPDwUKLTky" in page_.body  # the view state is kept as served
    assert post.form == (("__VIEWSTATE", "/wEPDwUKLTky"), ("__RequestVerificationToken", TOKEN))
    assert post.query == (("sid", "******"),) and export.body == b"PK\x03\x04 binary"


def _without(source: str, tmp_path: Path, drop: int) -> Path:
    """A copy of a demo cassette missing its answer ``drop`` (by recorded order)."""
    cassette = Cassette.load(CASSETTES / f"{source}.cassette")
    del cassette.entries[drop]
    path = tmp_path / f"{source}.cassette"
    cassette.save(path)
    return path


def test_a_request_the_cassette_lacks_is_named_with_the_fix(tmp_path: Path) -> None:
    cassette = Cassette.load(CASSETTES / "households.cassette")
    last = max(range(len(cassette.entries)), key=lambda i: cassette.entries[i].query)
    with pytest.raises(ReplayMiss) as miss:
        replay("households", _without("households", tmp_path, last))
    assert "GET /households?size=100&page=2" in str(miss.value)
    assert "harvest record households --account" in str(miss.value)

    posted = [i for i, e in enumerate(Cassette.load(CASSETTES / "disabled.cassette").entries) if e.form]
    with pytest.raises(ReplayMiss, match=r"POST /List\.aspx（表单字段 __EVENTARGUMENT, __EVENTTARGET）"):
        replay("disabled", _without("disabled", tmp_path, posted[0]))


def test_a_missing_expected_file_is_written_and_fails_once_then_differences_are_shown(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    replayed = replay("households", CASSETTES / "households.cassette")
    expected = tmp_path / "households.expected.jsonl"
    with pytest.raises(AssertionError, match="已写下预期记录"):
        assert_records(replayed, expected)
    assert_records(replayed, expected)  # written once, it now passes

    lines = [json.loads(line) for line in expected.read_text(encoding="utf-8").splitlines()]
    changed, dropped = lines[0], lines[1]
    lines[0] = {**changed, "size": changed["size"] + 1}
    expected.write_text("".join(json.dumps(line) + "\n" for line in lines[:1] + lines[2:]), encoding="utf-8")
    with pytest.raises(AssertionError) as diff:
        assert_records(replayed, expected)
    said = str(diff.value)
    assert f"{changed['household_no']} 变了：size: {changed['size'] + 1} → {changed['size']}" in said
    assert f"多出 {dropped['household_no']}" in said

    monkeypatch.setenv("HARVEST_UPDATE_EXPECTED", "1")
    with pytest.raises(AssertionError, match="已写下预期记录"):
        assert_records(replayed, expected)
    monkeypatch.delenv("HARVEST_UPDATE_EXPECTED")
    assert_records(replayed, expected)


def test_a_sealed_cassette_round_trips_and_is_unreadable_without_its_key(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    vault = Vault.init(load_settings())
    key = load_settings().resolved_vault_key_file.read_text().strip()
    plain = Cassette.load(CASSETTES / "persons.cassette")
    sealed = tmp_path / "persons.cassette"
    plain.save(sealed, seal=vault.seal)
    some_name = json.loads((CASSETTES / "persons.expected.jsonl").read_text(encoding="utf-8").split("\n")[0])
    assert some_name["name"].encode() not in sealed.read_bytes() and not sealed.read_bytes().startswith(
        b"\x1f"
    )
    assert sealed.stat().st_mode & 0o077 == 0

    reread = Cassette.load(sealed, unseal=vault.unseal)
    assert reread.sealed and reread.entries == plain.entries
    replayed = replay("persons", sealed)  # the data dir's vault opens it
    expected = tmp_path / "persons.expected.jsonl"
    with pytest.raises(AssertionError, match="已写下预期记录"):
        assert_records(replayed, expected)
    assert some_name["name"].encode() not in expected.read_bytes()  # sealed like its cassette
    assert_records(replayed, expected)

    monkeypatch.setenv("HARVEST_DATA_DIR", str(tmp_path / "elsewhere"))  # a machine without that vault
    with pytest.raises(CassetteError, match="HARVEST_VAULT_KEY"):
        replay("persons", sealed)
    with pytest.raises(CassetteError, match="HARVEST_VAULT_KEY"):
        Cassette.load(sealed)
    other = Vault.init(load_settings())
    with pytest.raises(CassetteError, match="另一个保险库的密钥"):
        Cassette.load(sealed, unseal=other.unseal)
    assert len(replay("persons", sealed, key=key).records) == len(replayed.records)
    monkeypatch.setenv("HARVEST_VAULT_KEY", key)
    shutil.rmtree(tmp_path / "elsewhere")
    assert_records(replay("persons", sealed), expected)


HEADERS = ("户号", "户主", "住址", "小区", "楼栋", "单元", "室", "网格", "人数")
ROW = ("H001", "王伟", "东湖路1号", "东湖小区", "1栋", "2单元", "301", "一网格", "3")


def _households(*rows: tuple[str, ...]) -> str:
    """A households table as a vendor's page might draw it: the headers, then ``rows``."""
    head = "".join(f"<th>{title}</th>" for title in HEADERS)
    body = "".join("<tr>" + "".join(f"<td>{cell}</td>" for cell in row) + "</tr>" for row in rows)
    return f'<table class="households"><tr>{head}</tr>{body}</table>'


def test_fake_walk_serves_hand_written_pages_to_a_robot_function() -> None:
    walk = fake_walk(
        {
            "/households?size=100&page=1": _households(ROW) + '<div class="pagination"><span>1</span></div>',
            "/households?page=2&size=100": _households(),  # the query may come in any order
        },
        scope="donghu",
    )

    async def read() -> list[dict[str, str]]:
        return [row async for row in registered()["households"].walk(walk)]

    (row,) = run_blocking(read)
    assert row["household_no"] == "H001" and row["head"] == "王伟" and row["size"] == "3"
    assert walk.scope == "donghu" and walk.pages_read >= 1
    with pytest.raises(ReplayMiss, match=r"GET /persons（?.*在 fake_walk 的 pages 里加上这一页"):
        run_blocking(lambda: walk.json("/persons"))


@pytest.mark.browser
def test_a_recorded_cassette_holds_no_secret_and_replays_to_what_was_read(
    settings: Settings, vault: Vault, sandbox: Sandbox, tmp_path: Path
) -> None:
    account = sandbox["population"].account("donghu")
    with IssuedTokens(sandbox) as issued:
        sealed = runner.invoke(
            app, ["record", "persons", "--account", "donghu", "--out", str(tmp_path / "sealed.cassette")]
        )
        plain = runner.invoke(
            app,
            [
                "record",
                "persons",
                "--account",
                "donghu",
                "--out",
                str(tmp_path / "plain.cassette"),
                "--plain",
            ],
        )
    assert sealed.exit_code == 0, sealed.output
    assert plain.exit_code == 0 and "--plain：录像和预期记录都没有加密" in plain.output, plain.output
    secrets = Secrets()
    secrets.add("password", account.password)
    gate = sandbox["population"].gate
    for n, (_, token) in enumerate(issued.all()):
        secrets.add(f"cookie {n}", token)
        if token in gate.sessions:
            secrets.add(f"csrf {n}", gate.sessions[token].csrf)
    assert any(name.startswith("csrf") for name in secrets.names())

    opened = {
        "sealed.cassette": gzip.decompress(
            vault.unseal((tmp_path / "sealed.cassette").read_bytes()[len(SEALED) :])
        ),
        "plain.cassette": gzip.decompress((tmp_path / "plain.cassette").read_bytes()),
        "sealed.expected.jsonl": vault.unseal(
            (tmp_path / "sealed.expected.jsonl").read_bytes()[len(SEALED) :]
        ),
    }
    files = {path.name: path.read_bytes() for path in tmp_path.iterdir() if path.is_file()}
    hits = [
        f"{where}: {name} ({form})"
        for where, data in {**files, **{f"{k} (decoded)": v for k, v in opened.items()}}.items()
        for name, form, raw in secrets.forms()
        if raw in data
    ]
    assert hits == []
    assert TOKEN.encode() in opened["plain.cassette"]  # the token was there, and is the placeholder now

    truth = sandbox["population"].truth("persons", account.username)
    replayed = replay("persons", tmp_path / "plain.cassette")
    assert len(replayed.records) == len(truth)
    assert_records(replayed, tmp_path / "plain.expected.jsonl")
    assert_records(replay("persons", tmp_path / "sealed.cassette"), tmp_path / "sealed.expected.jsonl")
