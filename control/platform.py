"""The composition root of the domain: settings, database, event bus and services.

``Platform`` is what the web layer (or a CLI command, or a test) holds. It builds each
service once and hands it the collaborators it needs, in dependency order (the services
form a DAG; none of them knows ``Platform``), and runs the background jobs.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import timedelta

from config.settings import Settings
from control.db import Database
from control.events import create_event_bus
from control.jobs import Jobs, create_job_lock
from control.notices import NoticeSender
from control.ratelimit import create_rate_limiter
from control.security import TokenService
from control.services.accounts import AccountService
from control.services.bookings import BookingService
from control.services.chat import ChatService
from control.services.details import SessionDetails
from control.services.feedback import FeedbackService
from control.services.follows import FollowService
from control.services.interactions import InteractionService
from control.services.logins import LoginService
from control.services.mail import Mailer, create_mailer
from control.services.notifications import NotificationService
from control.services.payments import PaymentProvider, create_payment_provider
from control.services.sessions import SessionService
from control.services.stats import StatsService


class Platform:
    def __init__(self, settings: Settings, *, database: Database | None = None) -> None:
        self.settings = settings
        db = self.db = database or Database(
            settings.database_url,
            echo=settings.database.echo,
            pool_size=settings.database.pool_size,
        )
        bus = self.bus = create_event_bus(settings.redis.url)
        limiter = self.limiter = create_rate_limiter(settings.redis.url)
        self.tokens = TokenService(
            settings.secret_key, timedelta(minutes=settings.auth.token_ttl_minutes)
        )
        self.mailer: Mailer = create_mailer(settings)
        self._jobs = Jobs(
            create_job_lock(
                settings.jobs.lock,
                redis_url=settings.redis.url,
                engine=db.engine,
                is_postgres=not db.is_sqlite,
                ttl_s=settings.jobs.lock_ttl_s,
            )
        )

        self.notifications = NotificationService(db, bus)
        notices = NoticeSender(db, self.notifications)
        logins = LoginService(db, bus, limiter, self.tokens, settings.auth)
        self.accounts = AccountService(db, limiter, self.mailer, settings, logins=logins)
        self.follows = FollowService(db, accounts=self.accounts, notices=notices)
        self.interactions = InteractionService(db, bus)
        self.sessions = SessionService(
            db,
            bus,
            settings.sessions,
            follows=self.follows,
            interactions=self.interactions,
            notices=notices,
        )
        self.bookings = BookingService(
            db,
            bus,
            settings.payments,
            sessions=self.sessions,
            payments=create_payment_provider(settings.payments),
            notices=notices,
            interactions=self.interactions,
            accounts=self.accounts,
        )
        self.feedback = FeedbackService(
            db,
            accounts=self.accounts,
            sessions=self.sessions,
            bookings=self.bookings,
            interactions=self.interactions,
            notices=notices,
        )
        self.chat = ChatService(db)
        self.stats = StatsService(
            db,
            currency=settings.payments.currency,
            bookings=self.bookings,
            feedback=self.feedback,
            sessions=self.sessions,
        )
        self.details = SessionDetails(
            sessions=self.sessions,
            bookings=self.bookings,
            feedback=self.feedback,
            interactions=self.interactions,
        )

    @property
    def payments(self) -> PaymentProvider:
        """The payment provider, which only bookings use."""
        return self.bookings.payments

    @payments.setter
    def payments(self, provider: PaymentProvider) -> None:
        # Plugging in another provider (a gateway, a test's fake) after wiring.
        self.bookings.payments = provider

    async def start(self, *, background: bool = True) -> None:
        await self.bus.start()
        if background:
            self.spawn("session-reminders", self.sessions.run_reminders)
            self.spawn("payment-holds", self.bookings.run_hold_expiry)
            self.spawn("session-auto-end", self.sessions.run_auto_end)

    def spawn(self, name: str, loop: Callable[[], Awaitable[None]]) -> None:
        """Run a long-lived background loop until close()."""
        self._jobs.spawn(name, loop)

    @property
    def background_jobs(self) -> list[str]:
        """Names of the background loops running (none when started without them)."""
        return self._jobs.running

    async def close(self) -> None:
        await self._jobs.stop()
        await self.bus.close()
        await self.limiter.close()
        await self.db.dispose()
