"""Reading an ASP.NET WebForms pager without a browser: ``javascript:__doPostBack(target, argument)``.

A postback link only sets two hidden fields of the page's form and submits it; posting that
form (its hidden view state included, exactly as the server sent it) is the same request a
browser would make, so the list is read at the fast path's speed.
"""

from __future__ import annotations

import re
from urllib.parse import urljoin

from selectolax.lexbor import LexborNode

from robots._page import Page

_POSTBACK = re.compile(
    r"""^\s*javascript\s*:\s*__doPostBack\(\s*['"]([^'"]*)['"]\s*,\s*['"]([^'"]*)['"]\s*\)\s*;?\s*$""",
    re.IGNORECASE,
)
_SENT_TYPES = frozenset({"hidden", "text", "search", "number", "password", "email", "tel", ""})


def postback(href: str) -> tuple[str, str] | None:
    """The event target and argument of a ``javascript:__doPostBack('gvList','Page$Next')`` link."""
    found = _POSTBACK.match(href)
    return (found.group(1), found.group(2)) if found else None


def postback_request(page: Page, link: LexborNode, target: str, argument: str) -> tuple[str, dict[str, str]]:
    """Where the form around ``link`` posts to, and what it posts when the link is clicked."""
    form = link.parent
    while form is not None and form.tag != "form":
        form = form.parent
    if form is None:
        form = page.tree.css_first("form")
    fields: dict[str, str] = {}
    if form is not None:
        for field in form.css("input, select, textarea"):
            name = field.attributes.get("name")
            if not name or (field.tag == "input" and not _sent(field)):
                continue
            fields[name] = _value(field)
    fields["__EVENTTARGET"], fields["__EVENTARGUMENT"] = target, argument
    action = (form.attributes.get("action") or "") if form is not None else ""
    return urljoin(page.url, action or page.url), fields


def _sent(field: LexborNode) -> bool:
    """Is this input in what the form posts? Buttons are not (only the one clicked), boxes when ticked."""
    kind = (field.attributes.get("type") or "").lower()
    if kind in ("checkbox", "radio"):
        return "checked" in field.attributes
    return kind in _SENT_TYPES


def _value(field: LexborNode) -> str:
    if field.tag == "select":
        chosen = field.css_first("option[selected]") or field.css_first("option")
        return (chosen.attributes.get("value") or chosen.text(strip=True)) if chosen is not None else ""
    if field.tag == "textarea":
        return field.text()
    kind = (field.attributes.get("type") or "").lower()
    return field.attributes.get("value") or ("on" if kind in ("checkbox", "radio") else "")
