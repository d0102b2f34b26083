"""The distorted-text image captcha the sandbox's login pages show.

It imitates the small "验证码" images of provincial and county systems: about 120x40,
a pale noisy background, a few lines and arcs across the text, speckles, and each
character in its own colour, tilted and nudged up or down, the whole image rippled.
The distortion is kept within what an offline OCR model (ddddocr) reads most of the
time, because the robots are meant to clear this gate the way they clear the real
ones: OCR first, a person only when OCR misses.

Everything random comes from the caller's ``random.Random`` so that a seeded sandbox
serves the same images and answers on every run.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache
from io import BytesIO

from PIL import Image, ImageDraw, ImageFont

# Digits and capitals that cannot be mistaken for one another once tilted and crossed
# by lines: no 0/O/D/Q/G/8/B, 1/I/L/J/T/7, 2/Z, 5/S, V (against U and Y). 7 also goes
# because ddddocr reads a tilted 7 as ">" or "1". A person retyping the captcha should
# never be the reason a login fails.
CAPTCHA_ALPHABET = "3469ACEFHKMNPRUWXY"

WIDTH, HEIGHT = 120, 40
FONT_SIZE = 26

# Tuned together against ddddocr 1.6.1 (about 97% of 4-character answers read right);
# more ripple or tilt starts to hide letters from people as well as from OCR.
WAVE_AMPLITUDE = (3.0, 5.0)  # px, vertical reach of the ripple
MAX_TILT = 30.0  # degrees either way, per character
EDGE = 1  # px kept clear at the left and right
MIN_GAP = -8.0  # px between rotated tiles; negative because tiles carry padding

Colour = tuple[int, int, int]


@dataclass(frozen=True)
class Captcha:
    answer: str
    png: bytes

    def matches(self, typed: str) -> bool:
        # Real systems forgive case and stray spaces, and people (and OCR) rely on it.
        return typed.strip().upper() == self.answer.upper()


def new_captcha(rng: random.Random, length: int = 4) -> Captcha:
    """A fresh captcha whose answer and pixels depend only on ``rng``'s state."""
    if length < 1:
        raise ValueError(f"captcha length must be at least 1, got {length}")
    answer = "".join(rng.choice(CAPTCHA_ALPHABET) for _ in range(length))
    image = _render(rng, answer)
    buffer = BytesIO()
    # PNG carries no timestamp, so equal pixels give equal bytes.
    image.save(buffer, format="PNG")
    return Captcha(answer=answer, png=buffer.getvalue())


@lru_cache(maxsize=4)
def _font(size: int = FONT_SIZE) -> ImageFont.FreeTypeFont | ImageFont.ImageFont:
    # Pillow's bundled scalable font (Pillow >= 10.1 with FreeType), so every machine
    # draws the same glyphs whatever fonts its system has.
    return ImageFont.load_default(size=size)


def _render(rng: random.Random, answer: str) -> Image.Image:
    background = _light(rng)
    image = Image.new("RGB", (WIDTH, HEIGHT), background)
    _background_noise(rng, image)
    # Some lines go under the text and some over it, as on real images, so neither
    # background subtraction nor a top-layer colour filter removes them all. Only the
    # ones underneath may be thick: a thick line over a thin stroke hides the letter.
    _interference(rng, image, count=rng.randint(1, 2), max_width=2)
    _draw_text(rng, image, answer)
    _interference(rng, image, count=rng.randint(1, 2), max_width=1)
    image = _wave(rng, image, background)
    # Speckles come last so the ripple does not smear them into short strokes.
    _speckles(rng, image, count=rng.randint(60, 90))
    return image


def _light(rng: random.Random) -> Colour:
    return (rng.randint(225, 250), rng.randint(225, 250), rng.randint(225, 250))


def _mid(rng: random.Random) -> Colour:
    return (rng.randint(120, 200), rng.randint(120, 200), rng.randint(120, 200))


def _dark(rng: random.Random) -> Colour:
    # One low, one middling and one higher channel in random order: saturated, dark
    # colours that stand well off the pale background yet differ from char to char.
    channels = [rng.randint(0, 60), rng.randint(40, 120), rng.randint(90, 160)]
    rng.shuffle(channels)
    return (channels[0], channels[1], channels[2])


def _background_noise(rng: random.Random, image: Image.Image) -> None:
    draw = ImageDraw.Draw(image)
    for _ in range(rng.randint(250, 350)):
        x, y = rng.randrange(WIDTH), rng.randrange(HEIGHT)
        draw.point((x, y), fill=(rng.randint(190, 235), rng.randint(190, 235), rng.randint(190, 235)))


def _interference(rng: random.Random, image: Image.Image, count: int, max_width: int) -> None:
    draw = ImageDraw.Draw(image)
    for _ in range(count):
        width = rng.randint(1, max_width)
        if rng.random() < 0.5:
            start = (rng.randint(0, WIDTH // 4), rng.randint(0, HEIGHT))
            end = (rng.randint(3 * WIDTH // 4, WIDTH), rng.randint(0, HEIGHT))
            draw.line([start, end], fill=_mid(rng), width=width)
        else:
            # A sine-like arc across most of the width, the commonest pattern on real
            # government captchas.
            amplitude = rng.uniform(3, 8)
            period = rng.uniform(60, 140)
            phase = rng.uniform(0, 2 * math.pi)
            base = rng.uniform(12, HEIGHT - 12)
            x0, x1 = rng.randint(0, 20), rng.randint(WIDTH - 20, WIDTH)
            points = [
                (x, base + amplitude * math.sin(2 * math.pi * x / period + phase)) for x in range(x0, x1, 2)
            ]
            draw.line(points, fill=_mid(rng), width=width)


def _speckles(rng: random.Random, image: Image.Image, count: int) -> None:
    draw = ImageDraw.Draw(image)
    for _ in range(count):
        x, y = rng.randrange(WIDTH), rng.randrange(HEIGHT)
        draw.point((x, y), fill=_mid(rng) if rng.random() < 0.7 else _dark(rng))


def _wave(rng: random.Random, image: Image.Image, background: Colour) -> Image.Image:
    # A vertical ripple bends the baseline, the glyphs and the lines together, so the
    # characters are no longer clean font shapes that plain template matching catches.
    amplitude = rng.uniform(*WAVE_AMPLITUDE)
    period = rng.uniform(50, 90)
    phase = rng.uniform(0, 2 * math.pi)
    # Fill with the background colour so shifted columns expose no black edge.
    warped = Image.new("RGB", image.size, background)
    for x in range(WIDTH):
        dy = round(amplitude * math.sin(2 * math.pi * x / period + phase))
        warped.paste(image.crop((x, 0, x + 1, HEIGHT)), (x, dy))
    return warped


def _glyph(char: str, colour: Colour, size: int = FONT_SIZE) -> Image.Image:
    """``char`` on a transparent tile with room to rotate without clipping."""
    font = _font(size)
    left, top, right, bottom = font.getbbox(char)
    w, h = int(right - left), int(bottom - top)
    pad = 4
    tile = Image.new("RGBA", (w + 2 * pad, h + 2 * pad), (0, 0, 0, 0))
    ImageDraw.Draw(tile).text((pad - left, pad - top), char, font=font, fill=(*colour, 255))
    if not isinstance(font, ImageFont.FreeTypeFont):
        # Pillow without FreeType falls back to a tiny bitmap font: scale it up to the
        # height the scalable font would have had.
        scale = size * 0.7 / max(h, 1)
        tile = tile.resize((round(tile.width * scale), round(tile.height * scale)), Image.Resampling.NEAREST)
    return tile


def _shrink(tile: Image.Image, scale: float) -> Image.Image:
    size = (max(1, round(tile.width * scale)), max(1, round(tile.height * scale)))
    return tile.resize(size, Image.Resampling.BICUBIC)


def _draw_text(rng: random.Random, image: Image.Image, answer: str) -> None:
    tiles = [
        _glyph(char, _dark(rng)).rotate(
            rng.uniform(-MAX_TILT, MAX_TILT), resample=Image.Resampling.BICUBIC, expand=True
        )
        for char in answer
    ]
    jitters = [rng.uniform(-1.5, 1.5) for _ in tiles[1:]]
    room = WIDTH - 2 * EDGE - sum(jitters)
    total = sum(t.width for t in tiles)
    if total + MIN_GAP * (len(tiles) - 1) > room:
        # Answers longer than the usual four would run off the right edge at full
        # size: shrink them, as real systems with six-character captchas do.
        scale = (room - MIN_GAP * (len(tiles) - 1)) / total
        tiles = [_shrink(t, scale) for t in tiles]
        total = sum(t.width for t in tiles)
    # Spread the characters over the width (touching at most, as real captchas do),
    # then start at a random margin so the text is not always in the same place.
    gap = max(MIN_GAP, min(3.0, (room - total) / max(len(tiles) - 1, 1)))
    span = total + sum(jitters) + gap * (len(tiles) - 1)
    x = rng.uniform(EDGE, max(EDGE, WIDTH - EDGE - span))
    # Keep the glyphs clear of the top and bottom by the ripple's reach, so the wave
    # applied afterwards never pushes part of a character out of the image.
    reach = math.ceil(WAVE_AMPLITUDE[1])
    for tile, jitter in zip(tiles, [0.0, *jitters], strict=True):
        x += jitter
        low, high = reach, HEIGHT - reach - tile.height
        top = (HEIGHT - tile.height) / 2 + rng.uniform(-4, 4)
        top = min(max(top, low), high) if low <= high else (HEIGHT - tile.height) / 2
        image.paste(tile, (round(x), round(top)), tile)
        x += tile.width + gap


# The "health" style, as on many provincial health admins: a smaller image, five lower-case
# letters and digits, upright-ish glyphs on a colour gradient under a grid of thin lines,
# and far more dot noise than the classic style. No 0/o, 1/l/i/j (dots read as the noise),
# 2/z, 5/s, 9/g/q, b/6, u/v/y; 7 and y go as well, ddddocr reads them as ">" and "v".
# About 83% of answers read right by ddddocr 1.6.1, a little under the classic style.
HEALTH_ALPHABET = "acdefhkmnprtwx34568"
HEALTH_SIZE = (100, 32)
HEALTH_FONT_SIZE = 22
HEALTH_TILT = 12.0  # degrees either way: less than the classic style, the noise does the work


def health_captcha(rng: random.Random, length: int = 5) -> Captcha:
    """A captcha in the "health" style, reproducible from ``rng`` like ``new_captcha``."""
    if length < 1:
        raise ValueError(f"captcha length must be at least 1, got {length}")
    answer = "".join(rng.choice(HEALTH_ALPHABET) for _ in range(length))
    image = _gradient(rng)
    _grid(rng, image)
    width, height = HEALTH_SIZE
    cell = (width - 2 * EDGE) / length  # one cell per character, evenly spaced, unlike the classic style
    for i, char in enumerate(answer):
        tile = _glyph(char, _dark(rng), HEALTH_FONT_SIZE).rotate(
            rng.uniform(-HEALTH_TILT, HEALTH_TILT), resample=Image.Resampling.BICUBIC, expand=True
        )
        x = EDGE + i * cell + (cell - tile.width) / 2 + rng.uniform(-1.5, 1.5)
        y = (height - tile.height) / 2 + rng.uniform(-2, 2)
        image.paste(tile, (round(x), round(y)), tile)
    _dots(rng, image, count=rng.randint(300, 400))
    buffer = BytesIO()
    image.save(buffer, format="PNG")
    return Captcha(answer=answer, png=buffer.getvalue())


def _gradient(rng: random.Random) -> Image.Image:
    """A pale left-to-right blend of two colours, so no single background colour can be keyed out."""
    width, height = HEALTH_SIZE
    left = (rng.randint(200, 245), rng.randint(200, 245), rng.randint(200, 245))
    right = _light(rng)
    image = Image.new("RGB", HEALTH_SIZE)
    draw = ImageDraw.Draw(image)
    for x in range(width):
        t = x / (width - 1)
        colour = tuple(round(a + (b - a) * t) for a, b in zip(left, right, strict=True))
        draw.line([(x, 0), (x, height)], fill=colour)
    return image


def _grid(rng: random.Random, image: Image.Image) -> None:
    width, height = HEALTH_SIZE
    step = rng.randint(7, 10)
    grey = rng.randint(170, 210)
    colour = tuple(min(255, grey + rng.randint(-15, 15)) for _ in range(3))
    draw = ImageDraw.Draw(image)
    for x in range(rng.randrange(step), width, step):
        draw.line([(x, 0), (x, height)], fill=colour)
    for y in range(rng.randrange(step), height, step):
        draw.line([(0, y), (width, y)], fill=colour)


def _dots(rng: random.Random, image: Image.Image, count: int) -> None:
    """Dots over everything, text included; a fifth of them 2x2 so a median filter cannot erase them."""
    width, height = HEALTH_SIZE
    draw = ImageDraw.Draw(image)
    for _ in range(count):
        x, y = rng.randrange(width), rng.randrange(height)
        side = 1 if rng.random() < 0.8 else 2
        draw.rectangle(
            (x, y, x + side - 1, y + side - 1), fill=_mid(rng) if rng.random() < 0.6 else _dark(rng)
        )


# Every captcha style a sandbox system draws, by name: the OCR bench measures each one.
STYLES: dict[str, Callable[[random.Random], Captcha]] = {"classic": new_captcha, "health": health_captcha}
