"""The session detail as one viewer sees it: the read model the API and the page render.

``SessionDetails.for_viewer`` is the read of a session's detail (the API's
``GET /api/sessions/{id}/`` and the page ``/sessions/{id}/``); ``SessionDetails.of``
assembles the same view for a session already in hand (the answers of create, start, end and
cancel), without counting a view.
"""

from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass
from typing import Any, Protocol

from control.models import Booking, Role, Session, User

log = logging.getLogger(__name__)


class _Sessions(Protocol):
    async def get(self, session_id: uuid.UUID | str) -> Session: ...

    def can_start(self, session: Session) -> bool: ...


class _Bookings(Protocol):
    async def booking_of(self, user_id: int, session_id: uuid.UUID | str) -> Booking | None: ...


class _Feedback(Protocol):
    async def mentor_rating(self, mentor_id: int) -> tuple[float | None, int]: ...

    async def has_rated(self, user_id: int, session_id: uuid.UUID) -> bool: ...


class _Interactions(Protocol):
    async def record(
        self, user_id: int, session_id: uuid.UUID | str, kind: str, value: float | None = None
    ) -> dict[str, Any] | None: ...


@dataclass(frozen=True, slots=True)
class SessionDetail:
    """A session with what its viewer (None: signed out) may see and do about it."""

    session: Session
    rating_average: float | None  # the mentor's, over ratings by learners who joined
    rating_count: int
    booking: Booking | None  # the viewer's booking of this session, any status
    is_mentor: bool  # the viewer is the session's mentor
    can_manage: bool  # the session's mentor or an admin (attendee list, cancel)
    can_start: bool  # the mentor, and the session is inside its start window
    feedback_given: bool  # the viewer has rated this session
    shows_room: bool  # the mentor or an attendee: may see the room id

    @property
    def room_id(self) -> str | None:
        """The meeting room id, only for those who may enter."""
        return self.session.meeting_room_id if self.shows_room else None

    @property
    def can_rate(self) -> bool:
        """What the pages offer a "Rate" for: ``FeedbackService.submit``'s rule, bar "once"."""
        return self.booking is not None and self.booking.may_rate


class SessionDetails:
    """Builds ``SessionDetail`` from the services that own each part."""

    def __init__(
        self,
        *,
        sessions: _Sessions,
        bookings: _Bookings,
        feedback: _Feedback,
        interactions: _Interactions,
    ) -> None:
        self.sessions = sessions
        self.bookings = bookings
        self.feedback = feedback
        self.interactions = interactions

    async def for_viewer(self, session_id: uuid.UUID | str, viewer: User | None) -> SessionDetail:
        """Read a session's detail (NotFound if there is none), counting a view.

        The one rule for a "view": a signed-in **learner** reading the detail records one
        (recommendations are for learners; a mentor's or an admin's reads say nothing about
        what they want to learn, and a session's mentor is never a learner of it). A view
        that cannot be stored is logged and the read still answers: it is a signal, not part
        of the answer.
        """
        session = await self.sessions.get(session_id)
        if viewer is not None and viewer.role == Role.LEARNER:
            try:
                await self.interactions.record(viewer.id, session.id, "view")
            except Exception:
                log.exception("could not record a view")
        return await self.of(session, viewer)

    async def of(self, session: Session, viewer: User | None) -> SessionDetail:
        """The detail of ``session`` for ``viewer``, without counting a view."""
        average, count = await self.feedback.mentor_rating(session.mentor_id)
        booking = await self.bookings.booking_of(viewer.id, session.id) if viewer else None
        is_mentor = viewer is not None and viewer.id == session.mentor_id
        rated = (
            viewer is not None
            and booking is not None
            and await self.feedback.has_rated(viewer.id, session.id)
        )
        return SessionDetail(
            session=session,
            rating_average=average,
            rating_count=count,
            booking=booking,
            is_mentor=is_mentor,
            can_manage=is_mentor or (viewer is not None and viewer.is_admin),
            can_start=is_mentor and self.sessions.can_start(session),
            feedback_given=rated,
            shows_room=is_mentor or (booking is not None and booking.is_attendee),
        )
