"""Payment providers.

A provider turns a pending, seat-holding booking into a paid one.  The booking service never
marks anything paid by itself: only a payment id that a provider produced settles a booking,
either from ``confirm`` (a person confirms, as with the manual provider) or from the provider's
own notification (a gateway's webhook calls ``BookingService.settle_payment``).
``docs/payments.md`` explains how to plug in a real gateway.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Protocol, runtime_checkable

from config.settings import PaymentSettings
from control.errors import Forbidden
from control.models import Booking, User


@dataclass(frozen=True)
class PaymentStart:
    """What the learner needs to pay: a reference, human instructions and the hold deadline."""

    payment_id: str | None
    instructions: str
    expires_at: datetime
    redirect_url: str | None = None  # a gateway's hosted checkout page, if it has one


@runtime_checkable
class PaymentProvider(Protocol):
    name: str

    async def start(self, booking: Booking) -> PaymentStart:
        """Begin collecting payment for a pending booking (called after it is stored; the
        returned ``payment_id``, if any, is saved on the booking)."""
        ...

    async def confirm(self, actor: User, booking: Booking) -> str:
        """A person (mentor/admin) says the money is in: return the final payment id, or raise
        a DomainError (a gateway that confirms through webhooks raises Forbidden here)."""
        ...


class ManualPaymentProvider:
    """Payment outside the platform (bank transfer, cash, ...) confirmed by the mentor or an admin.

    The seat is held for ``payments.hold_minutes``; the session's mentor (who received the money)
    or an admin confirms through ``POST /api/bookings/{id}/mark-paid/``.
    """

    name = "manual"

    def __init__(self, settings: PaymentSettings) -> None:
        self.settings = settings

    async def start(self, booking: Booking) -> PaymentStart:
        settings = self.settings
        expires = booking.payment_expires_at or (
            datetime.now(UTC) + timedelta(minutes=settings.hold_minutes)
        )
        reference = f"manual-{booking.id}"
        return PaymentStart(
            payment_id=None,
            instructions=(
                f"Pay {booking.amount:.2f} {settings.currency} to the mentor quoting reference "
                f"{reference}. Your seat is held until {expires:%Y-%m-%d %H:%M} UTC; the mentor "
                "confirms the payment on PeerLearn."
            ),
            expires_at=expires,
        )

    async def confirm(self, actor: User, booking: Booking) -> str:
        # The person confirming must be the one who can see the money arrive.
        if not (actor.is_admin or actor.id == booking.session.mentor_id):
            raise Forbidden("only the session's mentor or an admin can confirm a payment")
        return f"manual-{booking.id}-{secrets.token_hex(6)}"


# settings.payments.provider names one of these (add a gateway here and to the setting's Literal).
PROVIDERS: dict[str, Callable[[PaymentSettings], PaymentProvider]] = {
    "manual": ManualPaymentProvider
}


def create_payment_provider(settings: PaymentSettings) -> PaymentProvider:
    """The provider named by ``[payments] provider``."""
    return PROVIDERS[settings.provider](settings)
