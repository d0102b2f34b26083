"""Running robots: one Chromium per process, one session per account, one store run per robot × account.

The runner owns every lifetime a robot author never sees: the browser (and any left
behind by a killed process), the account's session (saved, reused, logged in again),
the store run (staged as records arrive, published only if the walk ends well), the
evidence of a failure (page HTML and a screenshot with password fields masked), and
the account's parking when the system rejects its password.
"""

from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt
import threading
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any, Protocol, Self

from loguru import logger
from playwright.async_api import Browser, Playwright, async_playwright
from pydantic import ValidationError

from connectors import (
    EXIT_CODES,
    Credentials,
    HarvestFailure,
    LayoutChanged,
    OcrSolver,
    Polite,
    Session,
    SolverChain,
    System,
    TerminalSolver,
    launch_browser,
    sweep_orphan_browsers,
)
from robots._registry import RobotSpec
from robots._walk import Walk
from settings import Settings
from store import PublishRefused, Record, Run, Store
from vault import AccountInfo, AccountParked, Vault, redact, register_secret

STAGE_BATCH = 2_000  # records held before they go to the staging table
EARLY_DRIFT_ROWS = 200  # rows read before the invalid-row tolerance can end a run early
MASKED_COOKIE_LENGTH = 8  # shorter values (flags like "1" or "zh") would mask ordinary words


@dataclass(frozen=True)
class RunReport:
    """How one robot × account run ended, for the terminal, the scheduler and alerts."""

    robot: str
    system: str
    account: str
    dataset: str
    status: str  # ok / failed / cancelled / parked / skipped
    kind: str | None = None  # failure kind: bad_credentials, locked, needs_human, layout_changed, …
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
        return EXIT_CODES.get(self.kind or "error", 1)


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
    ) -> None:
        self.settings = settings
        self.store = store
        self.vault = vault
        self.progress = progress or NoProgress()
        self.interactive = interactive
        self._playwright: Playwright | None = None
        self._browser: Browser | None = None
        self._polite: dict[str, Polite] = {}
        self._sessions: dict[tuple[str, str], Session] = {}
        self._account_locks: dict[tuple[str, str], asyncio.Lock] = {}

    async def __aenter__(self) -> Self:
        sweep_orphan_browsers()
        killed = self.store.recover()
        if killed:
            logger.warning(
                "{} run(s) of a killed process were closed; the snapshot was untouched", len(killed)
            )
        self._playwright = await async_playwright().start()
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
        """One run of ``robot`` with ``account``; runs of one account wait for each other."""
        system = self.system(robot.system)
        key = (system.name, account)
        async with self._account_locks.setdefault(key, asyncio.Lock()):
            return await self._run(robot, system, account)

    async def _run(self, robot: RobotSpec, system: System, account: str) -> RunReport:
        info = self.vault.get(system.name, account)
        base = RunReport(robot.name, system.name, account, robot.dataset, status="running")
        if info.status == "parked":
            return self._parked(robot, info, base)
        if not system.politeness.allows(dt.datetime.now()):
            hours = system.politeness.hours
            return dataclasses.replace(
                base, status="skipped", message=f"{system.name} may be harvested only between {hours} o'clock"
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
            logger.info("run {} of {} with {}/{} started", run_id[:8], robot.name, system.name, account)
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
            except PublishRefused as exc:
                artifacts = await self._evidence(run_id, walk, session)
                report = self._failed(base, run_id, "layout_changed", str(exc), artifacts)
            except AccountParked:  # another process parked it since we looked
                parked = self._parked(robot, self.vault.get(system.name, account), base)
                report = self._failed(
                    base, run_id, parked.kind or "bad_credentials", parked.message, parks=True
                )
            except HarvestFailure as exc:
                if exc.parks:
                    self.vault.park(system.name, account, kind=exc.kind, message=str(exc))
                artifacts = (
                    await self._evidence(run_id, walk, session, files=exc.evidence)
                    if isinstance(exc, LayoutChanged) or exc.evidence
                    else None
                )
                report = self._failed(base, run_id, exc.kind, str(exc), artifacts, parks=exc.parks)
            except asyncio.CancelledError:
                self.store.fail(
                    run_id, "cancelled", "the run was stopped; nothing was published", status="cancelled"
                )
                raise
            except Exception as exc:  # a bug in the robot: keep the evidence, keep the snapshot
                logger.opt(exception=exc).error("robot {} raised {}", robot.name, type(exc).__name__)
                artifacts = await self._evidence(run_id, walk, session, error=exc)
                message = redact(f"the robot raised {type(exc).__name__}: {exc}")
                report = self._failed(base, run_id, "error", message, artifacts)
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
                "run {} ended {}{}",
                run_id[:8],
                report.status,
                f" ({report.kind}): {report.message}" if report.kind else "",
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
                f"{invalid} of {read} rows did not fit {robot.record.__name__} (first: {first_error}): "
                "the page layout or the data's format may have changed"
            )
        if invalid:
            logger.warning(
                "{} of {} rows did not validate and were left out (first: {})", invalid, read, first_error
            )
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
        self.vault.save_session(system.name, account, state, ttl=dt.timedelta(hours=system.session_hours))

    async def _evidence(
        self,
        run_id: str,
        walk: Walk | None,
        session: Session | None,
        error: BaseException | None = None,
        files: dict[str, bytes] | None = None,
    ) -> str | None:
        """Save what the robot last saw (HTML or JSON, a masked screenshot, the traceback)."""
        folder = self._artifacts(run_id)
        folder.mkdir(parents=True, exist_ok=True)
        for name, data in (files or {}).items():  # the login page a failure brought along
            if name.endswith(".html"):  # a page may echo what was typed into it
                data = redact(data.decode("utf-8", errors="replace")).encode("utf-8")
            (folder / name).write_bytes(data)
        if walk is not None and walk.last_body:
            suffix = ".json" if walk.last_body.lstrip().startswith(("{", "[")) else ".html"
            (folder / f"last-page{suffix}").write_text(walk.last_body, encoding="utf-8")
            (folder / "last-url.txt").write_text(walk.last_url + "\n", encoding="utf-8")
        if session is not None:
            try:
                page = await session.page()
                if page.url == "about:blank" and walk is not None and walk.last_body.lstrip().startswith("<"):
                    await page.set_content(walk.last_body)
                await session.screenshot(page, folder / "screenshot.png")
            except Exception as exc:  # evidence is best effort: never hide the run's own failure
                logger.debug("no screenshot: {}", exc)
        if error is not None:
            text = redact("".join(traceback.format_exception(error)))
            (folder / "traceback.txt").write_text(text, encoding="utf-8")
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
        self.store.fail(run_id, kind, message, artifacts=artifacts)
        status = "parked" if parks else "failed"
        return dataclasses.replace(
            base, status=status, kind=kind, message=message, run_id=run_id, artifacts=artifacts
        )

    def _parked(self, robot: RobotSpec, info: AccountInfo, base: RunReport) -> RunReport:
        since = info.parked_at.astimezone().strftime("%Y-%m-%d %H:%M") if info.parked_at else "earlier"
        message = (
            f"the account {info.system}/{info.account} is parked since {since} ({info.parked_kind}) and was "
            f"not tried: update it with `harvest vault set {info.system} {info.account} --password`"
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
            f"{tally.dropped} of {rows} table rows could not be read into {robot.record.__name__} (too few "
            "cells for the columns named): the table's layout may have changed; see last-page.html"
        )
    if tally.dropped:
        logger.warning("{} of {} table rows could not be read and were left out", tally.dropped, rows)
    # An empty-table row counts only where no page had rows: the page after the last says 暂无数据 too.
    said_empty = expected == 0 or (expected is None and tally.said_empty and tally.rows == 0)
    if read == 0 and not said_empty:
        raise LayoutChanged(
            f"the walk read {walk.pages_read} page(s) and found no records, and the system did not say the "
            "list is empty: the robot's selectors or columns may not match the pages; see last-page.html"
        )
    if expected is not None and read < expected:
        raise LayoutChanged(
            f"the system says the list holds {expected} records but the walk read {read}: pages were "
            "missed (a pager the robot does not read right?) and nothing was published; see last-page.html"
        )


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
