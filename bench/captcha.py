"""Captcha OCR bench: every sandbox captcha style, as served and as a screenshot at another size.

    .venv/bin/python bench/captcha.py [--count 300] [--seed 1] [--scales 0.8 1.5]

For each style in ``sandbox.CAPTCHA_STYLES`` it draws ``--count`` captchas from a seeded
``random.Random`` and shows each one three ways: the PNG as served, and re-scaled with Pillow to each
of ``--scales`` (what ``locator.screenshot()`` gives when CSS displays the image at another size).
Every variant reads every one of those images; the variants take turns in a rotating order per image,
so that caches and the machine's load fall on all of them alike. A read is timed from the bytes to the
upper-cased text (decoding included), after one warm-up read that loads the models.

Variants: ddddocr as the package reads (its default model, ``beta=True``, and ``set_ranges`` to ASCII
letters and digits), and readers built from ``connectors._captcha``'s pieces: either model with its
output restricted to ASCII letters and digits, on the image as it is or prepared (grey with levels
stretched, 3x3 median, darkest channel stretched), and chains that read with two or three of them and
choose by agreement or, failing that, the surest reading of a typical length (4-6 characters). The last
row, ``read_captcha``, is the login's chain itself. Runs offline: ddddocr ships its models.
"""

from __future__ import annotations

import argparse
import os
import platform
import random
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from importlib.metadata import version
from io import BytesIO
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import ddddocr
from loguru import logger
from PIL import Image, ImageFilter

from connectors._captcha import ALPHABET, Chain, Reader, darkest, decode, read_captcha, stretched
from sandbox import CAPTCHA_STYLES, Captcha

Read = Callable[[bytes], str]


def as_is(image: Image.Image) -> Image.Image:
    return image


def despeckled(image: Image.Image) -> Image.Image:
    """Grey through a 3x3 median: erases one-pixel lines and dots, and thin strokes with them."""
    return image.convert("L").filter(ImageFilter.MedianFilter(3))


def package(beta: bool = False, ranges: str | None = None) -> Read:
    """ddddocr's own ``classification``, as ``read_captcha`` did before the chain."""
    ocr = ddddocr.DdddOcr(show_ad=False, beta=beta)
    if ranges is not None:
        ocr.set_ranges(ranges)
    return lambda image: str(ocr.classification(image)).strip().upper()


def chained(*readers: Reader, sure: float | None = None) -> Read:
    chain = Chain(readers, sure)

    def read(image: bytes) -> str:
        picture = decode(image)
        return "" if picture is None else chain.read(picture)

    return read


def variants() -> dict[str, Read]:
    beta_darkest, beta_stretched = Reader(True, darkest), Reader(True, stretched)
    default_darkest, default_stretched = Reader(False, darkest), Reader(False, stretched)
    return {
        "ddddocr (before)": package(),
        "ddddocr beta": package(beta=True),
        "ddddocr, set_ranges(ASCII)": package(ranges=ALPHABET),
        "ascii": chained(Reader(False, as_is)),
        "ascii, beta": chained(Reader(True, as_is)),
        "ascii, stretched": chained(default_stretched),
        "ascii, beta, stretched": chained(beta_stretched),
        "ascii, median": chained(Reader(False, despeckled)),
        "ascii, darkest": chained(default_darkest),
        "ascii, beta, darkest": chained(beta_darkest),
        "choose: beta darkest + darkest": chained(beta_darkest, default_darkest),
        "choose: beta darkest + stretched + beta stretched": chained(
            beta_darkest, default_stretched, beta_stretched
        ),
        "beta darkest; if p<0.9, choose of 3": chained(
            beta_darkest, default_stretched, default_darkest, sure=0.9
        ),
        "read_captcha": read_captcha,
    }


def scaled(png: bytes, factor: float) -> bytes:
    """The captcha as a screenshot of it displayed ``factor`` times its natural size."""
    with Image.open(BytesIO(png)) as image:
        size = (round(image.width * factor), round(image.height * factor))
        shown = image.convert("RGB").resize(size, Image.Resampling.BILINEAR)
    buffer = BytesIO()
    shown.save(buffer, format="PNG")
    return buffer.getvalue()


@dataclass
class Tally:
    reads: int = 0
    exact: int = 0
    right_length: int = 0
    seconds: float = 0.0

    def add(self, captcha: Captcha, text: str, seconds: float) -> None:
        self.reads += 1
        self.exact += text == captcha.answer.upper()
        self.right_length += len(text) == len(captcha.answer)
        self.seconds += seconds


Tallies = dict[tuple[str, str], Tally]  # by (images, variant)


def measure(reads: dict[str, Read], count: int, seed: int, scales: list[float]) -> Tallies:
    tallies: Tallies = {}
    labels = list(reads)
    turn = 0
    for style, draw in CAPTCHA_STYLES.items():
        rng = random.Random(f"{seed}/{style}")
        for _ in range(count):
            captcha = draw(rng)
            shown = {style: captcha.png} | {f"{style} @{f:g}x": scaled(captcha.png, f) for f in scales}
            for row, image in shown.items():
                turn += 1
                for label in labels[turn % len(labels) :] + labels[: turn % len(labels)]:
                    start = time.perf_counter()
                    text = reads[label](image)
                    seconds = time.perf_counter() - start
                    tallies.setdefault((row, label), Tally()).add(captcha, text, seconds)
    return tallies


def report(tallies: Tallies, labels: list[str]) -> None:
    print("| images | variant | exact | right length | ms/read |")
    print("| --- | --- | --- | --- | --- |")
    rows = list(dict.fromkeys(row for row, _ in tallies))
    for row in rows:
        for label in labels:
            t = tallies[(row, label)]
            print(
                f"| {row} | {label} | {t.exact / t.reads:.1%} | {t.right_length / t.reads:.1%} "
                f"| {t.seconds / t.reads * 1000:.1f} |"
            )
    print("\nOver all images (every style and size counted alike):\n")
    print("| variant | exact, mean | exact, worst images | ms/read |")
    print("| --- | --- | --- | --- |")
    for label in labels:
        shares = [tallies[(row, label)].exact / tallies[(row, label)].reads for row in rows]
        worst = min(range(len(rows)), key=shares.__getitem__)
        seconds = sum(tallies[(row, label)].seconds for row in rows)
        reads = sum(tallies[(row, label)].reads for row in rows)
        print(
            f"| {label} | {sum(shares) / len(shares):.1%} | {shares[worst]:.1%} ({rows[worst]}) "
            f"| {seconds / reads * 1000:.1f} |"
        )


def cpu() -> str:
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.machine()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=300, help="captchas per style")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--scales", type=float, nargs="*", default=[0.8, 1.5], help="displayed sizes")
    args = parser.parse_args()
    logger.remove()  # decode() logs every undecodable image at debug level; the bench feeds it none
    reads = variants()
    warm_up = next(iter(CAPTCHA_STYLES.values()))(random.Random(-1)).png
    for read in reads.values():
        read(warm_up)
    print(
        f"{args.count} captchas per style, styles {', '.join(CAPTCHA_STYLES)}, seed {args.seed}; "
        f"ddddocr {version('ddddocr')}, onnxruntime {version('onnxruntime')}; "
        f"{cpu()}, {os.cpu_count()} CPUs, "
        f"load average {os.getloadavg()[0]:.1f} at start\n"
    )
    started = time.perf_counter()
    tallies = measure(reads, args.count, args.seed, args.scales)
    report(tallies, list(reads))
    print(f"\n{time.perf_counter() - started:.0f} s, load average {os.getloadavg()[0]:.1f} at the end")


if __name__ == "__main__":
    main()
