"""Reading image captchas: offline OCR first, then a person at a terminal, if there is one."""

from __future__ import annotations

import asyncio
import sys
import threading
from functools import cache
from pathlib import Path
from typing import Any, Protocol

from loguru import logger


class CaptchaSolver(Protocol):
    """Reads one captcha image; returns its text ("" if it saw none), or ``None`` to give up."""

    async def solve(self, image: bytes, attempt: int) -> str | None: ...


@cache
def _ocr() -> Any:
    import ddddocr  # slow to import and to load its model: only when a captcha appears

    return ddddocr.DdddOcr(show_ad=False)


_ocr_lock = threading.Lock()  # one ONNX session, shared by every account's login


def read_captcha(image: bytes) -> str:
    """The text ddddocr reads in ``image``; upper-cased, since the systems ignore case."""
    with _ocr_lock:
        return str(_ocr().classification(image)).strip().upper()


class OcrSolver:
    """ddddocr, offline; tried ``attempts`` times, each on a fresh image."""

    def __init__(self, attempts: int) -> None:
        self.attempts = attempts

    async def solve(self, image: bytes, attempt: int) -> str | None:
        if attempt >= self.attempts:
            return None
        return await asyncio.to_thread(read_captcha, image)


class TerminalSolver:
    """Ask the operator at the terminal: the image is saved where they can open it."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder

    async def solve(self, image: bytes, attempt: int) -> str | None:
        if not sys.stdin.isatty():
            return None
        self.folder.mkdir(parents=True, exist_ok=True)
        path = self.folder / f"captcha-{attempt}.png"
        path.write_bytes(image)
        prompt = f"OCR could not read the captcha. Open {path} and type what it says (empty to give up): "
        answer = await asyncio.to_thread(input, prompt)
        return answer.strip() or None


class SolverChain:
    """Each solver in turn, counting attempts across the chain; ``None`` once all give up."""

    def __init__(self, *solvers: CaptchaSolver) -> None:
        self.solvers = solvers
        self._attempt = 0

    def reset(self) -> None:
        """A new login: every solver gets its attempts again."""
        self._attempt = 0

    async def solve(self, image: bytes, attempt: int = 0) -> str | None:
        for solver in self.solvers:
            answer = await solver.solve(image, self._attempt)
            if answer is not None:  # "" is an attempt too: OCR saw nothing, a fresh image may do
                self._attempt += 1
                logger.debug("captcha attempt {} by {}", self._attempt, type(solver).__name__)
                return answer
        return None
