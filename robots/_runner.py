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
import contextlib
import dataclasses
import datetime as dt
import errno
import threading
import time
import traceback
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any, Protocol, Self, TypeVar

from loguru import logger
from playwright.async_api import Browser, Playwright

from connectors import (
    AccountBusy,
    Credentials,
    DiskFull,
    Fetcher,
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
from robots._records import validated
from robots._registry import RobotSpec
from robots._walk import Walk
from settings import Settings
from store import Lease, Record, Run, Store, StoreError, scrub_text
from vault import AccountInfo, AccountParked, Vault, redact, register_secret

STAGE_BATCH = 2_000  # records held before they go to the staging table
MASKED_COOKIE_LENGTH = 8  # shorter values (flags like "1" or "zh") would mask ordinary words
ACCOUNT_LEASE_S = 120.0  # renewed every 40 s while a run holds it; a holder that hangs frees it after this
LEASE_POLL_S = 0.5
TEXT_EVIDENCE = (".html", ".json", ".txt")


class Outcome:
    """What a run's report and a check's trial share: how it ended, and the exit code that says so."""

    status: str
    kind: str | None

    @property
    def exit_code(self) -> int:
        if self.status in ("ok", "skipped"):
            return 0
        return failure_class(self.kind).exit_code


@dataclass(frozen=True)
class RunReport(Outcome):
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


@dataclass(frozen=True)
class Trial(Outcome):
    """What ``harvest check`` read of a robot's first pages, validated and never staged."""

    robot: str
    system: str
    account: str
    dataset: str
    scope: str
    status: str  # as a run's: ok / failed / parked / skipped / busy
    kind: str | None = None
    message: str = ""
    records: list[Record] = dataclasses.field(default_factory=list)
    pages: int = 0  # the pages the records came from
    expected: int | None = None  # the total the system stated (walk.expected)
    first_page: int = 0  # rows on the first page: the page size the stated total is measured in
    invalid: int = 0  # rows read that did not become records (failed validation, or cells missing)
    whole: bool = False  # the walk read the list to its end and passed a run's end-of-walk checks
    seconds: float = 0.0
    artifacts: str | None = None


_Report = TypeVar("_Report", RunReport, Trial)


@dataclass(frozen=True)
class _Ending:
    """How a run or a check ended without records: refused before logging in, or failed."""

    status: str
    kind: str | None
    message: str
    artifacts: str | None = None

    def onto(self, report: _Report) -> _Report:
        return dataclasses.replace(report, **dataclasses.asdict(self))


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
        """One run of ``robot`` with ``account``, holding the account's lease."""
        system = self.system(robot.system)
        async with self._holding(robot, system, account, command="run") as busy:
            if busy is not None:
                return busy.onto(RunReport(robot.name, system.name, account, robot.dataset, busy.status))
            return await self._run(robot, system, account)

    async def trial(
        self,
        robot: RobotSpec,
        account: str,
        *,
        pages: int | None = None,
        wrap: Callable[[Fetcher], Fetcher] | None = None,
    ) -> Trial:
        """``harvest check``: log in as a run would, read the first ``pages`` pages (None: the whole list)
        through ``wrap(session)`` if given, and validate them; nothing is staged or published.

        The lease, a parked account, the allowed hours, the login's lockout rules and the failure
        kinds (parking included) are a run's: a check answers what the run would.
        """
        system = self.system(robot.system)
        async with self._holding(robot, system, account, command="check") as busy:
            if busy is not None:
                return busy.onto(Trial(robot.name, system.name, account, robot.dataset, "", busy.status))
            return await self._trial(robot, system, account, pages, wrap)

    @contextlib.asynccontextmanager
    async def _holding(
        self, robot: RobotSpec, system: System, account: str, *, command: str
    ) -> AsyncIterator[_Ending | None]:
        """Hold the account's lease for the block (None), or say why another holds it (``busy``).

        Runs of one account in this process queue for each other; a run elsewhere holding the
        account is waited for ``HARVEST_ACCOUNT_WAIT_S``, then this one refuses (``account_busy``).
        """
        async with self._account_locks.setdefault((system.name, account), asyncio.Lock()):
            lease = Lease(
                self.store.engine, f"account:{system.name}/{account}", what=self.holder, ttl=ACCOUNT_LEASE_S
            )
            if not await _wait_for(lease, self.settings.account_wait_s):
                yield self._busy(robot, system, account, lease, command)
                return
            try:
                yield None
            finally:
                lease.release()

    def _refusal(self, system: System, info: AccountInfo) -> _Ending | None:
        """Why this account may not log in now (parked, or outside the system's hours); None if it may."""
        if info.status == "parked":
            return self._parked(info)
        if not system.politeness.allows(local_time(utc_now(), self.settings.timezone)):
            hours = "–".join(f"{hour} 点" for hour in system.politeness.hours or ())
            return _Ending("skipped", None, f"{system.name} 只允许在每天 {hours}之间采集，本次跳过")
        return None

    async def _run(self, robot: RobotSpec, system: System, account: str) -> RunReport:
        info = self.vault.get(system.name, account)
        base = RunReport(robot.name, system.name, account, robot.dataset, status="running")
        refusal = self._refusal(system, info)
        if refusal is not None:
            return refusal.onto(base)
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
            except asyncio.CancelledError:
                self.store.fail(run_id, "cancelled", "运行已被中止，没有发布任何数据", status="cancelled")
                raise
            except Exception as exc:
                ending = await self._ending(exc, robot, system, account, run_id, walk, session)
                report = self._failed(base, run_id, ending)
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

    async def _trial(
        self,
        robot: RobotSpec,
        system: System,
        account: str,
        pages: int | None,
        wrap: Callable[[Fetcher], Fetcher] | None,
    ) -> Trial:
        info = self.vault.get(system.name, account)
        base = Trial(robot.name, system.name, account, robot.dataset, info.scope, status="running")
        refusal = self._refusal(system, info)
        if refusal is not None:
            return refusal.onto(base)
        trial_id = uuid.uuid4().hex  # names its log lines and evidence folder; no run row is made
        started = time.monotonic()
        walk: Walk | None = None
        session: Session | None = None
        with logger.contextualize(run=trial_id[:8]):
            logger.info("检查 {} 开始：{}，账号 {}/{}", trial_id[:8], robot.name, system.name, account)
            try:
                session = await self._session(robot, system, info, trial_id)
                walk = Walk(
                    wrap(session) if wrap is not None else session,
                    run_id=trial_id,
                    account=account,
                    scope=info.scope,
                    settings=self.settings,
                    max_pages=robot.max_pages,
                )
                trial = await _first_pages(robot, walk, pages, base)
            except Exception as exc:
                trial = (await self._ending(exc, robot, system, account, trial_id, walk, session)).onto(base)
            finally:
                if session is not None:
                    await self._keep_session(system, account, session)
            logger.info("检查 {} 结束：{} {}", trial_id[:8], trial.status, trial.kind or "")
        return dataclasses.replace(
            trial,
            seconds=round(time.monotonic() - started, 2),
            pages=trial.pages or (walk.pages_read if walk else 0),
            expected=walk.expected if walk else None,
        )

    async def _ending(
        self,
        exc: Exception,
        robot: RobotSpec,
        system: System,
        account: str,
        run_id: str,
        walk: Walk | None,
        session: Session | None,
    ) -> _Ending:
        """``exc`` as the run's (or check's) outcome: its kind, the account parked where the system
        rejected the password, the evidence saved where the layout drifted or the robot failed."""
        if isinstance(exc, AccountParked):  # another process parked it since we looked
            return self._parked(self.vault.get(system.name, account))
        failure = _as_failure(exc)
        if failure is None:  # a bug in the robot: keep the evidence, keep the snapshot
            logger.opt(exception=exc).error("机器人 {} 出错：{}", robot.name, type(exc).__name__)
            artifacts = await self._evidence(run_id, walk, session, error=exc)
            message = (
                f"机器人出错（{type(exc).__name__}: {exc}）：请查看运行目录中的 traceback.txt，"
                "修正机器人后再运行"
            )
            return _Ending("failed", "error", redact(message), artifacts)
        if failure.parks:
            self.vault.park(system.name, account, kind=failure.kind, message=str(failure))
        artifacts = (
            await self._evidence(run_id, walk, session, files=failure.evidence)
            if isinstance(failure, LayoutChanged) or failure.evidence
            else None
        )
        return _Ending("parked" if failure.parks else "failed", failure.kind, redact(str(failure)), artifacts)

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
        """Stage the records of the walk as they arrive, in batches."""
        batch: list[Record] = []
        staged = 0
        async for record in validated(robot, walk):
            batch.append(record)
            if len(batch) >= STAGE_BATCH:
                await self._stage(run_id, batch, key)
                staged += len(batch)
                batch = []
        if batch:
            await self._stage(run_id, batch, key)
            staged += len(batch)
        return staged

    async def _stage(self, run_id: str, batch: list[Record], key: str) -> None:
        await asyncio.to_thread(self.store.stage, run_id, batch)
        self.progress.advanced(key, records=len(batch))

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

    def _failed(self, base: RunReport, run_id: str, ending: _Ending) -> RunReport:
        try:
            self.store.fail(run_id, ending.kind or "error", ending.message, artifacts=ending.artifacts)
        except StoreError as exc:  # the next start closes the run (`killed`): say so, keep the real outcome
            logger.error("运行 {} 的结果未能写入数据库（{}）", run_id[:8], exc)
        return dataclasses.replace(ending.onto(base), run_id=run_id)

    def _busy(self, robot: RobotSpec, system: System, account: str, lease: Lease, command: str) -> _Ending:
        holder = lease.holder()
        zone = self.settings.timezone
        who = "另一次运行" if holder is None else f"{holder}，{human_time(_epoch(holder.since), zone)} 起"
        message = (
            f"账号 {system.name}/{account} 正被{who}占用，等待 {self.settings.account_wait_s:g} 秒仍未释放，"
            f"本次未运行：待其结束后再运行 `harvest {command} {robot.name} --account {account}`"
        )
        return _Ending("busy", AccountBusy.kind, message)

    def _parked(self, info: AccountInfo) -> _Ending:
        since = f"自 {human_time(info.parked_at, self.settings.timezone)} 起" if info.parked_at else ""
        message = (
            f"账号 {info.system}/{info.account} {since}已停用（{info.parked_kind}），本次没有尝试登录："
            f"用 `harvest vault set {info.system} {info.account} --password` 更新后即可恢复"
        )
        return _Ending("parked", info.parked_kind or "bad_credentials", message)


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


async def _first_pages(robot: RobotSpec, walk: Walk, pages: int | None, base: Trial) -> Trial:
    """The records of the first ``pages`` pages of ``robot``'s walk (None: of the whole list).

    A record is kept while the walk has handed over no more than ``pages`` pages; the first one
    read after that ends the trial, unkept, without the end-of-walk checks (the list is not done).
    The pages reported are those the kept records came from as the walk counts them when each
    arrives (a JSON API's pages fetched ahead are counted before their records arrive).
    """
    rows = first_page = 0

    async def counted(walk: Walk) -> AsyncIterator[Record | dict[str, Any]]:
        nonlocal rows, first_page
        async with contextlib.aclosing(robot.walk(walk)) as items:  # type: ignore[type-var]
            async for item in items:
                rows += 1
                if walk.pages_read <= 1:
                    first_page += 1
                yield item

    kept: list[Record] = []
    received, last_page, whole = 0, 0, True
    async with contextlib.aclosing(validated(dataclasses.replace(robot, walk=counted), walk)) as records:
        async for record in records:
            received += 1
            if pages is not None and walk.pages_read > pages:
                whole = False
                break
            kept.append(record)
            last_page = walk.pages_read
    return dataclasses.replace(
        base,
        status="ok",
        records=kept,
        pages=walk.pages_read if whole else last_page,
        first_page=first_page,
        invalid=rows - received + walk.tally.dropped,
        whole=whole,
    )


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
