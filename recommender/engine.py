"""The asyncio-facing engine: live updates on the loop, refits in a worker thread.

* ``record()`` applies an interaction to the current model's live overlay at once (O(1)-ish:
  decayed popularity, seats taken, the user's bookings and collaborative row).
* Refits run in the background every ``refit_interval_s`` and after
  ``refit_after_interactions`` new interactions: the snapshot is loaded (async loaders on the
  loop, sync ones in the worker thread), the model is fitted in the worker thread, then the new
  ``Recommender`` replaces the old one with one reference assignment. Requests read that
  reference once, so they never wait for a refit and never see a half-built model.
* ``add_session()``, ``close_session()`` and ``unbook()`` apply catalogue changes (a session
  published, cancelled, started or ended; a booking cancelled) to the current model at once,
  so requests see them before any refit; a new session also asks for a refit, which learns
  its words and skills properly.
* Interactions and catalogue changes recorded from the moment a snapshot starts loading are
  replayed onto the new model before the swap (minus interactions the snapshot already
  holds), so nothing recorded during a slow load or fit is lost or counted twice.

All public methods are meant to be called from the event loop thread.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import logging
import time
from collections.abc import Awaitable, Callable, Iterable
from concurrent.futures import Executor, ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime

from .data import (
    Interaction,
    MentorItem,
    Recommendation,
    RecommenderWeights,
    SessionItem,
    Snapshot,
    UserProfile,
)
from .hybrid import FittedModel, Recommender, fit_model

log = logging.getLogger(__name__)

Loader = Callable[[], Awaitable[Snapshot]] | Callable[[], Snapshot]
Fitter = Callable[[Snapshot, RecommenderWeights], FittedModel]
#: bound on interactions kept for replay if refits keep failing
MAX_PENDING = 200_000


@dataclass(frozen=True)
class SessionAdded:
    item: SessionItem
    mentor: MentorItem | None


@dataclass(frozen=True)
class SessionClosed:
    session_id: str


@dataclass(frozen=True)
class Unbooked:
    user_id: int
    session_id: str


#: what the engine replays onto a model fitted from a snapshot that may predate it
Change = Interaction | SessionAdded | SessionClosed | Unbooked


def _apply(recommender: Recommender, change: Change) -> None:
    if isinstance(change, Interaction):
        recommender.record(change)
    elif isinstance(change, SessionAdded):
        recommender.add_session(change.item, change.mentor)
    elif isinstance(change, SessionClosed):
        recommender.close_session(change.session_id)
    else:
        recommender.unbook(change.user_id, change.session_id)


class Engine:
    """Recommendations for the web layer, kept fresh without blocking the event loop."""

    def __init__(
        self,
        loader: Loader,
        weights: RecommenderWeights | None = None,
        *,
        executor: Executor | None = None,
        fitter: Fitter = fit_model,
        min_refit_gap_s: float = 5.0,
    ) -> None:
        self.weights = weights or RecommenderWeights()
        self._loader = loader
        self._fitter = fitter
        self._executor = executor
        self._own_executor = executor is None
        self._min_gap = min_refit_gap_s
        self._current: Recommender | None = None
        self._pending: list[Change] = []  # recorded since the last snapshot was read
        self._since_fit = 0
        self._lock = asyncio.Lock()
        self._wake = asyncio.Event()
        self._attempted = asyncio.Event()  # set once the first refit succeeded or failed
        self._swapped = asyncio.Event()  # set (and replaced) at every model swap
        self._task: asyncio.Task[None] | None = None
        self._last_refit = 0.0
        self.version = 0  #: incremented on every model swap
        self.last_fit_seconds: float | None = None
        self.last_error: BaseException | None = None

    # -- lifecycle ------------------------------------------------------------------------
    @property
    def ready(self) -> bool:
        """True once a model has been fitted."""
        return self._current is not None

    @property
    def refitting_in_background(self) -> bool:
        """True while the refit loop started by ``start()`` runs."""
        return self._task is not None

    @property
    def model(self) -> FittedModel | None:
        cur = self._current
        return cur.model if cur else None

    async def start(self, wait: bool = False) -> None:
        """Start the background refit loop; the first fit begins at once.

        With ``wait=True`` the first fit is awaited (CLI, tests); the app should not wait.
        """
        if self._executor is None:
            self._executor = ThreadPoolExecutor(1, thread_name_prefix="recommender-fit")
        if self._task is None:
            self._wake.set()  # fit immediately
            self._task = asyncio.create_task(self._run(), name="recommender-refit")
        if wait:
            await self._attempted.wait()

    async def stop(self) -> None:
        """Stop the refit loop and release the worker thread (an in-flight fit is dropped)."""
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        if self._own_executor and self._executor is not None:
            self._executor.shutdown(wait=False, cancel_futures=True)
            self._executor = None

    async def refresh_now(self) -> None:
        """Load a snapshot and refit now; returns when the new model is live."""
        async with self._lock:
            loop = asyncio.get_running_loop()
            if self._executor is None:
                self._executor = ThreadPoolExecutor(1, thread_name_prefix="recommender-fit")
            # Anything recorded from here on may or may not make it into the snapshot.
            self._pending = []
            self._since_fit = 0
            started = time.perf_counter()
            try:
                snapshot = await self._load(loop)
                # Recorded while loading: perhaps in the snapshot. Recorded later: surely not.
                during_load = [c for c in self._pending if isinstance(c, Interaction)]
                model, duplicates = await loop.run_in_executor(
                    self._executor, self._fit, snapshot, during_load
                )
            finally:
                self._attempted.set()
            fresh = Recommender(model, self.weights)
            # Catalogue changes replay safely either way: each is a no-op when the snapshot
            # already shows it (session known, closed, or the booking already gone).
            for change in self._pending:
                if not isinstance(change, Interaction) or _key(change) not in duplicates:
                    _apply(fresh, change)
            self._current = fresh  # the swap: one reference assignment
            self.version += 1
            self._swapped.set()
            self._swapped = asyncio.Event()
            self.last_fit_seconds = time.perf_counter() - started
            self._last_refit = time.monotonic()
            self.last_error = None
            log.info("recommender refit %d in %.2fs", self.version, self.last_fit_seconds)

    async def wait_for_version(self, version: int) -> None:
        """Return once model ``version`` (or a later one) serves requests."""
        while self.version < version:
            await self._swapped.wait()

    def request_refit(self) -> None:
        """Ask for a refit soon (e.g. after sessions were published or edited)."""
        self._wake.set()

    # -- real-time updates ----------------------------------------------------------------
    def record(self, interaction: Interaction) -> None:
        """Apply an interaction now; schedules a refit after enough of them, or at once when
        it names a session the model has not seen yet."""
        if len(self._pending) < MAX_PENDING:
            self._pending.append(interaction)
        cur = self._current
        if cur is not None:
            cur.record(interaction)
        self._since_fit += 1
        unknown = cur is not None and interaction.session_id not in cur.model.catalog.session_index
        if unknown or self._since_fit >= self.weights.refit_after_interactions:
            self._wake.set()  # a session published since the fit: the model must learn it

    def add_session(self, item: SessionItem, mentor: MentorItem | None = None) -> None:
        """A session published since the fit: served at once, learnt by a refit soon."""
        self._change(SessionAdded(item, mentor))
        self._wake.set()

    def close_session(self, session_id: str) -> None:
        """A session cancelled, started or ended: never suggested again."""
        self._change(SessionClosed(session_id))

    def unbook(self, user_id: int, session_id: str) -> None:
        """A booking cancelled (or a payment hold lapsed): the seat is free, and the session
        may be suggested to that learner again."""
        self._change(Unbooked(user_id, session_id))

    def _change(self, change: SessionAdded | SessionClosed | Unbooked) -> None:
        if len(self._pending) < MAX_PENDING:
            self._pending.append(change)
        if self._current is not None:
            _apply(self._current, change)

    # -- requests (synchronous, fast) -----------------------------------------------------
    def recommend_sessions(
        self,
        user_id: int | None,
        k: int = 10,
        booked_ids: Iterable[str] = (),
        now: datetime | None = None,
        profile: UserProfile | None = None,
    ) -> list[Recommendation]:
        """Top-``k`` sessions for a user (``[]`` until the first fit)."""
        cur = self._current
        return cur.recommend_sessions(user_id, k, booked_ids, now, profile) if cur else []

    def recommend_mentors(
        self,
        user_id: int | None,
        k: int = 10,
        followed_ids: Iterable[int] = (),
        now: datetime | None = None,
        profile: UserProfile | None = None,
    ) -> list[Recommendation]:
        """Top-``k`` mentors to follow (``[]`` until the first fit)."""
        cur = self._current
        return cur.recommend_mentors(user_id, k, followed_ids, now, profile) if cur else []

    def trending(
        self, k: int = 10, now: datetime | None = None, user_id: int | None = None
    ) -> list[Recommendation]:
        """Trending upcoming sessions (``[]`` until the first fit)."""
        cur = self._current
        return cur.trending(k, now, user_id) if cur else []

    # -- internals ------------------------------------------------------------------------
    def _fit(
        self, snapshot: Snapshot, during_load: list[Interaction]
    ) -> tuple[FittedModel, set[tuple[int, str, str, datetime]]]:
        """Worker thread: fit, and find which events recorded during the load it already has."""
        return self._fitter(snapshot, self.weights), _recent_keys(snapshot, during_load)

    async def _load(self, loop: asyncio.AbstractEventLoop) -> Snapshot:
        loaded: Awaitable[Snapshot] | Snapshot
        if inspect.iscoroutinefunction(self._loader):
            loaded = self._loader()
        else:
            # A sync loader may block (database, file): run it in the worker thread.
            loaded = await loop.run_in_executor(self._executor, self._loader)
        return loaded if isinstance(loaded, Snapshot) else await loaded

    async def _run(self) -> None:
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout=self.weights.refit_interval_s)
            self._wake.clear()
            gap = self._min_gap - (time.monotonic() - self._last_refit)
            if self.version and gap > 0:
                await asyncio.sleep(gap)  # bound the refit rate under heavy traffic
            try:
                await self.refresh_now()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # keep serving the old model; retry on the next tick
                self.last_error = exc
                log.exception("recommender refit failed")


def _key(it: Interaction) -> tuple[int, str, str, datetime]:
    return (it.user_id, it.session_id, it.kind, it.at)


def _recent_keys(
    snapshot: Snapshot, pending: list[Interaction]
) -> set[tuple[int, str, str, datetime]]:
    """Keys of snapshot interactions as recent as the oldest pending one (cheap dedupe)."""
    if not pending:
        return set()
    oldest = min(it.at for it in pending)
    return {_key(it) for it in snapshot.interactions if it.at >= oldest}
