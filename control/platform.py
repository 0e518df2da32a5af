"""The composition root of the domain: settings, database, event bus and services.

``Platform`` is what the web layer (or a CLI command, or a test) holds; services reach each
other through it, so none of them needs a global.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from datetime import timedelta

from config.settings import Settings
from control.db import Database
from control.events import EventBus, create_event_bus
from control.ratelimit import RateLimiter, create_rate_limiter
from control.security import TokenService

log = logging.getLogger(__name__)


class Platform:
    def __init__(self, settings: Settings, *, database: Database | None = None) -> None:
        self.settings = settings
        self.db = database or Database(
            settings.database_url,
            echo=settings.database.echo,
            pool_size=settings.database.pool_size,
        )
        self.bus: EventBus = create_event_bus(settings.redis.url)
        self.limiter: RateLimiter = create_rate_limiter(settings.redis.url)
        self.tokens = TokenService(
            settings.secret_key, timedelta(minutes=settings.auth.token_ttl_minutes)
        )
        self._background: list[asyncio.Task[None]] = []

        # Imported here so that each service module can import Platform for typing only.
        from control.services.accounts import AccountService
        from control.services.bookings import BookingService
        from control.services.chat import ChatService
        from control.services.feedback import FeedbackService
        from control.services.follows import FollowService
        from control.services.interactions import InteractionService
        from control.services.mail import create_mailer
        from control.services.notifications import NotificationService
        from control.services.payments import create_payment_provider
        from control.services.sessions import SessionService
        from control.services.stats import StatsService

        self.mailer = create_mailer(settings)
        self.accounts = AccountService(self)
        self.follows = FollowService(self)
        self.notifications = NotificationService(self)
        self.sessions = SessionService(self)
        self.payments = create_payment_provider(self)
        self.bookings = BookingService(self)
        self.feedback = FeedbackService(self)
        self.chat = ChatService(self)
        self.interactions = InteractionService(self)
        self.stats = StatsService(self)

    async def start(self, *, background: bool = True) -> None:
        await self.bus.start()
        if background:
            self.spawn("session-reminders", self.sessions.run_reminders)
            self.spawn("payment-holds", self.bookings.run_hold_expiry)
            self.spawn("session-auto-end", self.sessions.run_auto_end)

    def spawn(self, name: str, loop: Callable[[], Awaitable[None]]) -> None:
        """Run a long-lived background loop until close()."""
        self._background.append(asyncio.create_task(loop(), name=name))

    @property
    def background_jobs(self) -> list[str]:
        """Names of the background loops running (none when started without them)."""
        return [task.get_name() for task in self._background if not task.done()]

    async def close(self) -> None:
        for task in self._background:
            task.cancel()
        for task in self._background:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        self._background.clear()
        await self.bus.close()
        await self.limiter.close()
        await self.db.dispose()
