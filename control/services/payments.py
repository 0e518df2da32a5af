"""Payment providers.

A provider turns a pending, seat-holding booking into a paid one.  The booking service never
marks anything paid by itself: it calls ``confirm`` and stores the payment id the provider
returns.  ``docs/payments.md`` explains how to plug in a real gateway.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Protocol, runtime_checkable

from control.errors import Forbidden
from control.models import Booking, User

if TYPE_CHECKING:
    from control.platform import Platform


@dataclass(frozen=True)
class PaymentStart:
    """What the learner needs to pay: a reference, human instructions and the hold deadline."""

    payment_id: str | None
    instructions: str
    expires_at: datetime


@runtime_checkable
class PaymentProvider(Protocol):
    name: str

    async def start(self, booking: Booking) -> PaymentStart:
        """Begin collecting payment for a pending booking (called after it is stored)."""
        ...

    async def confirm(self, actor: User, booking: Booking) -> str:
        """Return the final payment id once the money is in; raise a DomainError otherwise."""
        ...


class ManualPaymentProvider:
    """Payment outside the platform (bank transfer, cash, ...) confirmed by the mentor or an admin.

    The seat is held for ``payments.hold_minutes``; the session's mentor (who received the money)
    or an admin confirms through ``POST /api/bookings/{id}/mark-paid/``.
    """

    name = "manual"

    def __init__(self, platform: Platform) -> None:
        self.platform = platform

    async def start(self, booking: Booking) -> PaymentStart:
        settings = self.platform.settings.payments
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


def create_payment_provider(platform: Platform) -> PaymentProvider:
    """The provider named by ``settings.payments.provider`` (register new gateways here)."""
    providers: dict[str, type] = {"manual": ManualPaymentProvider}
    return providers[platform.settings.payments.provider](platform)  # type: ignore[no-any-return]
