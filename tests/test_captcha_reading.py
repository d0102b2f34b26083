"""The login's captcha reading chain, on every captcha style the sandbox draws."""

from __future__ import annotations

import random
import subprocess
import sys
from io import BytesIO

import pytest
from PIL import Image

from connectors import read_captcha
from sandbox import CAPTCHA_STYLES, new_captcha

IMAGES = 40
FLOOR = 0.6  # far under what bench/captcha.py measures, so that only a broken chain fails


@pytest.mark.parametrize("style", sorted(CAPTCHA_STYLES))
def test_chain_reads_most_captchas_of_every_style(style: str) -> None:
    rng = random.Random(f"test/{style}")
    captchas = [CAPTCHA_STYLES[style](rng) for _ in range(IMAGES)]
    # Exact equality, not ``matches``: the chain itself must answer in upper case.
    read = sum(read_captcha(c.png) == c.answer.upper() for c in captchas)
    assert read >= FLOOR * IMAGES, f"the chain read {read} of {IMAGES} {style} captchas"


def test_answers_are_upper_case() -> None:
    rng = random.Random(3)
    answers = [read_captcha(CAPTCHA_STYLES[style](rng).png) for style in CAPTCHA_STYLES for _ in range(3)]
    assert all(answers)
    assert all(a == a.upper() for a in answers)


def _png(image: Image.Image) -> bytes:
    buffer = BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def _banner() -> bytes:
    """Twenty captchas in a row: text, but no captcha's shape (and costly to read at that width)."""
    rng = random.Random(2)
    banner = Image.new("RGB", (20 * 120, 40))
    for i in range(20):
        with Image.open(BytesIO(new_captcha(rng).png)) as tile:
            banner.paste(tile, (i * 120, 0))
    return _png(banner)


def _huge() -> bytes:
    """A captcha blown up to 3 megapixels: a screenshot of a page, say, not the captcha's image."""
    with Image.open(BytesIO(new_captcha(random.Random(3)).png)) as image:
        return _png(image.resize((3000, 1000), Image.Resampling.NEAREST))


@pytest.mark.parametrize(
    "junk",
    [
        b"",
        b"not an image",
        b"\x89PNG\r\n\x1a\n" + b"\x00" * 64,  # a PNG signature and nothing sound after it
        new_captcha(random.Random(1)).png[:300],  # cut off mid-download
        b"<html><body>session expired</body></html>",  # what a system sends instead of the image
        _banner(),
        _huge(),
    ],
    ids=["empty", "text", "png-header", "truncated", "html", "banner", "huge"],
)
def test_what_is_no_captcha_reads_as_nothing(junk: bytes) -> None:
    assert read_captcha(junk) == ""


def test_tiny_and_blank_images_do_not_raise() -> None:
    for size in [(1, 1), (3, 2), (120, 40)]:
        assert isinstance(read_captcha(_png(Image.new("RGB", size, "white"))), str)


def test_transparent_captcha_is_read_on_white() -> None:
    # Transparent pixels are stored as (0, 0, 0, 0): read without their alpha they are black, and the
    # dark text vanishes into them.
    rng = random.Random(11)
    captchas = [new_captcha(rng) for _ in range(10)]
    read = 0
    for captcha in captchas:
        with Image.open(BytesIO(captcha.png)) as image:
            rgb = image.convert("RGB")
        ink = rgb.convert("L").point(lambda v: 255 if v < 150 else 0)
        transparent = Image.new("RGBA", rgb.size, (0, 0, 0, 0))
        transparent.paste(rgb, mask=ink)
        read += read_captcha(_png(transparent)) == captcha.answer
    assert read >= 6, f"read {read} of {len(captchas)} transparent captchas"


def test_importing_connectors_loads_no_ocr_model() -> None:
    code = "import sys, connectors; assert 'ddddocr' not in sys.modules, 'ddddocr imported'"
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120)
