"""Testing robots offline: a recorded walk replayed through the robot, and pages faked by hand.

``harvest record ROBOT --account A`` writes ``tests/cassettes/ROBOT.cassette`` and the records it
read, ``ROBOT.expected.jsonl``. A test then replays the cassette through the robot's own walk, with
the same drift checks as a run (a header the robot no longer finds ends ``LayoutChanged``), and no
network, login or browser::

    from robots.testing import assert_records, fake_walk, replay

    def test_persons_reads_what_was_recorded():
        assert_records(replay("persons", "tests/cassettes/persons.cassette"),
                       "tests/cassettes/persons.expected.jsonl")

    async def test_a_page_by_hand():
        walk = fake_walk({"/persons?page=1": "<table class='persons'>…</table>"})
        rows = [row async for row in my_robot_function(walk)]

A missing expected file, or ``HARVEST_UPDATE_EXPECTED=1``, writes it from the replay and fails
once saying so: look at it, commit it, run again. A sealed cassette (the default: recordings of
real systems are copies of personal data) needs the vault key that sealed it: the vault of the
data dir, ``HARVEST_VAULT_KEY``, or ``key=``.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from connectors import System
from machine import run_blocking
from robots._cassette import (
    Cassette,
    CassetteError,
    Replay,
    expected_lines,
    read_expected,
    record_key,
    served,
    write_expected,
)
from robots._records import validated
from robots._registry import RobotSpec, discover
from robots._walk import Walk
from settings import Settings, load_settings
from store import Record
from vault import Vault

UPDATE = "HARVEST_UPDATE_EXPECTED"
SHOWN = 3  # differing records a failed comparison shows, of each kind
FAKE_SYSTEM = System(name="fake", title="测试系统", base_url="http://127.0.0.1:9", home="/", logged_in="body")

__all__ = ["Replayed", "assert_records", "fake_walk", "replay"]


@dataclass(frozen=True)
class Replayed:
    """What a replay read: the records, the pages, and the record count the pages stated."""

    records: list[Record]
    pages: int
    expected: int | None
    model: type[Record] | None = field(default=None, repr=False)  # the robot's record class
    vault: Vault | None = field(default=None, repr=False)  # a sealed cassette's key, for its expected file


def replay(
    robot: str | RobotSpec, cassette: Path | str, *, key: str | None = None, settings: Settings | None = None
) -> Replayed:
    """The records ``robot`` reads from ``cassette``, validated as a run validates them.

    ``key`` is the vault key text a sealed cassette needs where neither the data dir's vault
    nor ``HARVEST_VAULT_KEY`` has it.
    """
    settings = settings or load_settings()
    spec = _spec(robot)
    opened: list[Vault] = []

    def unseal(token: bytes) -> bytes:
        opened.append(Vault.keyed(settings, key=key))
        return opened[-1].unseal(token)

    tape = Cassette.load(Path(cassette), unseal=unseal)
    if tape.system != spec.system.name:
        raise CassetteError(
            f"录像 {cassette} 录的是系统 {tape.system}，而机器人 {spec.name} 读的是 {spec.system.name}："
            f"用 `harvest record {spec.name} --account A` 录制它自己的录像"
        )
    walk = Walk(
        Replay(tape, spec.system),
        run_id="replay",
        account=tape.account,
        scope=tape.scope,
        settings=settings,
        max_pages=spec.max_pages,
    )

    async def read() -> list[Record]:
        return [record async for record in validated(spec, walk)]

    records = run_blocking(read)
    return Replayed(records, walk.pages_read, walk.expected, spec.record, opened[-1] if opened else None)


def assert_records(replayed: Replayed, expected: Path | str) -> None:
    """Fail with a short diff unless ``replayed`` read exactly the records of the ``expected`` file.

    Where the file does not exist, or ``HARVEST_UPDATE_EXPECTED=1``, it is written from the replay
    and the assertion fails once saying so: a missing expected file never passes.
    """
    path = Path(expected)
    vault = replayed.vault
    if os.environ.get(UPDATE) == "1" or not path.exists():
        write_expected(path, replayed.records, seal=vault.seal if vault is not None else None)
        raise AssertionError(f"已写下预期记录 {path}（{len(replayed.records)} 条）：检查后提交它，再运行测试")
    want = read_expected(path, unseal=vault.unseal if vault is not None else None)
    got = expected_lines(replayed.records)
    if got != want:
        raise AssertionError(_diff(want, got, replayed.model, path))


def fake_walk(pages: Mapping[str, str | bytes], *, system: System | None = None, scope: str = "c1") -> Walk:
    """A ``Walk`` whose fetches answer from ``pages`` (path with its query → body), for a robot's unit test.

    A ``str`` body is served as HTML (as JSON when it starts with ``{`` or ``[``), ``bytes`` as a
    download; a request for a path not given raises ``ReplayMiss`` naming it.
    """
    system = system or FAKE_SYSTEM
    tape = Cassette(
        system=system.name,
        robot="fake_walk",
        account="fake",
        scope=scope,
        base_url=system.base_url,
        recorded_at="",
        entries=[served(system, path, body) for path, body in pages.items()],
    )
    fix = f"在 fake_walk 的 pages 里加上这一页（已有：{', '.join(pages) or '无'}）"
    fetcher = Replay(tape, system, fix=fix)
    return Walk(fetcher, run_id="fake", account="fake", scope=scope, settings=load_settings())


def _spec(robot: str | RobotSpec) -> RobotSpec:
    if isinstance(robot, RobotSpec):
        return robot
    robots = discover()
    if robot not in robots:
        raise CassetteError(f"没有机器人 {robot!r}；现有机器人：{', '.join(robots) or '无'}")
    return robots[robot]


def _diff(
    want: list[dict[str, Any]], got: list[dict[str, Any]], model: type[Record] | None, path: Path
) -> str:
    """The first records missing, added and changed, by natural key; a few of each."""
    head = f"回放读到 {len(got)} 条记录，{path} 预期 {len(want)} 条"
    if model is None:
        return head
    wanted = {record_key(line, model): line for line in want}
    found = {record_key(line, model): line for line in got}
    lines = [head]
    lines += [f"  缺少 {'/'.join(k)}" for k in [k for k in wanted if k not in found][:SHOWN]]
    lines += [f"  多出 {'/'.join(k)}" for k in [k for k in found if k not in wanted][:SHOWN]]
    changed = [k for k in wanted if k in found and wanted[k] != found[k]][:SHOWN]
    for k in changed:
        fields = [f for f in {**wanted[k], **found[k]} if wanted[k].get(f) != found[k].get(f)]
        shown = "；".join(f"{f}: {wanted[k].get(f)!r} → {found[k].get(f)!r}" for f in fields)
        lines.append(f"  {'/'.join(k)} 变了：{shown}")
    if len(lines) == 1:
        lines.append("  记录相同，次序不同")
    return "\n".join(lines)
