"""Small shared types for services."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Generic, TypeVar

from control.limits import MAX_PER_PAGE

T = TypeVar("T")


@dataclass(frozen=True)
class Page(Generic[T]):
    items: list[T]
    total: int
    page: int
    per_page: int

    @property
    def pages(self) -> int:
        return max(1, -(-self.total // self.per_page))


def page_bounds(page: int, per_page: int) -> tuple[int, int]:
    """Clamp paging input and return (offset, limit)."""
    page = max(1, page)
    per_page = min(MAX_PER_PAGE, max(1, per_page))
    return (page - 1) * per_page, per_page
