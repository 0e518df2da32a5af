"""Every page route through the aiohttp test client: what each page shows (its heading and
a piece of content) to the right role, a redirect to the login page for anonymous visitors,
403 for the wrong role; plus forms and escaping."""

from __future__ import annotations

import re
import uuid
from datetime import UTC, datetime, timedelta
from html import unescape
from typing import Any

import aiohttp
import pytest
import time_machine

from tests.samples import image_bytes
from web.keys import PLATFORM
from web.security import CSRF_COOKIE, SESSION_COOKIE

CSRF = "t" * 43


class Site:
    """A test client plus seeded users, a session and a booking."""

    def __init__(self, client: Any) -> None:
        self.client = client
        self.platform = client.app[PLATFORM]
        self.tokens: dict[str, str] = {}

    async def seed(self) -> None:
        acc = self.platform.accounts
        self.mentor = await acc.register(
            username="ada",
            email="ada@example.org",
            password="s3cret-pass!",
            role="mentor",
            first_name="Ada",
            last_name="Lovelace",
        )
        self.mentor = await acc.update_profile(self.mentor, skills=["Python"], bio="Hi <b>x</b>")
        self.learner = await acc.register(
            username="lin", email="lin@example.org", password="s3cret-pass!", role="learner"
        )
        self.admin = await acc.create_admin("root", "root@example.org", "s3cret-pass!")
        self.session = await self.platform.sessions.create(
            self.mentor,
            title="Intro to <script>alert(1)</script> Python",
            description="Basics",
            schedule=datetime.now(UTC) + timedelta(minutes=10),
            duration=60,
            max_participants=5,
            skills_required=["Python"],
            price=0,
        )
        self.booking = await self.platform.bookings.book(self.learner, self.session.id)
        for who in ("mentor", "learner", "admin"):
            user = getattr(self, who)
            _, self.tokens[who] = await self.platform.accounts.logins.start(user)

    def headers(self, who: str | None) -> dict[str, str]:
        cookies = [f"{CSRF_COOKIE}={CSRF}"]
        if who:
            cookies.append(f"{SESSION_COOKIE}={self.tokens[who]}")
        return {"Cookie": "; ".join(cookies), "Accept": "text/html"}

    async def get(self, path: str, who: str | None = None) -> tuple[int, str, Any]:
        resp = await self.client.get(path, headers=self.headers(who), allow_redirects=False)
        return resp.status, await resp.text(), resp

    async def post(
        self,
        path: str,
        who: str | None,
        data: dict[str, str] | None = None,
    ) -> tuple[int, str, Any]:
        body = {"csrf_token": CSRF, **(data or {})}
        resp = await self.client.post(
            path, data=body, headers=self.headers(who), allow_redirects=False
        )
        return resp.status, await resp.text(), resp


@pytest.fixture
async def site(sqlite_client: Any) -> Site:
    s = Site(sqlite_client)
    await s.seed()
    return s


TITLE = "Intro to <script>alert(1)</script> Python"  # the seeded session, as a reader sees it
VIEWERS = [None, "learner", "mentor", "admin"]
NAMES = {"learner": "lin", "mentor": "Ada Lovelace", "admin": "root"}


def heading(html: str) -> str:
    """The text of the page's <h1>."""
    found = re.search(r"<h1[^>]*>(.*?)</h1>", html, re.S)
    assert found is not None, html[:300]
    return text_of(found.group(1))


def text_of(html: str) -> str:
    """What a reader sees of ``html``: tags dropped, entities decoded, spaces collapsed."""
    return " ".join(unescape(re.sub(r"<[^>]+>", " ", html)).split())


def tab_panel(html: str) -> str:
    """A dashboard page from its tab's panel on (past the header's notifications)."""
    return html[html.index('<section class="tab-panel"') :]


async def shows(site: Site, path: str, who: str | None, h1: str, *content: str) -> str:
    """GET ``path`` as ``who``: a 200 page headed ``h1`` that shows each of ``content``."""
    status, html, _ = await site.get(path, who)
    assert status == 200, (path, who, html[:300])
    assert "<!doctype html>" in html
    assert heading(html) == h1, (path, who)
    text = text_of(html)
    for piece in content:
        assert piece in text, (path, who, piece)
    return html


#: Pages anyone may open (``{sid}``: the seeded session), their heading and what they show.
PUBLIC_PAGES = [
    ("/", "Learn from mentors, live, in small groups.", TITLE),
    ("/auth/register/", "Create your account", "Learn Book live sessions with mentors"),
    ("/auth/register/?role=mentor", "Create your account", "Teach Publish sessions as a mentor"),
    ("/auth/password-reset/", "Reset your password", "E-mail"),
    ("/auth/password-reset/confirm/?token=abc", "Choose a new password", "New password"),
    ("/sessions/", "Browse sessions", TITLE),
    ("/sessions/{sid}/", TITLE, "Basics"),
    ("/sessions/?status=any&q=Python&page=2", "Browse sessions", "No sessions match"),
    ("/profile/ada/", "Ada Lovelace", "Upcoming sessions", TITLE),
    ("/profile/ada/followers/", "Followers", "Ada Lovelace"),
    ("/profile/ada/following/", "Following", "Ada Lovelace"),
    ("/profile/lin/", "lin", "Learner"),
]


@pytest.mark.parametrize("who", VIEWERS)
@pytest.mark.parametrize(
    ("path", "h1", "content"),
    [(p, h, c) for p, h, *c in PUBLIC_PAGES],
    ids=[p[0] for p in PUBLIC_PAGES],
)
async def test_public_page_shows_its_content(
    site: Site, path: str, h1: str, content: list[str], who: str | None
) -> None:
    await shows(site, path.format(sid=site.session.id), who, h1, *content)


async def test_login_page_shows_its_form(site: Site) -> None:
    html = await shows(site, "/auth/login/", None, "Welcome back")
    assert 'name="login"' in html and 'name="password"' in html


@pytest.mark.parametrize("who", ["learner", "mentor", "admin"])
async def test_login_page_sends_signed_in_users_to_the_dashboard(site: Site, who: str) -> None:
    status, _, resp = await site.get("/auth/login/", who)
    assert status == 302 and resp.headers["Location"] == "/dashboard/"


#: Every dashboard tab: (role, slug, label, something only that tab shows).
DASHBOARD_TABS = [
    ("learner", "overview", "Overview", f"Your next sessions {TITLE}"),
    ("learner", "browse", "Browse Sessions", "Apply filters"),
    ("learner", "bookings", "My Bookings", "Past and cancelled"),
    ("learner", "recommendations", "Recommendations", "Picked for you"),
    ("learner", "following", "Following", "You don't follow any mentors yet."),
    ("mentor", "overview", "Overview", "Payments to confirm"),
    ("mentor", "sessions", "My Sessions", f"{TITLE} Free · 60 min"),
    ("mentor", "create", "Create Session", "Date and time"),
    ("mentor", "requests", "Requests", "No pending requests."),
    ("mentor", "analytics", "Analytics", "Latest reviews"),
    ("mentor", "earnings", "Earnings", "Per session"),
    ("admin", "overview", "Overview", "Top mentors"),
    ("admin", "users", "User Management", "lin@example.org"),
    ("admin", "sessions", "Session Management", f"{TITLE} ada"),
    ("admin", "analytics", "Analytics", "New accounts per week"),
    ("admin", "control", "Admin Control", "Settings in force"),
]
TABS_OF = {role: [slug for r, slug, _, _ in DASHBOARD_TABS if r == role] for role in NAMES}
LEARNER_TABS, MENTOR_TABS, ADMIN_TABS = TABS_OF["learner"], TABS_OF["mentor"], TABS_OF["admin"]


@pytest.mark.parametrize(
    ("role", "tab", "label", "content"),
    DASHBOARD_TABS,
    ids=[f"{r}-{t}" for r, t, *_ in DASHBOARD_TABS],
)
async def test_dashboard_tab_shows_its_view(
    site: Site, role: str, tab: str, label: str, content: str
) -> None:
    h1 = f"Hello, {NAMES[role]}" if tab == "overview" else label
    html = await shows(site, f"/dashboard/?tab={tab}", role, h1, f"{role.title()} dashboard")
    assert f"<title>{label} · Dashboard · PeerLearn</title>" in html
    panel = tab_panel(html)
    assert f'<h2 id="tab-heading" class="visually-hidden">{label}</h2>' in panel
    assert content in text_of(panel), (role, tab)
    # The nav lists the role's tabs in order, the current one marked for assistive technology.
    assert re.findall(r'class="tab" href="/dashboard/\?tab=(\w+)"', html) == TABS_OF[role]
    assert re.search(rf'href="/dashboard/\?tab={tab}"\s+aria-current="page"', html), tab


@pytest.mark.parametrize(
    ("role", "tab"),
    [
        (role, tab)
        for role in NAMES
        for tab in sorted({*ADMIN_TABS, *MENTOR_TABS, *LEARNER_TABS})
        if tab not in TABS_OF[role]
    ],
)
async def test_dashboard_tab_of_another_role_is_forbidden(site: Site, role: str, tab: str) -> None:
    status, html, _ = await site.get(f"/dashboard/?tab={tab}", role)
    assert status == 403 and "another role" in html


@pytest.mark.parametrize("role", list(NAMES))
async def test_unknown_dashboard_tab_is_404(site: Site, role: str) -> None:
    status, html, _ = await site.get("/dashboard/?tab=nope", role)
    assert status == 404 and "no such dashboard tab" in html


@pytest.mark.parametrize(
    "path",
    [
        "/dashboard/",
        "/profile/",
        "/recommendations/",
        "/notifications/",
        "/sessions/{sid}/feedback/",
        *[f"/dashboard/?tab={t}" for t in sorted({*LEARNER_TABS, *MENTOR_TABS, *ADMIN_TABS})],
    ],
)
async def test_login_required_pages_redirect_anonymous(site: Site, path: str) -> None:
    status, _, resp = await site.get(path.format(sid=site.session.id))
    assert status == 302
    assert resp.headers["Location"].startswith("/auth/login/?next=")


#: (who, what their notifications list shows): the seeded booking told both sides.
NOTICES = {
    "learner": "Booking confirmed",
    "mentor": "New booking",
    "admin": "No notifications yet.",
}


@pytest.mark.parametrize("who", list(NAMES))
async def test_dashboard_greets_the_user(site: Site, who: str) -> None:
    await shows(site, "/dashboard/", who, f"Hello, {NAMES[who]}", f"{who.title()} dashboard")


@pytest.mark.parametrize("who", list(NAMES))
async def test_own_profile_page_shows_the_account(site: Site, who: str) -> None:
    username = {"learner": "lin", "mentor": "ada", "admin": "root"}[who]
    await shows(site, "/profile/", who, "Your profile", f"Username {username}", who.title())


@pytest.mark.parametrize("who", list(NAMES))
async def test_recommendations_page_shows_its_sections(site: Site, who: str) -> None:
    await shows(
        site,
        "/recommendations/",
        who,
        "Recommended for you",
        "Sessions for you",
        "Mentors to follow",
        "Trending",
    )


@pytest.mark.parametrize("who", list(NAMES))
async def test_notifications_page_lists_the_users_notices(site: Site, who: str) -> None:
    html = await shows(site, "/notifications/", who, "Notifications")
    main = html[html.index("<main") :]
    assert NOTICES[who] in text_of(main)


async def test_bookings_tab_agrees_with_the_api_on_what_is_upcoming(site: Site) -> None:
    """``Booking.is_upcoming``: once a session is past its scheduled end it is no longer
    upcoming, even while still "scheduled" (the mentor never came); pages, API and stats."""
    api = {"Authorization": f"Bearer {site.tokens['learner']}"}
    with time_machine.travel(site.session.ends_at + timedelta(minutes=1), tick=True):
        _, html, _ = await site.get("/dashboard/?tab=bookings", "learner")
        _, overview, _ = await site.get("/dashboard/?tab=overview", "learner")
        body = await (await site.client.get("/api/bookings/", headers=api)).json()
    upcoming, past = text_of(tab_panel(html)).split("Past and cancelled", 1)
    assert TITLE not in upcoming and TITLE in past
    assert body["upcoming"] == [] and len(body["past"]) == 1
    assert "Upcoming sessions 0" in text_of(
        overview
    ) and "You have no upcoming sessions." in text_of(overview)


async def test_feedback_page_roles(site: Site) -> None:
    path = f"/sessions/{site.session.id}/feedback/"
    assert (await site.get(path, "learner"))[0] == 200
    assert (await site.get(path, "mentor"))[0] == 403
    assert (await site.get(path, "admin"))[0] == 403


async def test_role_restricted_posts(site: Site) -> None:
    sid = site.session.id
    assert (await site.post("/dashboard/create-session/", "learner"))[0] == 403
    assert (await site.post(f"/sessions/{sid}/book/", "mentor"))[0] == 403
    assert (await site.post(f"/sessions/{sid}/start/", "learner"))[0] == 403
    assert (await site.post(f"/bookings/{site.booking.id}/mark-paid/", "learner"))[0] == 403
    assert (await site.post(f"/dashboard/users/{site.learner.id}/active/", "mentor"))[0] == 403
    assert (await site.post(f"/dashboard/users/{site.learner.id}/role/", "learner"))[0] == 403
    status, _, resp = await site.post(f"/sessions/{sid}/book/", None)
    assert status == 302 and resp.headers["Location"].startswith("/auth/login/")


async def test_unknown_things_are_404(site: Site) -> None:
    for path in [f"/sessions/{uuid.uuid4()}/", "/sessions/not-a-uuid/", "/profile/nobody/"]:
        status, html, _ = await site.get(path, "learner")
        assert status == 404, path
        assert "Page not found" in html


async def test_user_text_is_escaped(site: Site) -> None:
    _, html, _ = await site.get(f"/sessions/{site.session.id}/", "learner")
    assert "<script>alert(1)</script>" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    _, html, _ = await site.get("/profile/ada/")
    assert "<b>x</b>" not in html


async def test_pages_have_no_inline_scripts(site: Site) -> None:
    for path, who in [("/", None), ("/dashboard/", "mentor"), ("/auth/login/", None)]:
        _, html, resp = await site.get(path, who)
        assert "script-src 'self'" in resp.headers["Content-Security-Policy"]
        for tag in re.findall(r"<script[^>]*>", html):
            assert "src=" in tag, tag
        assert not re.search(r"\son[a-z]+=", html), path
        assert 'name="csrf-token"' in html


async def test_login_form_flow(site: Site) -> None:
    status, html, _ = await site.post("/auth/login/", None, {"login": "ada", "password": "bad"})
    assert status == 401 and "wrong" in html.lower()
    assert 'value="ada"' in html  # the login is kept
    status, _, resp = await site.post(
        "/auth/login/", None, {"login": "ada@example.org", "password": "s3cret-pass!"}
    )
    assert status == 302 and resp.headers["Location"] == "/dashboard/"
    assert SESSION_COOKIE in resp.cookies
    # The CSRF token is rotated at login: the old one is no good any more.
    assert resp.cookies[CSRF_COOKIE].value != CSRF
    status, _, resp = await site.post(
        "/auth/login/",
        None,
        {"login": "ada", "password": "s3cret-pass!", "next": "//evil.example/"},
    )
    assert status == 403
    site.client.session.cookie_jar.clear()  # a fresh browser with the test's token
    status, _, resp = await site.post(
        "/auth/login/",
        None,
        {"login": "ada", "password": "s3cret-pass!", "next": "//evil.example/"},
    )
    assert resp.headers["Location"] == "/dashboard/"  # no open redirect


async def test_login_form_without_csrf_is_refused(site: Site) -> None:
    resp = await site.client.post(
        "/auth/login/",
        data={"login": "ada", "password": "x"},
        allow_redirects=False,
        headers={"Accept": "text/html"},
    )
    assert resp.status == 403


async def test_register_shows_field_errors_and_keeps_values(site: Site) -> None:
    status, html, _ = await site.post(
        "/auth/register/",
        None,
        {
            "username": "ada",
            "email": "not-an-email",
            "password": "x",
            "password_confirm": "y",
            "role": "learner",
            "first_name": "Grace",
        },
    )
    assert status == 400
    assert 'class="field-error" id="err-password_confirm"' in html
    assert 'value="Grace"' in html
    status, html, _ = await site.post(
        "/auth/register/",
        None,
        {
            "username": "ada",
            "email": "bad",
            "password": "x",
            "password_confirm": "x",
            "role": "learner",
        },
    )
    assert status == 400
    assert 'aria-invalid="true"' in html
    status, _, resp = await site.post(
        "/auth/register/",
        None,
        {
            "username": "grace",
            "email": "grace@example.org",
            "password": "long-enough-1",
            "password_confirm": "long-enough-1",
            "role": "mentor",
        },
    )
    assert status == 302 and resp.headers["Location"] == "/dashboard/"


async def test_create_session_form_errors(site: Site) -> None:
    status, html, _ = await site.post(
        "/dashboard/create-session/",
        "mentor",
        {
            "title": "x",
            "schedule": "2000-01-01T10:00",
            "duration": "60",
            "max_participants": "50",
            "skills_required": "",
            "price": "-3",
            "tz_offset": "0",
        },
    )
    assert status == 400
    for name in ("title", "schedule", "max_participants", "skills_required", "price"):
        assert f'id="err-{name}"' in html, name
    assert 'value="x"' in html
    status, _, resp = await site.post(
        "/dashboard/create-session/",
        "mentor",
        {
            "title": "Data viz",
            "description": "Charts",
            "duration": "45",
            "schedule": (datetime.now(UTC) + timedelta(days=2)).strftime("%Y-%m-%dT%H:%M"),
            "max_participants": "4",
            "skills_required": "Python, Charts",
            "price": "0",
            "tz_offset": "-60",
        },
    )
    assert status == 302 and resp.headers["Location"] == "/dashboard/?tab=sessions"


async def test_session_lifecycle_through_pages(site: Site) -> None:
    sid = site.session.id
    status, _, resp = await site.post(
        f"/sessions/{sid}/start/", "mentor", {"next": "/dashboard/?tab=sessions"}
    )
    assert status == 302 and resp.headers["Location"] == "/dashboard/?tab=sessions"
    _, html, _ = await site.get(f"/sessions/{sid}/", "learner")
    assert f'href="/sessions/{sid}/room"' in html
    await site.post(f"/sessions/{sid}/end/", "mentor")
    status, html, _ = await site.post(f"/sessions/{sid}/feedback/", "learner", {"rating": ""})
    assert status == 400 and 'id="err-rating"' in html
    status, _, resp = await site.post(
        f"/sessions/{sid}/feedback/", "learner", {"rating": "5", "comment": "Great"}
    )
    assert status == 302
    _, html, _ = await site.get(f"/sessions/{sid}/feedback/", "learner")
    assert "You rated this session 5/5" in html


async def test_profile_edit_and_follow(site: Site) -> None:
    status, html, _ = await site.post(
        "/profile/",
        "mentor",
        {
            "first_name": "Ada",
            "bio": "Teacher",
            "skills": "Python, SQL, python",
            "interests": "Math",
            "hourly_rate": "abc",
        },
    )
    assert status == 400 and 'id="err-hourly_rate"' in html
    status, _, _ = await site.post(
        "/profile/",
        "mentor",
        {
            "first_name": "Ada",
            "bio": "Teacher",
            "skills": "Python, SQL",
            "interests": "Math",
            "hourly_rate": "40",
        },
    )
    assert status == 302
    status, _, _ = await site.post("/profile/ada/follow/", "learner", {"action": "follow"})
    assert status == 302
    _, html, _ = await site.get("/profile/ada/", "learner")
    assert "Following ✓" in html
    _, html, _ = await site.get("/dashboard/?tab=following", "learner")
    assert "Intro to" in html


async def test_booking_appears_in_mentor_views(site: Site) -> None:
    _, html, _ = await site.get(f"/sessions/{site.session.id}/", "mentor")
    assert "lin" in html and "Bookings (1)" in html
    _, html, _ = await site.get("/dashboard/?tab=sessions", "mentor")
    assert f'action="/sessions/{site.session.id}/start/"' in html


async def test_admin_actions(site: Site) -> None:
    status, _, _ = await site.post(
        f"/dashboard/users/{site.learner.id}/active/", "admin", {"active": "0"}
    )
    assert status == 302
    _, html, _ = await site.get("/dashboard/?tab=users&q=lin", "admin")
    assert "Deactivated" in html
    await site.post(f"/dashboard/users/{site.learner.id}/role/", "admin", {"role": "mentor"})
    user = await site.platform.accounts.get_user(site.learner.id)
    assert user.role == "mentor" and not user.is_active


async def test_flash_message_shown_once(site: Site) -> None:
    _, _, resp = await site.post("/profile/", "learner", {"first_name": "Lin"})
    flash = resp.cookies["peerlearn_flash"].value
    headers = site.headers("learner")
    headers["Cookie"] += f"; peerlearn_flash={flash}"
    resp = await site.client.get("/profile/", headers=headers)
    html = await resp.text()
    assert "Profile saved." in html
    assert resp.cookies["peerlearn_flash"].value == ""


async def test_error_page_for_html_requests(site: Site) -> None:
    status, html, _ = await site.get("/no/such/page")
    assert status == 404 and "Page not found" in html


async def test_rendered_forms_are_well_formed(site: Site) -> None:
    """Template whitespace control must never glue two attributes (``required aria-...``),
    and every state-changing form carries the CSRF token."""
    glued = re.compile(r"=\"[^\"]*\"[A-Za-z]|\brequired[a-z]")
    sid = site.session.id
    pages = [
        ("/auth/register/", None),
        ("/auth/login/", None),
        ("/profile/", "mentor"),
        ("/dashboard/?tab=create", "mentor"),
        (f"/sessions/{sid}/feedback/", "learner"),
        ("/dashboard/?tab=users", "admin"),
    ]
    pages += [
        (f"/sessions/{sid}/", "learner"),
        (f"/sessions/{sid}/", "mentor"),
        ("/dashboard/?tab=sessions", "admin"),
        ("/profile/ada/", "learner"),
        ("/auth/password-reset/", None),
    ]
    for path, who in pages:
        _, html, _ = await site.get(path, who)
        assert not glued.search(html), (path, glued.search(html))
        # Every form that changes something carries the CSRF token.
        for form in re.findall(r'<form[^>]*method="post".*?</form>', html, re.S):
            assert f'name="csrf_token" value="{CSRF}"' in form, (path, form[:120])
    _, html, _ = await site.post("/dashboard/create-session/", "mentor", {"title": ""})
    assert not glued.search(html)
    assert ' aria-invalid="true" aria-describedby="err-title"' in html


async def test_pages_and_api_agree_on_when_feedback_opens(site: Site) -> None:
    """One rule (``accepts_feedback``): attendees rate from the start of the session."""
    for name in ("max", "kim", "eve"):  # two more attendees, and eve who never booked
        user = await site.platform.accounts.register(
            username=name, email=f"{name}@example.org", password="s3cret-pass!", role="learner"
        )
        if name != "eve":
            await site.platform.bookings.book(user, site.session.id)
        _, site.tokens[name] = await site.platform.accounts.logins.start(user)
    sid = site.session.id
    feedback, detail = f"/sessions/{sid}/feedback/", f"/sessions/{sid}/"
    rate_link = f'href="/sessions/{sid}/feedback/"'

    async def api_rates(who: str, rating: int) -> tuple[int, Any]:
        resp = await site.client.post(
            f"/api/sessions/{sid}/feedback/",
            json={"rating": rating},
            headers={"Authorization": f"Bearer {site.tokens[who]}"},
        )
        return resp.status, await resp.json()

    # Scheduled: no form, no "Rate" anywhere, and both the page and the API refuse.
    status, html, _ = await site.get(feedback, "learner")
    assert status == 200 and "once the mentor has started it" in html
    assert 'name="rating"' not in html
    assert rate_link not in (await site.get(detail, "learner"))[1]
    assert rate_link not in (await site.get("/dashboard/?tab=bookings", "learner"))[1]
    status, html, _ = await site.post(feedback, "learner", {"rating": "5"})
    assert status == 409 and "once the mentor has started it" in html
    status, body = await api_rates("learner", 5)
    assert status == 409 and body["error"]["code"] == "invalid_state"

    # Active: the pages offer it (beside "Join room") and the API takes it.
    await site.platform.sessions.start(site.mentor, sid)
    _, html, _ = await site.get(feedback, "learner")
    assert 'name="rating"' in html
    assert rate_link in (await site.get(detail, "learner"))[1]
    assert rate_link in (await site.get("/dashboard/?tab=bookings", "learner"))[1]
    status, _, resp = await site.post(feedback, "learner", {"rating": "4"})
    assert status == 302 and resp.headers["Location"] == "/dashboard/?tab=bookings"
    status, body = await api_rates("max", 5)
    assert status == 201, body
    _, html, _ = await site.get("/dashboard/?tab=bookings", "learner")
    assert "Rated ✓" in html and rate_link not in html
    status, body = await api_rates("learner", 3)  # once
    assert status == 409 and body["error"]["code"] == "already_rated"
    assert (await site.get(feedback, "eve"))[0] == 403  # not an attendee: page and API
    assert (await api_rates("eve", 5))[0] == 403

    # Completed: still open to attendees who have not rated, and "Rate" is featured.
    await site.platform.sessions.end(site.mentor, sid)
    _, html, _ = await site.get(detail, "kim")
    assert f'class="btn btn-primary btn-block" {rate_link}' in html
    assert (
        f'class="btn btn-primary btn-sm" {rate_link}'
        in (await site.get("/dashboard/?tab=bookings", "kim"))[1]
    )
    status, _, _ = await site.post(feedback, "kim", {"rating": "5"})
    assert status == 302


async def test_paid_booking_shows_how_to_pay(site: Site) -> None:
    paid = await site.platform.sessions.create(
        site.mentor,
        title="Paid clinic",
        description="",
        duration=60,
        price=12,
        schedule=datetime.now(UTC) + timedelta(days=1),
        max_participants=3,
        skills_required=["Python"],
    )
    status, _, resp = await site.post(f"/sessions/{paid.id}/book/", "learner")
    assert status == 302
    flash = resp.cookies["peerlearn_flash"].value
    assert "Seat%20held" in flash and "12.00%20USD" in flash  # the provider's instructions
    _, html, _ = await site.get(f"/sessions/{paid.id}/", "learner")
    assert "Seat held — pay $12.00 to the mentor by" in html
    _, html, _ = await site.get("/dashboard/?tab=requests", "mentor")
    assert "Paid clinic" in html and "Mark paid" in html


async def test_room_page_roles_in_every_state(site: Site) -> None:
    """The room page asks ``room_role``: who may be there, whether or not it is open."""
    room = f"/sessions/{site.session.id}/room"
    stranger = await site.platform.accounts.register(
        username="eve", email="eve@example.org", password="s3cret-pass!", role="learner"
    )
    _, site.tokens["stranger"] = await site.platform.accounts.logins.start(stranger)
    expected = {"mentor": "mentor", "learner": "learner", "admin": "admin"}
    for state, advance in (
        ("waiting", None),
        ("live", site.platform.sessions.start),
        ("ended", site.platform.sessions.end),
    ):
        if advance is not None:
            await advance(site.mentor, site.session.id)
        for who, role in expected.items():
            status, html, _ = await site.get(room, who)
            assert status == 200, (state, who)
            assert f'data-role="{role}"' in html and f'data-state="{state}"' in html, (state, who)
        status, html, _ = await site.get(room, "stranger")
        assert status == 403 and "confirmed booking" in html, state
        if state == "live":
            await site.platform.bookings.ban(site.session.id, site.learner.id)
            status, html, _ = await site.get(room, "learner")
            assert status == 403 and "removed you" in html
            del expected["learner"]


PNG = image_bytes("PNG")


def upload_form(*fields: tuple[str, bytes | str]) -> aiohttp.FormData:
    """A multipart body with ``fields`` in this order (bytes are files)."""
    form = aiohttp.FormData()
    for name, value in fields:
        if isinstance(value, bytes):
            form.add_field(name, value, filename="me.png", content_type="image/png")
        else:
            form.add_field(name, value)
    return form


async def test_profile_picture_form_works_without_javascript(site: Site) -> None:
    """The CSRF token as the first field of the multipart form, as a browser sends it."""
    _, html, _ = await site.get("/profile/", "learner")
    form = re.search(r'<form[^>]*action="/profile/image/".*?</form>', html, re.S)
    assert form is not None
    assert re.search(r'<form[^>]*>\s*<input type="hidden" name="csrf_token"', form.group(0))
    assert "disabled" not in form.group(0) and "needs JavaScript" not in html

    async def upload(*fields: tuple[str, bytes | str], **headers: str) -> Any:
        return await site.client.post(
            "/profile/image/",
            data=upload_form(*fields),
            headers={**site.headers("learner"), **headers},
            allow_redirects=False,
        )

    resp = await upload(("csrf_token", CSRF), ("image", PNG))
    assert resp.status == 302 and resp.headers["Location"] == "/profile/"
    assert "Profile%20picture%20updated" in resp.cookies["peerlearn_flash"].value
    learner = await site.platform.accounts.get_user(site.learner.id)
    assert learner.profile_image and learner.profile_image.endswith(".png")
    # The script's way still works: the header, and the field too.
    resp = await upload(("csrf_token", CSRF), ("image", PNG), **{"X-CSRF-Token": CSRF})
    assert resp.status == 302
    for fields in (
        [("image", PNG)],  # no token
        [("csrf_token", "x" * 43), ("image", PNG)],  # not this browser's token
        [("image", PNG), ("csrf_token", CSRF)],  # after the file: it would have to be buffered
        [("csrf_token", CSRF * 10), ("image", PNG)],  # far too long to be a token
    ):
        resp = await upload(*fields)
        assert resp.status == 403, fields
        assert "CSRF" in await resp.text()
    resp = await upload(("csrf_token", CSRF), ("image", b""))  # sent with no file chosen
    assert "Choose%20an%20image" in resp.cookies["peerlearn_flash"].value


async def test_profile_picture_form_keeps_the_size_limit(
    app_factory: Any, make_settings: Any
) -> None:
    site = Site(await app_factory(make_settings(uploads={"max_image_bytes": 2048})))
    await site.seed()
    resp = await site.client.post(
        "/profile/image/",
        data=upload_form(("csrf_token", CSRF), ("image", PNG + bytes(4096))),
        headers=site.headers("learner"),
        allow_redirects=False,
    )
    assert resp.status == 302
    assert "at%20most%202048%20bytes" in resp.cookies["peerlearn_flash"].value
    assert (await site.platform.accounts.get_user(site.learner.id)).profile_image is None


async def test_api_upload_accepts_the_csrf_field_with_a_cookie(site: Site) -> None:
    resp = await site.client.post(
        "/api/users/profile/image/",
        data=upload_form(("csrf_token", CSRF), ("image", PNG)),
        headers={"Cookie": site.headers("learner")["Cookie"]},
    )
    assert resp.status == 200, await resp.text()
    assert (await resp.json())["profile_image"].endswith(".png")
