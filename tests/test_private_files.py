"""Nothing we write under the data dir is for other eyes: folders 0700, files 0600, evidence masked."""

from __future__ import annotations

import io
import os
import re
import stat
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from loguru import logger

from machine import exposed_paths, open_private, private_dir, private_file
from robots.runtime import configure_logging
from sandbox import Sandbox, World
from settings import Settings
from store import Store, make_engine, scrub_text
from tests.runtime_helpers import harvest
from vault import Vault

# The everyday umask of a unit's server: what made harvest.db and the evidence 0644.
USUAL_UMASK = 0o022
TEXT_EVIDENCE = (".html", ".json", ".txt")
DATE = r"(\d{4})\s*[-/.年]\s*(\d{1,2})\s*[-/.月]\s*(\d{1,2})"


@pytest.fixture(autouse=True)
def _usual_umask() -> Iterator[None]:
    """Set before the data dir, the vault and the store are made by the other fixtures."""
    before = os.umask(USUAL_UMASK)
    yield
    os.umask(before)


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.lstat().st_mode)


def _modes(data_dir: Path) -> dict[str, int]:
    """Every path under ``data_dir`` (itself as ".") with its permission bits."""
    found = {".": _mode(data_dir)}
    for path in data_dir.rglob("*"):
        found[str(path.relative_to(data_dir))] = _mode(path)
    return found


@pytest.mark.browser
def test_a_harvest_leaves_nothing_others_can_read_and_its_evidence_masked(
    settings: Settings, store: Store, vault: Vault, sandbox: Sandbox, world: World
) -> None:
    settings = settings.model_copy(update={"log_json": True})
    try:
        configure_logging(settings, stream=io.StringIO())
        (good,) = harvest(settings, store, vault, [("persons", "donghu")])
        sandbox["population"].switches.layout_changed = True
        (drifted,) = harvest(settings, store, vault, [("persons", "donghu")])
    finally:
        logger.remove()  # closes the JSON sink
        logger.add(sys.stderr)
    assert good.status == "ok" and drifted.kind == "layout_changed"

    modes = _modes(settings.data_dir)
    evidence = Path(drifted.artifacts or "").relative_to(settings.data_dir)
    for expected in ("harvest.db", "harvest.db-wal", "vault.bin", "logs/harvest.jsonl", "runs"):
        assert expected in modes, expected
    for name in ("last-page.html", "last-url.txt", "screenshot.png"):
        assert str(evidence / name) in modes, name
    wide = {
        name: oct(mode)
        for name, mode in modes.items()
        if mode != (0o700 if (settings.data_dir / name).is_dir() else 0o600)
    }
    assert wide == {}
    assert exposed_paths(settings.data_dir) == []

    ids = set(world.persons["id_number"])
    phones = set(world.persons["phone"].dropna())
    births = set(world.persons["birth_date"])  # 1938-05-22
    page = (settings.data_dir / evidence / "last-page.html").read_text(encoding="utf-8")
    assert re.search(r"\d{6}\*{8}\d{3}[\dX]", page)  # the page was kept, with its persons masked
    for path in (settings.data_dir / evidence).iterdir():
        if path.suffix in TEXT_EVIDENCE:
            text = path.read_text(encoding="utf-8")
            runs = set(re.findall(r"\d{17}[\dX]|\d{11}", text))
            assert not runs & ids, path.name
            assert not runs & phones, path.name
            dates = {f"{y}-{int(m):02d}-{int(d):02d}" for y, m, d in re.findall(DATE, text)}
            assert not dates & births, path.name  # they would give the masked IDs' digits back


def test_files_found_wider_are_tightened_and_new_ones_made_private_whatever_the_umask(tmp_path: Path) -> None:
    os.umask(0)  # the widest umask: nothing but our own modes keeps others out
    data_dir = tmp_path / "data"
    data_dir.mkdir(mode=0o755)
    old_log = data_dir / "logs" / "harvest.jsonl"
    old_log.parent.mkdir(mode=0o777)
    old_log.write_text("{}\n")
    old_log.chmod(0o644)
    assert exposed_paths(data_dir) == sorted([data_dir, old_log.parent, old_log])

    evidence = private_dir(data_dir / "runs" / "r1", within=data_dir)
    assert (_mode(data_dir), _mode(data_dir / "runs"), _mode(evidence)) == (0o700, 0o700, 0o700)
    os.close(open_private(old_log, os.O_WRONLY | os.O_APPEND))
    os.close(open_private(evidence / "new.txt", os.O_WRONLY | os.O_CREAT))
    assert (_mode(old_log), _mode(evidence / "new.txt")) == (0o600, 0o600)
    assert exposed_paths(data_dir) == [old_log.parent]  # not written to since: left as it was

    database = private_file(data_dir / "harvest.db")
    database.chmod(0o644)  # as an older version left it, with its WAL
    wal = data_dir / "harvest.db-wal"
    wal.touch(mode=0o644)
    Store(make_engine(f"sqlite:///{database}"))
    assert (_mode(database), _mode(wal)) == (0o600, 0o600)


@pytest.mark.parametrize(
    ("text", "masked"),
    [
        ("<td>33010219380522457X</td><td>1938-05-22</td>", "<td>330102********457X</td><td>1938-**-**</td>"),
        (
            '{"idCard": "330102 19380522 457x", "born": "1938年5月22日"}',
            '{"idCard": "330102********457X", "born": "1938-**-**"}',
        ),
        ("证件号 ３３０１０２１９３８０５２２４５７Ｘ", "证件号 330102********457X"),
        ('<tr id="p33010219380522457X">', '<tr id="p330102********457X">'),
        ("/person?id=33010219380522457X&p=2", "/person?id=330102********457X&p=2"),
        ("电话 +86 138 1234 5678，座机 0571-88123456", "电话 138****5678，座机 0571-****3456"),
        # Longer numbers are not phones, and a date beside no ID number is no birth date.
        ("at 1701234567890, order 138123456789, since 2024-01-02",) * 2,
    ],
)
def test_free_text_has_its_id_and_phone_numbers_masked(text: str, masked: str) -> None:
    assert scrub_text(text) == masked
