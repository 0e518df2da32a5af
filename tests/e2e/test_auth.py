"""Authentication in the browser: each role lands on its own dashboard, logout, password reset
and e-mail verification through the links the app mails (file mail backend)."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from playwright.sync_api import expect

from tests.e2e.harness import BrowserPage, LiveServer, TestUser, login_via_form

pytestmark = pytest.mark.browser


@pytest.mark.parametrize(
    ("role", "first_tab"),
    [
        ("learner", "Browse Sessions"),
        ("mentor", "Create Session"),
        ("admin", "User Management"),
    ],
)
def test_each_role_lands_on_its_dashboard(
    new_page: Callable[..., BrowserPage],
    make_user: Callable[..., TestUser],
    role: str,
    first_tab: str,
) -> None:
    bp = new_page(role)
    login_via_form(bp, make_user(role))
    expect(bp.page.locator(".eyebrow").first).to_have_text(f"{role} dashboard", ignore_case=True)
    expect(bp.page.locator("nav.tabs")).to_contain_text(first_tab)
    bp.shot("landed")


def test_login_returns_to_the_page_asked_for(
    new_page: Callable[..., BrowserPage], make_user: Callable[..., TestUser]
) -> None:
    user = make_user("learner")
    bp = new_page()
    bp.goto("/recommendations/")
    bp.page.wait_for_url("**/auth/login/?next=/recommendations/")
    bp.page.get_by_label("Username or e-mail").fill(user.email)
    bp.page.get_by_label("Password").fill(user.password)
    bp.page.get_by_role("button", name="Log in").click()
    bp.page.wait_for_url("**/recommendations/")


def test_logout(new_page: Callable[..., BrowserPage], make_user: Callable[..., TestUser]) -> None:
    bp = new_page()
    login_via_form(bp, make_user("mentor"))
    bp.page.get_by_role("button", name="Log out").click()
    bp.page.wait_for_url(bp.base_url + "/")
    expect(bp.page.locator("[data-flash]")).to_have_text("You are logged out.")
    expect(bp.page.get_by_role("link", name="Log in")).to_be_visible()
    expect(bp.page.locator("[data-notifications]")).to_have_count(0)
    bp.goto("/dashboard/")  # the session cookie is gone
    bp.page.wait_for_url("**/auth/login/?next=/dashboard/")
    bp.shot("logged-out")


def test_password_reset_through_the_mailed_link(
    live_server: LiveServer,
    new_page: Callable[..., BrowserPage],
    make_user: Callable[..., TestUser],
) -> None:
    user = make_user("learner")
    bp = new_page()
    page = bp.page
    bp.goto("/auth/login/")
    page.get_by_role("link", name="Forgot your password?").click()
    page.get_by_label("E-mail").fill(user.email)
    page.get_by_role("button", name="Send reset link").click()
    expect(page.get_by_role("status")).to_contain_text("If an account uses that address")
    bp.shot("reset-sent")

    bp.goto(live_server.link_in_mail(user.email, "/auth/password-reset/confirm/"))
    page.locator("#f-password").fill("a-new-password-1")
    page.get_by_label("Repeat new password").fill("something-else-1")
    page.get_by_role("button", name="Set password").click()
    expect(page.locator("#err-password_confirm")).to_be_visible()
    page.locator("#f-password").fill("a-new-password-1")
    page.get_by_label("Repeat new password").fill("a-new-password-1")
    bp.shot("reset-form")
    page.get_by_role("button", name="Set password").click()
    page.wait_for_url("**/auth/login/")
    expect(page.locator("[data-flash]")).to_contain_text("Password changed")

    page.get_by_label("Username or e-mail").fill(user.username)
    page.get_by_label("Password").fill(user.password)  # the old one no longer works
    page.get_by_role("button", name="Log in").click()
    expect(page.get_by_role("alert")).to_be_visible()
    user.password = "a-new-password-1"
    login_via_form(bp, user)


def test_email_verification_and_resend(
    live_server: LiveServer,
    new_page: Callable[..., BrowserPage],
    make_user: Callable[..., TestUser],
) -> None:
    user = make_user("mentor")
    bp = new_page(user=user)
    page = bp.page
    bp.goto("/profile/")
    expect(page.locator(".badge", has_text="not verified")).to_be_visible()
    page.get_by_role("button", name="Send the verification e-mail again").click()
    flash = page.locator("[data-flash]")
    expect(flash).to_contain_text(f"sent a verification link to {user.email}")

    bp.goto(live_server.link_in_mail(user.email, "/auth/verify-email/"))
    expect(page.get_by_role("heading", name="E-mail verified")).to_be_visible()
    bp.shot("verified")
    bp.goto("/profile/")
    expect(page.locator(".badge", has_text="verified")).to_have_text("verified")
    expect(page.get_by_role("button", name="Send the verification e-mail again")).to_have_count(0)

    # A link works once.
    bp.goto(live_server.link_in_mail(user.email, "/auth/verify-email/"))
    expect(page.get_by_role("heading", name="Link not valid")).to_be_visible()
