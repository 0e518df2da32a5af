"""The dashboard's building blocks: a ``Tab`` (role, slug, label, handler), one role's
``RoleTabs`` that declares them and renders one, and the ``Card`` of a stat grid."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from aiohttp import web

from control.models import Role, User
from web.pages.render import render

Ctx = dict[str, Any]
TabHandler = Callable[[web.Request, User], Awaitable[Ctx]]


@dataclass(frozen=True)
class Tab:
    """One dashboard view: ``/dashboard/?tab=<slug>`` for a ``role`` account."""

    role: Role
    slug: str
    label: str
    handler: TabHandler

    @property
    def template(self) -> str:
        return f"dashboard/{self.role}_{self.slug}.html"


class RoleTabs:
    """A role's tabs in the order the nav shows them; ``@tabs.tab(slug, label)`` declares one
    on its handler, so the nav and the dispatch read the same list."""

    def __init__(self, role: Role) -> None:
        self.role = role
        self._tabs: dict[str, Tab] = {}

    def tab(self, slug: str, label: str) -> Callable[[TabHandler], TabHandler]:
        def declare(handler: TabHandler) -> TabHandler:
            if slug in self._tabs:
                raise ValueError(f"the {self.role} dashboard already has a {slug!r} tab")
            self._tabs[slug] = Tab(self.role, slug, label, handler)
            return handler

        return declare

    def __contains__(self, slug: object) -> bool:
        return slug in self._tabs

    def __iter__(self) -> Iterator[Tab]:
        return iter(self._tabs.values())

    def __getitem__(self, slug: str) -> Tab:
        return self._tabs[slug]

    async def render(
        self,
        request: web.Request,
        user: User,
        slug: str,
        extra: Ctx | None = None,
        status: int = 200,
    ) -> web.Response:
        """The tab's page: its handler's context, then ``extra`` (a form sent back)."""
        tab = self[slug]
        ctx = await tab.handler(request, user)
        ctx.update(extra or {})
        ctx.update(role=self.role, tab=slug, tabs=list(self), tab_title=tab.label)
        return await render(request, tab.template, ctx, status=status)


@dataclass(frozen=True)
class Card:
    """One figure of a dashboard's stat grid; ``kind`` picks how the template shows it."""

    label: str
    value: Any
    kind: str = "number"  # number | money | rating | hours
    count: int | None = None  # ratings behind an average


def parse_time(value: str | None) -> datetime | None:
    """An ISO instant from the stats (they are JSON-shaped, shared with the API)."""
    return datetime.fromisoformat(value) if value else None


def day_label(iso: str) -> str:
    """A chart's x label for a day: ``06 Apr``."""
    return datetime.fromisoformat(iso).strftime("%d %b")


def filter_query(values: dict[str, str]) -> dict[str, str]:
    """The filters that are set: what a list's page links carry over."""
    return {k: v for k, v in values.items() if v}
