"""The sandbox's image captcha: a real, reproducible image that offline OCR can mostly read."""

from __future__ import annotations

import io
import random
import string

import pytest
from PIL import Image

from sandbox._captcha import CAPTCHA_ALPHABET, Captcha, new_captcha


def test_alphabet_leaves_out_characters_people_confuse() -> None:
    assert not set("0O1IL") & set(CAPTCHA_ALPHABET)
    assert set(CAPTCHA_ALPHABET) <= set(string.digits + string.ascii_uppercase)
    assert len(set(CAPTCHA_ALPHABET)) == len(CAPTCHA_ALPHABET)


def test_png_is_a_real_captcha_sized_image() -> None:
    captcha = new_captcha(random.Random(1))
    assert captcha.png.startswith(b"\x89PNG\r\n\x1a\n")
    with Image.open(io.BytesIO(captcha.png)) as image:
        image.verify()
    with Image.open(io.BytesIO(captcha.png)) as image:
        assert image.format == "PNG"
        assert image.size == (120, 40)
        # Distorted and multicoloured, not plain black text on white.
        assert len(image.convert("RGB").getcolors(maxcolors=120 * 40) or []) > 100


@pytest.mark.parametrize("length", [1, 4, 5, 6])
def test_answer_has_requested_length_and_only_alphabet_characters(length: int) -> None:
    rng = random.Random(length)
    for _ in range(20):
        captcha = new_captcha(rng, length=length)
        assert len(captcha.answer) == length
        assert set(captcha.answer) <= set(CAPTCHA_ALPHABET)


def test_length_must_be_positive() -> None:
    with pytest.raises(ValueError):
        new_captcha(random.Random(0), length=0)


def test_same_seed_gives_same_answer_and_bytes() -> None:
    first = new_captcha(random.Random(42))
    second = new_captcha(random.Random(42))
    assert first == second
    assert first.png == second.png


def test_different_seeds_give_different_answers() -> None:
    captchas = [new_captcha(random.Random(seed)) for seed in range(30)]
    assert len({c.answer for c in captchas}) >= 25
    assert len({c.png for c in captchas}) == 30


def test_one_rng_keeps_producing_fresh_captchas() -> None:
    # The gate draws every captcha from one long-lived rng: consecutive ones must differ.
    rng = random.Random(7)
    assert len({new_captcha(rng).answer for _ in range(20)}) >= 15


def test_matches_forgives_case_and_whitespace_but_not_a_wrong_answer() -> None:
    captcha = Captcha(answer="7K4P", png=b"")
    assert captcha.matches("7K4P")
    assert captcha.matches("7k4p")
    assert captcha.matches("  7k4P\n")
    assert not captcha.matches("7K4R")
    assert not captcha.matches("7K4")
    assert not captcha.matches("7K4PP")
    assert not captcha.matches("")
    assert not captcha.matches("7 K4P")


def test_ddddocr_reads_most_captchas() -> None:
    ddddocr = pytest.importorskip("ddddocr")
    ocr = ddddocr.DdddOcr(show_ad=False)
    captchas = [new_captcha(random.Random(1000 + seed)) for seed in range(40)]
    read = sum(c.matches(ocr.classification(c.png)) for c in captchas)
    assert read >= 20, f"ddddocr read only {read} of {len(captchas)} captchas"
