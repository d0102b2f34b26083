"""Numbered pagination as the real systems draw it: 1 … 4 5 [6] 7 8 … 250."""

from __future__ import annotations

import math
from dataclasses import dataclass

PAGE_SIZES = (10, 20, 50, 100)


@dataclass(frozen=True)
class Paging:
    page: int
    size: int
    total: int

    @property
    def pages(self) -> int:
        return max(1, math.ceil(self.total / self.size))

    @property
    def start(self) -> int:
        return (self.page - 1) * self.size

    @property
    def stop(self) -> int:
        return self.start + self.size

    def links(self, around: int = 2) -> list[int | None]:
        """Page numbers to draw; ``None`` is an ellipsis."""
        shown = {1, self.pages, *range(self.page - around, self.page + around + 1)}
        numbers = sorted(n for n in shown if 1 <= n <= self.pages)
        links: list[int | None] = []
        for n in numbers:
            if links and links[-1] is not None and n - links[-1] > 1:
                links.append(None)
            links.append(n)
        return links


def paging(total: int, page: int, size: int) -> Paging:
    """Clamp the request to sane values; a page past the end stays past it (and shows no rows)."""
    return Paging(page=max(1, page), size=size if size in PAGE_SIZES else 20, total=total)
