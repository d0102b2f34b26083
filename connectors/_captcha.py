"""Reading image captchas: offline OCR first, then a person at a terminal, if there is one.

The OCR is ddddocr's bundled models run through their ONNX sessions and decoded by us so that only
ASCII letters and digits can come out: ddddocr's own ``set_ranges`` only drops other characters after
the fact, so a "大" read for an X leaves a hole instead of the X. The ``beta=True`` model reads the
image's darkest channel; when it is unsure, the default model reads too and the readings are compared.
``bench/captcha.py`` measures this chain and its alternatives on every sandbox captcha style.
"""

from __future__ import annotations

import asyncio
import string
import sys
import threading
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import cache
from io import BytesIO
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from loguru import logger

if TYPE_CHECKING:  # numpy and Pillow cost every run's start-up: imported when a captcha is read
    from PIL import Image

# Systems differ in their alphabets (some keep 0/O, some use lower case), so the only restriction that
# holds everywhere is "Latin letters and digits"; the systems ignore case, so we answer in upper case.
ALPHABET = string.ascii_letters + string.digits
MODEL_HEIGHT = 64  # both bundled models read grey images 64 px high, any width
MAX_ASPECT = 16  # wider than this is not a captcha; the model's cost grows with the width
TYPICAL_LENGTHS = range(4, 7)  # what nearly every real captcha has: the tie-breaker between readings
MAX_PIXELS = 2_000_000  # a captcha is a few thousand pixels; a photo or a bomb is not one


class CaptchaSolver(Protocol):
    """Reads one captcha image; returns its text ("" if it saw none), or ``None`` to give up."""

    async def solve(self, image: bytes, attempt: int) -> str | None: ...


@dataclass(frozen=True)
class Reading:
    """One model's text for one image, and its probability for the least certain character."""

    text: str
    confidence: float


class Model:
    """One of ddddocr's bundled models; one read at a time, as its ONNX session is shared."""

    def __init__(self, beta: bool) -> None:
        import ddddocr  # slow to import and to load a model: only when a captcha appears
        import numpy as np

        # ddddocr >= 1.6 keeps the model in ``ocr_engine``; we run its session and decode it ourselves.
        self._ocr = ddddocr.DdddOcr(show_ad=False, beta=beta)
        self._session: Any = self._ocr.ocr_engine.session
        self._input = self._session.get_inputs()[0].name
        charset: list[str] = self._ocr.get_charset()
        self._labels = ["", *sorted(set(ALPHABET.upper()))]  # "" is the CTC blank, class 0 of the model
        self._classes = np.array([0, *(i for i, char in enumerate(charset) if char in ALPHABET)])
        # Folds the model's classes onto our labels: "a" and "A" are one answer to a system that ignores case.
        self._fold = np.zeros((len(self._classes), len(self._labels)), dtype=np.float32)
        for row, index in enumerate(self._classes):
            self._fold[row, self._labels.index(charset[index].upper())] = 1.0
        self.lock = threading.Lock()

    def read(self, image: Image.Image) -> Reading:
        import numpy as np
        from PIL import Image

        width = max(1, round(image.width * MODEL_HEIGHT / image.height))
        grey = image.resize((width, MODEL_HEIGHT), Image.Resampling.LANCZOS).convert("L")
        pixels = np.asarray(grey, dtype=np.float32)[None, None] / 255.0
        with self.lock:
            scores = self._session.run(None, {self._input: pixels})[0]
        logits = scores.reshape(-1, scores.shape[-1])[:, self._classes]  # frames x allowed classes
        odds = np.exp(logits - logits.max(axis=1, keepdims=True))
        folded = (odds / odds.sum(axis=1, keepdims=True)) @ self._fold
        best = folded.argmax(axis=1)
        # Greedy CTC: a label held over several frames is one character; a blank between two is a double.
        starts = [t for t in range(len(best)) if best[t] and (t == 0 or best[t] != best[t - 1])]
        text = "".join(self._labels[best[t]] for t in starts)
        return Reading(text, float(min((folded[t, best[t]] for t in starts), default=0.0)))


@cache
def _model(beta: bool) -> Model:
    return Model(beta)


Prepare = Callable[["Image.Image"], "Image.Image"]


def darkest(image: Image.Image) -> Image.Image:
    """Each pixel's darkest channel, levels stretched: coloured text stays dark, pale greys and grounds fade.

    Luminance (what ddddocr uses) makes a saturated blue or red letter as light as the grey lines and
    gradients drawn to hide it; its darkest channel is near black. Stretching restores the contrast of
    pale text and of screenshots scaled by the browser.
    """
    from PIL import ImageChops, ImageOps

    red, green, blue = image.convert("RGB").split()
    return ImageOps.autocontrast(ImageChops.darker(ImageChops.darker(red, green), blue), cutoff=2)


def stretched(image: Image.Image) -> Image.Image:
    """Grey (luminance, as ddddocr reads) with its levels stretched."""
    from PIL import ImageOps

    return ImageOps.autocontrast(image.convert("L"), cutoff=2)


@dataclass(frozen=True)
class Reader:
    """One model reading images prepared one way."""

    beta: bool
    prepare: Prepare

    def read(self, image: Image.Image) -> Reading:
        return _model(self.beta).read(self.prepare(image))


def choose(readings: Sequence[Reading]) -> str:
    """The text two readings agree on; else the surest of a typical length; else the surest."""
    votes = Counter(r.text for r in readings if r.text).most_common(1)
    if votes and votes[0][1] > 1:
        return votes[0][0]
    typical = [r for r in readings if len(r.text) in TYPICAL_LENGTHS] or [r for r in readings if r.text]
    return max(typical, key=lambda r: r.confidence).text if typical else ""


@dataclass(frozen=True)
class Chain:
    """The first reader alone when ``sure`` enough of a typical length; else all of them, and ``choose``."""

    readers: tuple[Reader, ...]
    sure: float | None = None  # the first reading's weakest character probability; None: always ask all

    def read(self, image: Image.Image) -> str:
        first, rest = self.readers[0].read(image), self.readers[1:]
        trusted = self.sure is not None and first.confidence >= self.sure
        if not rest or (trusted and len(first.text) in TYPICAL_LENGTHS):
            logger.debug("captcha read as {!r} (p={:.2f})", first.text, first.confidence)
            return first.text
        return choose([first, *(reader.read(image) for reader in rest)])


def decode(image: bytes) -> Image.Image | None:
    """``image`` as RGB on white, or ``None`` if it is no picture or has no captcha's shape."""
    from PIL import Image

    try:
        picture = Image.open(BytesIO(image))  # reads the header only: the size is known before decoding
        if picture.width * picture.height > MAX_PIXELS or max(picture.size) > MAX_ASPECT * min(picture.size):
            return None
        picture.load()
    except Exception as exc:  # Pillow's decoders raise OSError, SyntaxError, struct.error... on junk
        logger.debug("captcha image not decoded: {}", type(exc).__name__)
        return None
    if picture.has_transparency_data:
        # Transparent pixels are mostly stored black: on their own the text would vanish into them.
        picture = Image.alpha_composite(Image.new("RGBA", picture.size, "white"), picture.convert("RGBA"))
    return picture.convert("RGB")


# Chosen by bench/captcha.py (bench/README.md): the best exact-read share over every style and
# displayed size at the cost of about one read; one image in ten or so is read three times.
CHAIN = Chain((Reader(True, darkest), Reader(False, stretched), Reader(False, darkest)), sure=0.9)


def read_captcha(image: bytes) -> str:
    """The text in ``image``, upper-cased since the systems ignore case; "" if it is no readable picture."""
    picture = decode(image)
    return "" if picture is None else CHAIN.read(picture)


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
        prompt = f"OCR 未能识别验证码：请打开 {path}，输入图中的字符（直接回车表示放弃）："
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
