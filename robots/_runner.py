"""Running robots: one Chromium per process, one session per account, one store run per robot × account.

The runner owns every lifetime a robot author never sees: the browser (started for logins and
rendering only, and any left behind by a killed process), the account's session (saved, reused,
logged in again), the store run (staged as records arrive, published only if the walk ends well), the
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
import functools
import time
import uuid
from collections.abc import AsyncIterator, Callable, Sequence
from pathlib import Path
from types import TracebackType
from typing import Any, Self

from loguru import logger

from connectors import (
    AccountBusy,
    Chromium,
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
    configured,
    failure_class,
    start_playwright,
    sweep_orphan_browsers,
)
from machine import human_time, local_time, private_dir, utc_now
from robots._evidence import mask_cookies, save_evidence
from robots._records import validated
from robots._registry import RobotSpec
from robots._reports import Ending, Hooks, RunHooks, RunLog, RunReport, Trial
from robots._walk import Walk
from settings import Settings
from store import Lease, Record, Run, Store, StoreError
from vault import AccountInfo, AccountParked, Vault, redact

STAGE_BATCH = 2_000  # records held before they go to the staging table
ACCOUNT_LEASE_S = 120.0  # renewed every 40 s while a run holds it; a holder that hangs frees it after this
LEASE_POLL_S = 0.5


class Harvester:
    """Runs robots in this process: ``async with Harvester(settings, store, vault) as h: ...``."""

    def __init__(
        self,
        settings: Settings,
        store: Store,
        vault: Vault,
        *,
        hooks: Sequence[RunHooks] = (),
        interactive: bool = False,
        holder: str = "harvest run",
        queued: bool = False,
        chromium: Chromium | None = None,
    ) -> None:
        self.settings = settings
        self.store = store
        self.vault = vault
        self.hooks = Hooks([RunLog(), *hooks])  # what every run tells as it goes
        self.interactive = interactive
        self.holder = holder  # what holds an account while a run of ours runs, as others are told
        self.queued = queued  # runs from a queue (scheduler, worker) wait for a system's slot until one frees
        # Chromium and its driver: made here, or by the caller (who may have started them early, for
        # the login that usually comes); closed and stopped here either way.
        self._chromium = chromium
        self._polite: dict[tuple[str, int], Polite] = {}  # one gate per system slot, with the slot's share
        self._gates: dict[tuple[str, str], Polite] = {}  # the gate of the slot each account's run holds
        self._sessions: dict[tuple[str, str], Session] = {}
        self._account_locks: dict[tuple[str, str], asyncio.Lock] = {}

    async def __aenter__(self) -> Self:
        sweep_orphan_browsers()
        killed = self.store.recover()
        if killed:
            logger.warning("已关闭 {} 个被终止的进程留下的运行，快照保持原样", len(killed))
        if self._chromium is None:
            playwright = await start_playwright()
            try:
                self._chromium = Chromium(playwright, self.settings)
            except BaseException:
                await playwright.stop()
                raise
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        for session in self._sessions.values():
            await session.close()
        self._sessions.clear()
        if self._chromium is not None:
            await self._chromium.close()
            if self._chromium.playwright is not None:
                await self._chromium.playwright.stop()

    @property
    def chromium(self) -> Chromium:
        """The process's Chromium, which runs only while a session logs in or renders."""
        assert self._chromium is not None, "use the Harvester as an async context manager"
        return self._chromium

    def system(self, declared: System) -> System:
        """The system as this unit runs it (``HARVEST_SYSTEM_URLS``, ``HARVEST_POLITENESS``)."""
        return configured(declared, self.settings)

    async def run(self, robot: RobotSpec, account: str, *, run_id: str | None = None) -> RunReport:
        """One run of ``robot`` with ``account``, holding the account's lease; the hooks hear how it ended.
        ``run_id``: the id the scheduler minted for it (a new one if None)."""
        system = self.system(robot.system)
        async with self._holding(robot, system, account, command="run") as busy:
            if busy is not None:
                report = busy.onto(RunReport(robot.name, system.name, account, robot.dataset, busy.status))
            else:
                report = await self._run(robot, system, account, run_id)
        self.hooks.finished(f"{robot.name}/{account}", report)
        return report

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
    ) -> AsyncIterator[Ending | None]:
        """Hold the account's lease and one of the system's session slots for the block (None), or
        say who holds them (``busy``).

        Runs of one account in this process queue for each other; a run elsewhere holding the
        account is waited for ``HARVEST_ACCOUNT_WAIT_S``, then this one refuses (``account_busy``).
        """
        async with self._account_locks.setdefault((system.name, account), asyncio.Lock()):
            lease = Lease(
                self.store.engine, f"account:{system.name}/{account}", what=self.holder, ttl=ACCOUNT_LEASE_S
            )
            if await _wait_for([lease], self.settings.account_wait_s) is None:
                yield self._busy(robot, system, account, lease, command)
                return
            try:
                async with self._slot(robot, system, account, command=command) as busy:
                    yield busy
            finally:
                lease.release()

    @contextlib.asynccontextmanager
    async def _slot(
        self, robot: RobotSpec, system: System, account: str, *, command: str
    ) -> AsyncIterator[Ending | None]:
        """Hold one of the system's session slots (``system:<name>:<i>``, leases like the account's)
        for the block, its gate the account's session's (``_session``); or say who holds them all.

        A queued run (the scheduler's, a worker's) waits until a slot frees, as it would in any
        queue; a run by hand waits ``HARVEST_ACCOUNT_WAIT_S``, then refuses (``account_busy``).
        """
        slots = [
            Lease(self.store.engine, f"system:{system.name}:{i}", what=self.holder, ttl=ACCOUNT_LEASE_S)
            for i in range(system.politeness.slots)
        ]
        slot = await _wait_for(slots, 0)
        if slot is None:
            logger.info("{} 的 {} 个采集名额都在使用：{} 的运行等待空出", system.name, len(slots), account)
            slot = await _wait_for(slots, None if self.queued else self.settings.account_wait_s)
        if slot is None:
            yield self._full(robot, system, account, slots, command)
            return
        index = slots.index(slot)
        gate = self._polite.setdefault(
            (system.name, index), Polite(system.politeness.share(index), name=system.name)
        )
        self._gates[(system.name, account)] = gate
        try:
            yield None
        finally:
            del self._gates[(system.name, account)]
            slot.release()

    def _refusal(self, system: System, info: AccountInfo) -> Ending | None:
        """Why this account may not log in now (parked, or outside the system's hours); None if it may."""
        if info.status == "parked":
            return self._parked(info)
        if not system.politeness.allows(local_time(utc_now(), self.settings.timezone)):
            hours = "–".join(f"{hour} 点" for hour in system.politeness.hours or ())
            return Ending("skipped", None, f"{system.name} 只允许在每天 {hours}之间采集，本次跳过")
        return None

    async def _run(self, robot: RobotSpec, system: System, account: str, run_id: str | None) -> RunReport:
        """A run's stages: the account's secrets and session, the walk, validating and staging what
        it yields, publishing; any failure instead ends it as its kind says, the snapshot untouched."""
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
            run_id=run_id,
        )
        base = dataclasses.replace(base, run_id=run_id)
        key = f"{robot.name}/{account}"
        started = time.monotonic()
        walk: Walk | None = None
        session: Session | None = None
        with logger.contextualize(run=run_id[:8]):
            self.hooks.started(key, base)
            try:
                session = await self._session(robot, system, info, run_id)
                page_read = functools.partial(self.hooks.advanced, key, pages=1)
                walk = self._walk(robot, session, run_id, info, on_page=page_read)
                records = await self._harvest(robot, walk, run_id, key)
                report = await self._publish(base, walk, records)
            except asyncio.CancelledError:
                self.store.fail(run_id, "cancelled", "运行已被中止，没有发布任何数据", status="cancelled")
                raise
            except Exception as exc:
                ending = await self._ending(exc, robot, system, account, run_id, walk, session)
                report = self._failed(base, run_id, ending)
            finally:
                if session is not None:
                    await self._keep_session(system, account, session)
        return dataclasses.replace(
            report,
            seconds=round(time.monotonic() - started, 2),
            pages=walk.pages_read if walk else 0,
            logins=session.logins if session else 0,
        )

    def _walk(
        self,
        robot: RobotSpec,
        fetcher: Fetcher,
        run_id: str,
        info: AccountInfo,
        *,
        on_page: Callable[[], None] = lambda: None,
    ) -> Walk:
        return Walk(
            fetcher,
            run_id=run_id,
            account=info.account,
            scope=info.scope,
            settings=self.settings,
            on_page=on_page,
            max_pages=robot.max_pages,
        )

    async def _publish(self, base: RunReport, walk: Walk, records: int) -> RunReport:
        """The staged records become the snapshot, in one transaction."""
        assert base.run_id is not None
        run = await asyncio.to_thread(self.store.publish, base.run_id, complete=True, pages=walk.pages_read)
        return _from_run(base, run, records=records)

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
                walk = self._walk(robot, wrap(session) if wrap is not None else session, trial_id, info)
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
    ) -> Ending:
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
            return Ending("failed", "error", redact(message), artifacts)
        if failure.parks:
            self.vault.park(system.name, account, kind=failure.kind, message=str(failure))
        artifacts = (
            await self._evidence(run_id, walk, session, files=failure.evidence)
            if isinstance(failure, LayoutChanged) or failure.evidence
            else None
        )
        return Ending("parked" if failure.parks else "failed", failure.kind, redact(str(failure)), artifacts)

    async def _session(self, robot: RobotSpec, system: System, info: AccountInfo, run_id: str) -> Session:
        key = (system.name, info.account)
        session = self._sessions.get(key)
        if session is not None:
            session.polite = self._gates[key]  # the gate of the slot this run holds, maybe not the last one's
            return session

        def credentials() -> Credentials:
            secrets = self.vault.secrets(system.name, info.account, robot=robot.name, run_id=run_id)
            return Credentials(info.username, secrets.password, secrets.totp_seed)

        solvers = [OcrSolver(self.settings.captcha_attempts)]
        if self.interactive:
            solvers.append(TerminalSolver(self._artifacts(run_id)))
        assert self._chromium is not None, "use the Harvester as an async context manager"
        session = Session(
            self._chromium,
            system,
            credentials,
            account=info.account,
            polite=self._gates[key],
            solver=SolverChain(*solvers),
            state=self.vault.load_session(system.name, info.account),
            recycle_pages=self.settings.context_recycle_pages,
            allow=robot.allow,
            on_login=mask_cookies,
            ledger=self.vault.login_ledger(system.name, info.account),
            recipes=self.vault.login_recipes(system.name, info.account),
        )
        try:
            await session.open()
        except BaseException:
            await session.close()
            raise
        await self._chromium.idle()  # warmed for a login that a saved session made needless
        self._sessions[key] = session
        # Kept at once, not only at the run's end: a process killed mid-run leaves the next run of the
        # account (the pool's redelivery) a live session to reuse instead of a login that ends it.
        await self._keep_session(system, info.account, session)
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
        self.hooks.advanced(key, records=len(batch))

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
    ) -> str:
        folder = private_dir(self._artifacts(run_id), within=self.settings.data_dir)
        await save_evidence(folder, walk, session, error=error, files=files)
        return str(folder)

    def _artifacts(self, run_id: str) -> Path:
        return self.settings.data_dir / "runs" / run_id

    def _failed(self, base: RunReport, run_id: str, ending: Ending) -> RunReport:
        try:
            self.store.fail(run_id, ending.kind or "error", ending.message, artifacts=ending.artifacts)
        except StoreError as exc:  # the next start closes the run (`killed`): say so, keep the real outcome
            logger.error("运行 {} 的结果未能写入数据库（{}）", run_id[:8], exc)
        return dataclasses.replace(ending.onto(base), run_id=run_id)

    def _busy(self, robot: RobotSpec, system: System, account: str, lease: Lease, command: str) -> Ending:
        holder = lease.holder()
        zone = self.settings.timezone
        who = "另一次运行" if holder is None else f"{holder}，{human_time(_epoch(holder.since), zone)} 起"
        message = (
            f"账号 {system.name}/{account} 正被{who}占用，等待 {self.settings.account_wait_s:g} 秒仍未释放，"
            f"本次未运行：待其结束后再运行 `harvest {command} {robot.name} --account {account}`"
        )
        return Ending("busy", AccountBusy.kind, message)

    def _full(
        self, robot: RobotSpec, system: System, account: str, slots: list[Lease], command: str
    ) -> Ending:
        holders = "、".join(str(slot.holder() or "另一次运行") for slot in slots)
        message = (
            f"{system.name} 同时采集的 {len(slots)} 个账号名额都在使用（{holders}），"
            f"等待 {self.settings.account_wait_s:g} 秒仍未空出，本次未运行："
            f"待其中一次结束后再运行 `harvest {command} {robot.name} --account {account}`"
        )
        return Ending("busy", AccountBusy.kind, message)

    def _parked(self, info: AccountInfo) -> Ending:
        since = f"自 {human_time(info.parked_at, self.settings.timezone)} 起" if info.parked_at else ""
        message = (
            f"账号 {info.system}/{info.account} {since}已停用（{info.parked_kind}），本次没有尝试登录："
            f"用 `harvest vault set {info.system} {info.account} --password` 更新后即可恢复"
        )
        return Ending("parked", info.parked_kind or "bad_credentials", message)


async def _wait_for(leases: Sequence[Lease], seconds: float | None) -> Lease | None:
    """The first of ``leases`` free within ``seconds`` (None: however long it takes), taken; None if
    none was. A wait that is cancelled never leaves one taken."""
    deadline = None if seconds is None else time.monotonic() + seconds
    while True:
        attempt = asyncio.ensure_future(asyncio.to_thread(_take_any, leases))
        try:
            taken = await asyncio.shield(attempt)
        except asyncio.CancelledError:  # the thread goes on: release what it may still take
            attempt.add_done_callback(_release_if_taken)
            raise
        if taken is not None:
            return taken
        if deadline is not None and time.monotonic() >= deadline:
            return None
        await asyncio.sleep(LEASE_POLL_S)


def _take_any(leases: Sequence[Lease]) -> Lease | None:
    return next((lease for lease in leases if lease.try_acquire()), None)


def _release_if_taken(attempt: asyncio.Future[Lease | None]) -> None:
    if not attempt.cancelled() and attempt.exception() is None and (taken := attempt.result()) is not None:
        taken.release()


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
