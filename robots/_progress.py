"""A Rich progress display for runs in a terminal (a ``RunHooks``): pages, records and records per second."""

from __future__ import annotations

from rich.console import Console
from rich.markup import escape
from rich.progress import Progress, ProgressColumn, SpinnerColumn, Task, TextColumn, TimeElapsedColumn
from rich.text import Text

from robots._reports import RunReport

STATUS_TEXT = {"ok": "[green]完成[/green]", "parked": "[red]账号已停用[/red]", "skipped": "跳过"}


class _Rate(ProgressColumn):
    def render(self, task: Task) -> Text:
        speed = task.finished_speed or task.speed
        return Text(f"{speed:,.0f} 条/秒" if speed else "", style="progress.data.speed")


class RichProgress:
    """One line per run; used as a context manager around the runs."""

    def __init__(self, console: Console | None = None) -> None:
        self._progress = Progress(
            SpinnerColumn(),
            TextColumn("{task.description}"),
            TextColumn("{task.fields[pages]} 页"),
            TextColumn("{task.completed:,.0f} 条"),
            _Rate(),
            TimeElapsedColumn(),
            TextColumn("{task.fields[status]}"),
            console=console,
            transient=False,
        )
        self._tasks: dict[str, int] = {}

    def __enter__(self) -> RichProgress:
        self._progress.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._progress.stop()

    def started(self, key: str, report: RunReport) -> None:
        # The columns read their text as markup: a title is shown as it is, brackets and all.
        title = escape(f"{report.robot} · {report.account}")
        self._tasks[key] = self._progress.add_task(title, total=None, pages=0, status="")

    def advanced(self, key: str, *, pages: int = 0, records: int = 0) -> None:
        task = self._tasks[key]
        done = self._progress.tasks[task].fields["pages"]
        self._progress.update(task, advance=records, pages=done + pages)

    def finished(self, key: str, report: RunReport) -> None:
        task = self._tasks.get(key)
        if task is None:
            return
        status = STATUS_TEXT.get(report.status, f"[red]{escape(report.kind or report.status)}[/red]")
        self._progress.update(task, total=report.records, completed=report.records, status=status)
        self._progress.stop_task(task)
