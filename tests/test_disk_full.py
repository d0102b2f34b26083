"""A full disk ends a run in one line of its own kind (disk_full), never `running`; a run that already
published stays ok. Real ENOSPC: the database or the data dir on a tiny tmpfs in a mount namespace
(``unshare -rm``), filled at the moment under test; the sandbox stays outside, on 127.0.0.1."""

from __future__ import annotations

import json
import os
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from connectors import HarvestFailure, failure_class
from settings import Settings
from store import StoreError
from vault import Vault

ROOT = Path(__file__).parent.parent


def _fill(folder: Path) -> None:
    """Write into ``folder`` until its disk has no byte left."""
    fd = os.open(folder / "filler", os.O_WRONLY | os.O_CREAT | os.O_APPEND)
    try:
        for size in (1 << 20, 4096, 1):
            while True:
                os.write(fd, b"x" * size)
    except OSError:
        pass
    finally:
        os.close(fd)


class FillAt:
    """A progress hook that fills the tiny disk when the run reaches ``point``."""

    def __init__(self, point: str, tiny: Path) -> None:
        self.point, self.tiny = point, tiny

    def started(self, key: str, report: object) -> None:
        if self.point == "stage":
            _fill(self.tiny)

    def advanced(self, key: str, *, pages: int = 0, records: int = 0) -> None:
        if records and self.point in ("publish", "session"):
            _fill(self.tiny)  # the one batch is staged: next come the publish and the session save

    def finished(self, key: str, report: object) -> None:
        pass


def _drive(point: str, tiny: Path) -> None:
    """Inside the namespace: one run of `elderly` with donghu; prints its report and its run record."""
    from robots.runtime import Harvester, RunReport, discover, run_blocking
    from settings import load_settings
    from store import Run, Store, make_engine
    from vault import Vault

    settings = load_settings()
    store, vault = Store(make_engine(settings.resolved_database_url)), Vault.open(settings)

    async def go() -> RunReport:
        async with Harvester(settings, store, vault, hooks=[FillAt(point, tiny)]) as harvester:
            return await harvester.run(discover()["elderly"], "donghu")

    report = run_blocking(go)
    run: Run = store.run(report.run_id or "")
    said = {"status": report.status, "kind": report.kind, "message": report.message, "exit": report.exit_code}
    print(json.dumps(said | {"run": run.status, "run_kind": run.failure_kind}))


needs_unshare = pytest.mark.skipif(
    shutil.which("unshare") is None
    or subprocess.run(["unshare", "-rm", "true"], capture_output=True).returncode != 0,
    reason="unshare -rm (a user and mount namespace) is not available here",
)


def _run_on_tiny_disk(tmp_path: Path, point: str, env: dict[str, str]) -> tuple[dict, str]:
    tiny = tmp_path / "tiny"
    tiny.mkdir()
    copy = f"cp -a {shlex.quote(env.pop('COPY'))}/. {shlex.quote(str(tiny))}/ && " if "COPY" in env else ""
    script = (
        f"mount -t tmpfs -o size=8m tmpfs {shlex.quote(str(tiny))} && {copy}"
        f"exec {shlex.quote(sys.executable)} {shlex.quote(__file__)} {point} {shlex.quote(str(tiny))}"
    )
    done = subprocess.run(
        ["unshare", "-rm", "sh", "-c", script],
        env=os.environ | {"PYTHONPATH": str(ROOT), **env},
        capture_output=True,
        text=True,
        timeout=180,
        cwd=ROOT,
    )
    lines = done.stdout.strip().splitlines()
    assert lines, done.stderr
    return json.loads(lines[-1]), done.stderr


def test_every_store_refusal_speaks_the_failure_vocabulary() -> None:
    for cls in [StoreError, *StoreError.__subclasses__()]:
        assert failure_class(cls.kind).kind == cls.kind, cls
    assert failure_class("disk_full").exit_code == 7 and not failure_class("disk_full").retried
    assert failure_class("no such kind") is HarvestFailure


@needs_unshare
@pytest.mark.browser
@pytest.mark.parametrize("point", ["stage", "publish"])
def test_a_full_disk_under_the_database_ends_the_run_disk_full_in_one_line(
    point: str, tmp_path: Path, settings: Settings, vault: Vault
) -> None:
    result, stderr = _run_on_tiny_disk(
        tmp_path, point, {"HARVEST_DATABASE_URL": f"sqlite:///{tmp_path / 'tiny' / 'harvest.db'}"}
    )
    assert result["status"] == "failed" and result["kind"] == "disk_full" and result["exit"] == 7, result
    assert result["run"] == "failed" and result["run_kind"] == "disk_full"  # recorded, not left running
    assert "磁盘已满" in result["message"] and "\n" not in result["message"]
    assert "Traceback" not in stderr, stderr


@needs_unshare
@pytest.mark.browser
def test_a_full_disk_at_the_session_save_leaves_a_published_run_ok(
    tmp_path: Path, settings: Settings, vault: Vault
) -> None:
    env = {
        "COPY": str(settings.data_dir),
        "HARVEST_DATA_DIR": str(tmp_path / "tiny"),
        "HARVEST_DATABASE_URL": f"sqlite:///{tmp_path / 'harvest.db'}",
    }
    result, stderr = _run_on_tiny_disk(tmp_path, "session", env)
    assert result["status"] == "ok" and result["run"] == "ok", result
    assert "会话未能保存" in stderr and "Traceback" not in stderr, stderr


if __name__ == "__main__":
    _drive(sys.argv[1], Path(sys.argv[2]))
