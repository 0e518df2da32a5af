"""Paid sessions through the manual payment provider: holds, mark-paid, expiry."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from tests.api.sessions_helpers import admin_of, create_session, notifications_of, platform_of


async def test_paid_booking_is_held_until_marked_paid(api: Any) -> None:
    mentor = await api.register("mentor")
    other = await api.register("mentor")
    learner = await api.register("learner")
    s = await create_session(api, mentor, price="19.99", max_participants=1)
    status, b = await api.call("POST", f"/api/sessions/{s['id']}/book/", learner)
    assert status == 201, b
    assert b["status"] == "pending" and b["payment_status"] == "pending"
    assert b["amount"] == 19.99 and b["payment"]["provider"] == "manual"
    assert "19.99" in b["payment"]["instructions"]
    expires = datetime.fromisoformat(b["payment_expires_at"])
    assert timedelta(minutes=29) < expires - datetime.now(UTC) <= timedelta(minutes=30)
    # The seat is held: nobody else gets it.
    late = await api.register("learner")
    status, data = await api.call("POST", f"/api/sessions/{s['id']}/book/", late)
    assert status == 409 and data["error"]["code"] == "session_full"
    _, pending = await api.call("GET", "/api/bookings/pending/", mentor)
    assert [p["id"] for p in pending] == [b["id"]]
    # Neither the learner nor another mentor can mark it paid.
    for who in (learner, other):
        status, _ = await api.call("POST", f"/api/bookings/{b['id']}/mark-paid/", who)
        assert status == 403
    status, paid = await api.call("POST", f"/api/bookings/{b['id']}/mark-paid/", mentor)
    assert status == 200, paid
    assert paid["status"] == "confirmed" and paid["payment_status"] == "paid"
    assert paid["payment_id"].startswith(f"manual-{b['id']}-")
    assert paid["payment_expires_at"] is None
    status, data = await api.call("POST", f"/api/bookings/{b['id']}/mark-paid/", mentor)
    assert status == 409 and data["error"]["code"] == "invalid_state"
    assert "booking_confirmed" in [n.event for n in await notifications_of(api, learner)]


async def test_admin_marks_paid(api: Any) -> None:
    mentor = await api.register("mentor")
    learner = await api.register("learner")
    admin = await admin_of(api)
    s = await create_session(api, mentor, price=5)
    _, b = await api.call("POST", f"/api/sessions/{s['id']}/book/", learner)
    status, paid = await api.call("POST", f"/api/bookings/{b['id']}/mark-paid/", admin)
    assert status == 200 and paid["payment_status"] == "paid"


async def test_free_booking_cannot_be_marked_paid(sqlite_api: Any) -> None:
    api = sqlite_api
    mentor = await api.register("mentor")
    learner = await api.register("learner")
    s = await create_session(api, mentor)
    _, b = await api.call("POST", f"/api/sessions/{s['id']}/book/", learner)
    status, data = await api.call("POST", f"/api/bookings/{b['id']}/mark-paid/", mentor)
    assert status == 409 and data["error"]["code"] == "invalid_state"


async def test_expired_holds_are_released(api: Any) -> None:
    mentor = await api.register("mentor")
    learner = await api.register("learner")
    s = await create_session(api, mentor, price=10, max_participants=1)
    _, b = await api.call("POST", f"/api/sessions/{s['id']}/book/", learner)
    bookings = platform_of(api).bookings
    assert await bookings.release_expired_holds(datetime.now(UTC)) == 0
    later = datetime.now(UTC) + timedelta(minutes=31)
    assert await bookings.release_expired_holds(later) == 1
    assert await bookings.release_expired_holds(later) == 0  # idempotent
    _, detail = await api.call("GET", f"/api/sessions/{s['id']}/", learner)
    assert detail["current_participants"] == 0
    assert detail["my_booking"]["status"] == "cancelled"
    assert detail["my_booking"]["payment_status"] == "failed"
    assert "booking_expired" in [n.event for n in await notifications_of(api, learner)]
    # Too late to pay now; booking again starts a fresh hold.
    status, _ = await api.call("POST", f"/api/bookings/{b['id']}/mark-paid/", mentor)
    assert status == 409
    status, again = await api.call("POST", f"/api/sessions/{s['id']}/book/", learner)
    assert status == 201 and again["status"] == "pending" and again["payment_status"] == "pending"


async def test_cancelling_a_pending_hold_frees_the_seat(api: Any) -> None:
    mentor = await api.register("mentor")
    learner = await api.register("learner")
    s = await create_session(api, mentor, price=10, max_participants=1)
    _, b = await api.call("POST", f"/api/sessions/{s['id']}/book/", learner)
    status, data = await api.call("POST", f"/api/bookings/{b['id']}/cancel/", learner)
    assert status == 200 and data["payment_status"] == "failed"
    _, detail = await api.call("GET", f"/api/sessions/{s['id']}/")
    assert detail["seats_left"] == 1


async def test_nothing_is_paid_unless_the_provider_confirms(sqlite_api: Any) -> None:
    import pytest

    from control.errors import Conflict

    api = sqlite_api
    mentor = await api.register("mentor")
    learner = await api.register("learner")
    s = await create_session(api, mentor, price=10)
    _, b = await api.call("POST", f"/api/sessions/{s['id']}/book/", learner)
    platform = platform_of(api)

    async def refuse(actor: Any, booking: Any) -> str:
        raise Conflict("gateway says: not paid", code="payment_not_received")

    platform.payments.confirm = refuse
    status, data = await api.call("POST", f"/api/bookings/{b['id']}/mark-paid/", mentor)
    assert status == 409 and data["error"]["code"] == "payment_not_received"
    booking = await platform.bookings.get(b["id"])
    assert booking.status == "pending" and booking.payment_status == "pending"
    with pytest.raises(Conflict):
        await platform.bookings.mark_paid(
            await platform.accounts.get_user(mentor["user"]["id"]), b["id"]
        )


class FakeGateway:
    """A card gateway as docs/payments.md describes one: a hosted checkout page, and the
    result arrives by webhook; nobody confirms payments by hand."""

    name = "fakepay"

    def __init__(self) -> None:
        self.started: list[int] = []

    async def start(self, booking: Any) -> Any:
        from control.services.payments import PaymentStart

        self.started.append(booking.id)
        return PaymentStart(
            payment_id=f"cs_{booking.id}",
            instructions="Pay by card on FakePay.",
            expires_at=booking.payment_expires_at,
            redirect_url=f"https://pay.example/checkout/cs_{booking.id}",
        )

    async def confirm(self, actor: Any, booking: Any) -> str:
        from control.errors import Forbidden

        raise Forbidden("FakePay confirms payments itself", code="confirmed_by_gateway")


async def test_a_gateway_plugs_in_through_the_provider_interface(api: Any) -> None:
    from control.services.payments import PaymentProvider

    platform = platform_of(api)
    gateway = FakeGateway()
    assert isinstance(gateway, PaymentProvider)
    platform.payments = gateway
    mentor = await api.register("mentor")
    payer, quitter = await api.register("learner"), await api.register("learner")
    s = await create_session(api, mentor, price=25, max_participants=2)
    status, paying = await api.call("POST", f"/api/sessions/{s['id']}/book/", payer)
    assert status == 201 and paying["payment_status"] == "pending"
    assert paying["payment"] == {
        "provider": "fakepay",
        "payment_id": f"cs_{paying['id']}",
        "instructions": "Pay by card on FakePay.",
        "expires_at": paying["payment_expires_at"],
        "redirect_url": f"https://pay.example/checkout/cs_{paying['id']}",
    }
    assert paying["payment_id"] == f"cs_{paying['id']}"  # stored for the webhook to match
    # The mentor cannot mark it paid: the gateway decides.
    status, data = await api.call("POST", f"/api/bookings/{paying['id']}/mark-paid/", mentor)
    assert status == 403 and data["error"]["code"] == "confirmed_by_gateway"
    # The gateway's (verified) webhook says "paid" for one booking and "failed" for the other.
    _, failing = await api.call("POST", f"/api/sessions/{s['id']}/book/", quitter)
    paid = await platform.bookings.settle_payment(paying["id"], "ch_123")
    assert (paid.status, paid.payment_status, paid.payment_id) == ("confirmed", "paid", "ch_123")
    assert await platform.bookings.payment_failed(failing["id"]) is True
    assert await platform.bookings.payment_failed(failing["id"]) is False  # already released
    _, detail = await api.call("GET", f"/api/sessions/{s['id']}/")
    assert detail["current_participants"] == 1
    assert "payment_failed" in [n.event for n in await notifications_of(api, quitter)]
    assert gateway.started == [paying["id"], failing["id"]]
