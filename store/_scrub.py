"""Masking of the personal numbers inside free text: evidence pages, URLs, tracebacks.

Records leave the store masked field by field; a page kept as evidence of a failed run is text
with no fields, so what can be found by its shape is masked where it stands: resident ID numbers
(18 characters, or the old 15 digits, with or without spaces between region, birth date and the
rest, full-width too), the birth dates those ID numbers hide wherever else the text shows them (a
出生日期 column beside a masked ID would give it back), and phone numbers (mobiles with or without
+86, landlines written with their area code and a dash). Names and addresses have no such shape;
the evidence folder is private.
"""

from __future__ import annotations

import re

from store._masking import mask_id_number, mask_phone, scrub_value

__all__ = ["scrub_text"]

_D = "[0-9\uff10-\uff19]"  # a digit, ASCII or full-width
_SEP = "[ \u3000-]?"
# Neither may start or end inside a longer number (a timestamp, an order number); a letter beside one
# is no such guard (an element id "p33010219380522457X" is still an ID number), and a token masked by
# mistake costs the evidence nothing.
_ALONE_BEFORE = f"(?<!{_D})"
_ALONE_AFTER = f"(?!{_D})"
_ID = f"{_D}{{6}}{_SEP}{_D}{{8}}{_SEP}{_D}{{3}}[0-9Xx\uff10-\uff19\uff38\uff58]|{_D}{{15}}"
_MOBILE = f"(?:(?:\\+|00)?86{_SEP})?1[3-9\uff13-\uff19]{_D}{_SEP}{_D}{{4}}{_SEP}{_D}{{4}}"
_LANDLINE = f"\\(?0{_D}{{2,3}}\\)?-{_D}{{7,8}}"
_NUMBERS = re.compile(
    f"{_ALONE_BEFORE}(?:(?P<id>{_ID})|(?P<phone>{_MOBILE}|{_LANDLINE})){_ALONE_AFTER}"
)


def scrub_text(text: str) -> str:
    """``text`` with every ID-number-like and phone-like run masked as the store masks those fields,
    and the birth dates of the ID numbers found kept to their year."""
    found: list[str] = []

    def masked(match: re.Match[str]) -> str:
        if match["id"] is None:
            return mask_phone(match["phone"])
        found.append(match["id"])
        return mask_id_number(match["id"])

    scrubbed = _NUMBERS.sub(masked, text)
    return str(scrub_value(scrubbed, found)) if found else scrubbed
