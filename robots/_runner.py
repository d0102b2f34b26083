"""Running robots: one Chromium per process, one session per account, one store run per robot × account.

The runner owns every lifetime a robot author never sees: the browser (and any left
behind by a killed process), the account's session (saved, reused, logged in again),
the store run (staged as records arrive, published only if the walk ends well), the
evidence of a failure (page HTML and a screenshot with password fields masked), and
the account's parking when the system rejects its password.

Every run holds its account's lease in the database while it runs, whoever started it, so two
runs of one account (by hand, by the scheduler, on another machine) never log in over each other.
"""

from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt
import errno
import threading
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any, Protocol, Self

from loguru import logger
from playwright.async_api import Browser, Playwright
from pydantic import ValidationError

from connectors import (
    AccountBusy,
    Credentials,
    DiskFull,
    HarvestFailure,
    LayoutChanged,
    OcrSolver,
    Polite,
    Session,
    SolverChain,
    System,
    TerminalSolver,
    failure_class,
    launch_browser,
    start_playwright,
    sweep_orphan_browsers,
)
from machine import human_time, local_time, private_dir, tighten, utc_now, write_private
from robots._registry import RobotSpec
from robots._walk import Walk
from settings import Settings
from store import Lease, Record, Run, Store, StoreError, scrub_text
from vault import AccountInfo, AccountParked, Vault, redact, register_secret

STAGE_BATCH = 2_000  # records held before they go to the staging table
EARLY_DRIFT_ROWS = 200  # rows read before the invalid-row tolerance can end a run early
MASKED_COOKIE_LENGTH = 8  # shorter values (flags like "1" or "zh") would mask ordinary words
ACCOUNT_LEASE_S = 120.0  # renewed every 40 s while a run holds it; a holder that hangs frees it after this
LEASE_POLL_S = 0.5
TEXT_EVIDENCE = (".html", ".json", ".txt")


@dataclass(frozen=True)
class RunReport:
    """How one robot × account run ended, for the terminal, the scheduler and alerts."""

    robot: str
    system: str
    account: str
    dataset: str
    status: str  # ok / failed / cancelled / parked / skipped / busy (another run held the account)
    kind: str | None = None  # a HarvestFailure kind: bad_credentials, locked, …, disk_full, account_busy
    message: str = ""
    run_id: str | None = None
    records: int = 0
    pages: int = 0
    new: int = 0
    changed: int = 0
    unchanged: int = 0
    gone: int = 0
    back: int = 0
    seconds: float = 0.0
    logins: int = 0
    artifacts: str | None = None

    @property
    def exit_code(self) -> int:
        if self.status in ("ok", "skipped"):
            return 0
        return failure_class(self.kind).exit_code


class Progress(Protocol):
    """Where a run reports pages and records as they arrive (the CLI draws a Rich bar)."""

    def started(self, key: str, title: str) -> None: ...

    def advanced(self, key: str, *, pages: int = 0, records: int = 0) -> None: ...

    def finished(self, key: str, report: RunReport) -> None: ...


class NoProgress:
    def started(self, key: str, title: str) -> None:
        pass

    def advanced(self, key: str, *, pages: int = 0, records: int = 0) -> None:
        pass

    def finished(self, key: str, report: RunReport) -> None:
        pass


class Harvester:
    """Runs robots in this process: ``async with Harvester(settings, store, vault) as h: ...``."""

    def __init__(
        self,
        settings: Settings,
        store: Store,
        vault: Vault,
        *,
        progress: Progress | None = None,
        interactive: bool = False,
        holder: str = "harvest run",
    ) -> None:
        self.settings = settings
        self.store = store
        self.vault = vault
        self.progress = progress or NoProgress()
        self.interactive = interactive
        self.holder = holder  # what holds an account while a run of ours runs, as others are told
        self._playwright: Playwright | None = None
        self._browser: Browser | None = None
        self._polite: dict[str, Polite] = {}
        self._sessions: dict[tuple[str, str], Session] = {}
        self._account_locks: dict[tuple[str, str], asyncio.Lock] = {}

    async def __aenter__(self) -> Self:
        sweep_orphan_browsers()
        killed = self.store.recover()
        if killed:
            logger.warning("已关闭 {} 个被终止的进程留下的运行，快照保持原样", len(killed))
        self._playwright = await start_playwright()
        try:
            self._browser = await launch_browser(self._playwright, self.settings)
        except BaseException:
            await self._playwright.stop()
            raise
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        for session in self._sessions.values():
            await session.close()
        self._sessions.clear()
        if self._browser is not None:
            await self._browser.close()
        if self._playwright is not None:
            await self._playwright.stop()

    def system(self, declared: System) -> System:
        """The system as declared, at the base URL the settings say (``HARVEST_SYSTEM_URLS``)."""
        url = self.settings.system_urls.get(declared.name)
        return dataclasses.replace(declared, base_url=url) if url else declared

    async def run(self, robot: RobotSpec, account: str) -> RunReport:
        """One run of ``robot`` with ``account``, holding the account's lease.

        Runs of one account in this process queue for each other; a run elsewhere holding the
        account is waited for ``HARVEST_ACCOUNT_WAIT_S``, then this one refuses (``account_busy``).
        """
        system = self.system(robot.system)
        key = (system.name, account)
        async with self._account_locks.setdefault(key, asyncio.Lock()):
            lease = Lease(
                self.store.engine, f"account:{system.name}/{account}", what=self.holder, ttl=ACCOUNT_LEASE_S
            )
            if not await _wait_for(lease, self.settings.account_wait_s):
                return self._busy(robot, system, account, lease)
            try:
                return await self._run(robot, system, account)
            finally:
                lease.release()

    async def _run(self, robot: RobotSpec, system: System, account: str) -> RunReport:
        info = self.vault.get(system.name, account)
        base = RunReport(robot.name, system.name, account, robot.dataset, status="running")
        if info.status == "parked":
            return self._parked(robot, info, base)
        if not system.politeness.allows(local_time(utc_now(), self.settings.timezone)):
            hours = "–".join(f"{hour} 点" for hour in system.politeness.hours or ())
            return dataclasses.replace(
                base, status="skipped", message=f"{system.name} 只允许在每天 {hours}之间采集，本次跳过"
            )
        run_id = self.store.begin_run(
            robot=robot.name,
            dataset=robot.dataset,
            model=robot.record,
            system=system.name,
            account=account,
            scope=info.scope,
        )
        key = f"{robot.name}/{account}"
        self.progress.started(key, f"{robot.name} · {account}")
        started = time.monotonic()
        walk: Walk | None = None
        session: Session | None = None
        with logger.contextualize(run=run_id[:8]):
            logger.info("运行 {} 开始：{}，账号 {}/{}", run_id[:8], robot.name, system.name, account)
            try:
                session = await self._session(robot, system, info, run_id)
                walk = Walk(
                    session,
                    run_id=run_id,
                    account=account,
                    scope=info.scope,
                    settings=self.settings,
                    on_page=lambda: self.progress.advanced(key, pages=1),
                    max_pages=robot.max_pages,
                )
                records = await self._harvest(robot, walk, run_id, key)
                run = await asyncio.to_thread(
                    self.store.publish, run_id, complete=True, pages=walk.pages_read
                )
                report = _from_run(base, run, records=records)
            except AccountParked:  # another process parked it since we looked
                parked = self._parked(robot, self.vault.get(system.name, account), base)
                report = self._failed(
                    base, run_id, parked.kind or "bad_credentials", parked.message, parks=True
                )
            except asyncio.CancelledError:
                self.store.fail(run_id, "cancelled", "运行已被中止，没有发布任何数据", status="cancelled")
                raise
            except Exception as exc:
                failure = _as_failure(exc)
                if failure is None:  # a bug in the robot: keep the evidence, keep the snapshot
                    logger.opt(exception=exc).error("机器人 {} 出错：{}", robot.name, type(exc).__name__)
                    artifacts = await self._evidence(run_id, walk, session, error=exc)
                    message = redact(
                        f"机器人出错（{type(exc).__name__}: {exc}）：请查看运行目录中的 traceback.txt，"
                        "修正机器人后再运行"
                    )
                    report = self._failed(base, run_id, "error", message, artifacts)
                else:
                    if failure.parks:
                        self.vault.park(system.name, account, kind=failure.kind, message=str(failure))
                    artifacts = (
                        await self._evidence(run_id, walk, session, files=failure.evidence)
                        if isinstance(failure, LayoutChanged) or failure.evidence
                        else None
                    )
                    report = self._failed(
                        base, run_id, failure.kind, str(failure), artifacts, parks=failure.parks
                    )
            finally:
                if session is not None:
                    await self._keep_session(system, account, session)
            report = dataclasses.replace(
                report,
                seconds=round(time.monotonic() - started, 2),
                pages=walk.pages_read if walk else 0,
                logins=session.logins if session else 0,
            )
            log = logger.info if report.status == "ok" else logger.error
            log(
                "运行 {} 结束：{}{}",
                run_id[:8],
                report.status,
                f"（{report.kind}）：{report.message}" if report.kind else "",
            )
        self.progress.finished(key, report)
        return report

    async def _session(self, robot: RobotSpec, system: System, info: AccountInfo, run_id: str) -> Session:
        key = (system.name, info.account)
        session = self._sessions.get(key)
        if session is not None:
            return session

        def credentials() -> Credentials:
            secrets = self.vault.secrets(system.name, info.account, robot=robot.name, run_id=run_id)
            return Credentials(info.username, secrets.password, secrets.totp_seed)

        solvers = [OcrSolver(self.settings.captcha_attempts)]
        if self.interactive:
            solvers.append(TerminalSolver(self._artifacts(run_id)))
        assert self._browser is not None, "use the Harvester as an async context manager"
        session = Session(
            self._browser,
            system,
            credentials,
            account=info.account,
            polite=self._polite.setdefault(system.name, Polite(system.politeness, name=system.name)),
            solver=SolverChain(*solvers),
            state=self.vault.load_session(system.name, info.account),
            recycle_pages=self.settings.context_recycle_pages,
            allow=robot.allow,
            on_login=_mask_cookies,
            ledger=self.vault.login_ledger(system.name, info.account),
        )
        try:
            await session.open()
        except BaseException:
            await session.close()
            raise
        self._sessions[key] = session
        return session

    async def _harvest(self, robot: RobotSpec, walk: Walk, run_id: str, key: str) -> int:
        """Validate and stage what the walk yields; too many invalid rows is drift."""
        batch: list[Record] = []
        read = invalid = 0
        first_error = ""
        async for item in robot.walk(walk):
            read += 1
            try:
                record = item if isinstance(item, robot.record) else robot.record.model_validate(item)
            except ValidationError as exc:
                invalid += 1
                first_error = first_error or _first_error(exc)
                if read >= EARLY_DRIFT_ROWS and invalid > robot.invalid_tolerance * read:
                    break
                continue
            batch.append(record)
            if len(batch) >= STAGE_BATCH:
                await asyncio.to_thread(self.store.stage, run_id, batch)
                self.progress.advanced(key, records=len(batch))
                batch = []
        if invalid > robot.invalid_tolerance * read:
            raise LayoutChanged(
                f"读到的 {read} 行中有 {invalid} 行不符合 {robot.record.__name__}（第一处：{first_error}）："
                "页面布局或数据格式可能已变化"
            )
        if invalid:
            logger.warning("有 {} 行（共 {} 行）未通过校验，已略去（第一处：{}）", invalid, read, first_error)
        _check_whole(robot, walk, read)
        if batch:
            await asyncio.to_thread(self.store.stage, run_id, batch)
            self.progress.advanced(key, records=len(batch))
        return read - invalid

    async def _keep_session(self, system: System, account: str, session: Session) -> None:
        try:
            state = await session.storage_state()
        except Exception:  # a context closed by a failure: nothing worth keeping
            return
        try:
            self.vault.save_session(system.name, account, state, ttl=dt.timedelta(hours=system.session_hours))
        except OSError as exc:  # the run's outcome stands (it may have published): the next run logs in
            logger.warning(
                "{}/{} 的会话未能保存（{}）：下次运行将重新登录；请腾出 {} 所在磁盘的空间",
                system.name,
                account,
                exc.strerror or exc,
                self.settings.data_dir,
            )

    async def _evidence(
        self,
        run_id: str,
        walk: Walk | None,
        session: Session | None,
        error: BaseException | None = None,
        files: dict[str, bytes] | None = None,
    ) -> str | None:
        """Save what the robot last saw (HTML or JSON, a masked screenshot, the traceback).

        Evidence leaves the store like any record: every text is redacted of the run's secrets and
        has its ID and phone numbers masked, the screenshot shows the masked page, and every file is
        readable by its owner only.
        """
        folder = private_dir(self._artifacts(run_id), within=self.settings.data_dir)
        for name, data in (files or {}).items():  # the login page a failure brought along
            if name.endswith(TEXT_EVIDENCE):  # a page may echo what was typed into it
                data = _masked_text(data.decode("utf-8", errors="replace")).encode("utf-8")
            write_private(folder / name, data)
        body = _masked_text(walk.last_body) if walk is not None and walk.last_body else ""
        if walk is not None and body:
            suffix = ".json" if body.lstrip().startswith(("{", "[")) else ".html"
            write_private(folder / f"last-page{suffix}", body)
            write_private(folder / "last-url.txt", _masked_text(walk.last_url) + "\n")
        if session is not None:
            try:
                page = await session.page()
                if body.lstrip().startswith("<"):  # the page as fetched, masked, rather than as it is now
                    await page.set_content(body)
                await session.screenshot(page, folder / "screenshot.png")
            except Exception as exc:  # evidence is best effort: never hide the run's own failure
                logger.debug("no screenshot: {}", exc)
        if error is not None:
            text = _masked_text("".join(traceback.format_exception(error)))
            write_private(folder / "traceback.txt", text)
        for path in folder.iterdir():  # the screenshot (and captcha images) are written by others
            tighten(path)
        return str(folder)

    def _artifacts(self, run_id: str) -> Path:
        return self.settings.data_dir / "runs" / run_id

    def _failed(
        self,
        base: RunReport,
        run_id: str,
        kind: str,
        message: str,
        artifacts: str | None = None,
        *,
        parks: bool = False,
    ) -> RunReport:
        message = redact(message)
        try:
            self.store.fail(run_id, kind, message, artifacts=artifacts)
        except StoreError as exc:  # the next start closes the run (`killed`): say so, keep the real outcome
            logger.error("运行 {} 的结果未能写入数据库（{}）", run_id[:8], exc)
        status = "parked" if parks else "failed"
        return dataclasses.replace(
            base, status=status, kind=kind, message=message, run_id=run_id, artifacts=artifacts
        )

    def _busy(self, robot: RobotSpec, system: System, account: str, lease: Lease) -> RunReport:
        holder = lease.holder()
        zone = self.settings.timezone
        who = "另一次运行" if holder is None else f"{holder}，{human_time(_epoch(holder.since), zone)} 起"
        message = (
            f"账号 {system.name}/{account} 正被{who}占用，等待 {self.settings.account_wait_s:g} 秒仍未释放，"
            f"本次未运行：待其结束后再运行 `harvest run {robot.name} --account {account}`"
        )
        return RunReport(robot.name, system.name, account, robot.dataset, "busy", AccountBusy.kind, message)

    def _parked(self, robot: RobotSpec, info: AccountInfo, base: RunReport) -> RunReport:
        since = f"自 {human_time(info.parked_at, self.settings.timezone)} 起" if info.parked_at else ""
        message = (
            f"账号 {info.system}/{info.account} {since}已停用（{info.parked_kind}），本次没有尝试登录："
            f"用 `harvest vault set {info.system} {info.account} --password` 更新后即可恢复"
        )
        return dataclasses.replace(
            base, status="parked", kind=info.parked_kind or "bad_credentials", message=message
        )


def _check_whole(robot: RobotSpec, walk: Walk, read: int) -> None:
    """A run never ends ``ok`` with rows it could not read, with nothing read, or short of the stated total.

    Zero records pass only where the system positively said so (a stated total of 0, or an
    empty-table row such as 暂无数据 and no rows anywhere): a first run that reads nothing is otherwise
    the sign of a table it does not understand, and the shrink guard cannot catch a first run.
    """
    tally, expected = walk.tally, walk.expected
    rows = read + tally.dropped
    if tally.dropped > robot.invalid_tolerance * rows:
        raise LayoutChanged(
            f"表格的 {rows} 行中有 {tally.dropped} 行无法读入 {robot.record.__name__}（单元格少于所列的列）："
            "表格布局可能已变化；请查看 last-page.html"
        )
    if tally.dropped:
        logger.warning("有 {} 行表格行（共 {} 行）无法读取，已略去", tally.dropped, rows)
    # An empty-table row counts only where no page had rows: the page after the last says 暂无数据 too.
    said_empty = expected == 0 or (expected is None and tally.said_empty and tally.rows == 0)
    if read == 0 and not said_empty:
        raise LayoutChanged(
            f"读了 {walk.pages_read} 页却没有找到任何记录，系统也没有说列表为空：机器人的选择器或列名"
            "可能与页面不符；请查看 last-page.html"
        )
    if expected is not None and read < expected:
        raise LayoutChanged(
            f"系统显示列表共有 {expected} 条记录，却只读到 {read} 条：有页面被漏读（机器人可能没读对翻页），"
            "没有发布任何数据；请查看 last-page.html"
        )


async def _wait_for(lease: Lease, seconds: float) -> bool:
    """Take ``lease`` within ``seconds``; a wait that is cancelled never leaves it taken."""
    deadline = time.monotonic() + seconds
    while True:
        attempt = asyncio.ensure_future(asyncio.to_thread(lease.try_acquire))
        try:
            if await asyncio.shield(attempt):
                return True
        except asyncio.CancelledError:  # the thread goes on: release what it may still take
            attempt.add_done_callback(lambda done: _release_if_taken(done, lease))
            raise
        if time.monotonic() >= deadline:
            return False
        await asyncio.sleep(LEASE_POLL_S)


def _release_if_taken(attempt: asyncio.Future[bool], lease: Lease) -> None:
    if not attempt.cancelled() and attempt.exception() is None and attempt.result():
        lease.release()


def _as_failure(exc: Exception) -> HarvestFailure | None:
    """``exc`` in the failure vocabulary: the store's refusals by their kind, any full disk as ``DiskFull``;
    None for anything else (a bug)."""
    if isinstance(exc, HarvestFailure):
        return exc
    if isinstance(exc, StoreError):
        return failure_class(exc.kind)(str(exc))
    if isinstance(exc, OSError) and exc.errno == errno.ENOSPC:
        where = exc.filename or "数据目录"
        return DiskFull(f"磁盘已满（{where}）：腾出空间后重新运行；本次没有发布，快照保持原样")
    return None


def _epoch(seconds: float) -> dt.datetime:
    return dt.datetime.fromtimestamp(seconds, dt.UTC)


def _from_run(base: RunReport, run: Run, *, records: int) -> RunReport:
    return dataclasses.replace(
        base,
        status=run.status,
        run_id=run.id,
        records=records,
        new=run.new,
        changed=run.changed,
        unchanged=run.unchanged,
        gone=run.gone,
        back=run.back,
    )


def _mask_cookies(values: list[str]) -> None:
    for value in values:
        if len(value) >= MASKED_COOKIE_LENGTH:
            register_secret(value)


def _masked_text(text: str) -> str:
    return scrub_text(redact(text))


def _first_error(exc: ValidationError) -> str:
    error = exc.errors()[0]
    where = ".".join(str(part) for part in error["loc"])
    return f"{where}: {error['msg']}"


def run_blocking(call: Callable[[], Any]) -> Any:
    """Run the coroutine ``call()`` returns to completion, from synchronous code.

    In a thread that already runs an event loop (Playwright's sync API does, under pytest
    or inside another framework) the coroutine gets its own thread and loop.
    """
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        loop_running = False
    else:
        loop_running = True
    if not loop_running:  # outside the except block, so tracebacks do not chain a RuntimeError
        return asyncio.run(call())
    result: list[Any] = []
    errors: list[BaseException] = []

    def target() -> None:
        try:
            result.append(asyncio.run(call()))
        except BaseException as exc:
            errors.append(exc)

    thread = threading.Thread(target=target, name="harvest")
    thread.start()
    thread.join()
    if errors:
        raise errors[0]
    return result[0]
