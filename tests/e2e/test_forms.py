"""Forms submitted with bad input show the server's errors next to the fields and keep what
was typed; forms work from the keyboard alone; a forged CSRF token is refused."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from playwright.sync_api import expect

from control.platform import Platform
from tests.e2e.harness import PASSWORD, BrowserPage, LiveServer, TestUser

pytestmark = pytest.mark.browser


def field_error(bp: BrowserPage, name: str) -> str:
    """The error shown under field ``name``, which must also be tied to it for screen readers."""
    error = bp.page.locator(f"#err-{name}")
    expect(error).to_be_visible()
    field = bp.page.locator(f'[name="{name}"][aria-describedby="err-{name}"]')
    expect(field.first).to_have_attribute("aria-invalid", "true")
    return error.inner_text()


def test_register_and_login_errors(
    new_page: Callable[..., BrowserPage], make_user: Callable[..., TestUser]
) -> None:
    taken = make_user("learner")
    bp = new_page("anon")
    page = bp.page
    bp.goto("/auth/register/")
    page.get_by_label("First name").fill("Kept")
    page.get_by_label("Username").fill("x y")
    page.get_by_label("E-mail").fill("not-an-email")
    page.locator("#f-password").fill("short")
    page.get_by_label("Repeat password").fill("different")
    page.get_by_role("button", name="Create account").click()
    assert "differ" in field_error(bp, "password_confirm")
    # Focus is on the field in error, so a screen reader reads it and its error first.
    expect(page.locator("#f-password_confirm")).to_be_focused()
    expect(page.get_by_label("First name")).to_have_value("Kept")
    bp.shot("register-mismatch")

    page.locator("#f-password").fill("short")
    page.get_by_label("Repeat password").fill("short")
    page.get_by_role("button", name="Create account").click()
    for name in ("username", "email", "password"):
        assert field_error(bp, name), name
    expect(page.get_by_label("E-mail")).to_have_value("not-an-email")
    expect(page.get_by_label("Username")).to_have_value("x y")
    bp.shot("register-errors")

    page.get_by_label("Username").fill(taken.username)
    page.get_by_label("E-mail").fill(f"other-{taken.email}")
    page.locator("#f-password").fill(PASSWORD)
    page.get_by_label("Repeat password").fill(PASSWORD)
    page.get_by_role("button", name="Create account").click()
    assert "taken" in field_error(bp, "username").lower()

    bp.goto("/auth/login/")
    page.get_by_role("button", name="Log in").click()
    assert field_error(bp, "login") and field_error(bp, "password")
    page.get_by_label("Username or e-mail").fill("nobody-here")
    page.get_by_label("Password").fill("wrong-password")
    page.get_by_role("button", name="Log in").click()
    expect(page.get_by_role("alert")).to_contain_text("wrong", ignore_case=True)
    expect(page.get_by_label("Username or e-mail")).to_have_value("nobody-here")
    bp.shot("login-error")


def test_session_profile_and_reset_forms(
    new_page: Callable[..., BrowserPage], make_user: Callable[..., TestUser]
) -> None:
    mentor = new_page("mentor", user=make_user("mentor"))
    page = mentor.page
    mentor.goto("/dashboard/?tab=create")
    form = page.locator("form[data-tz-form]")
    form.get_by_label("Title").fill("ok")
    form.get_by_label("Date and time").fill("2001-01-01T10:00")
    form.get_by_label("Learner seats").fill("99")
    form.get_by_label("Price (USD)").fill("-3")
    form.get_by_role("button", name="Create session").click()
    for name in ("title", "schedule", "max_participants", "skills_required", "price"):
        assert field_error(mentor, name), name
    expect(page.get_by_label("Title")).to_have_value("ok")
    expect(page.get_by_label("Learner seats")).to_have_value("99")
    mentor.shot("create-session-errors")

    mentor.goto("/profile/")
    page.get_by_label("Hourly rate (USD)").fill("-5")
    page.get_by_label("Bio").fill("Still here after the error")
    page.get_by_role("button", name="Save profile").click()
    assert field_error(mentor, "hourly_rate")
    expect(page.get_by_label("Bio")).to_have_value("Still here after the error")
    mentor.shot("profile-errors")

    anon = new_page("anon")
    anon.goto("/auth/password-reset/")
    anon.page.get_by_label("E-mail").fill("nope")
    anon.page.get_by_role("button", name="Send reset link").click()
    assert field_error(anon, "email")
    anon.goto("/auth/password-reset/confirm/?token=forged")
    anon.page.locator("#f-password").fill("long-enough-9")
    anon.page.get_by_label("Repeat new password").fill("long-enough-9")
    anon.page.get_by_role("button", name="Set password").click()
    expect(anon.page.get_by_role("alert").first).to_contain_text("invalid or has expired")
    anon.shot("reset-bad-token")


def test_forms_work_from_the_keyboard(
    new_page: Callable[..., BrowserPage], make_user: Callable[..., TestUser]
) -> None:
    bp = new_page("anon")
    page = bp.page
    bp.goto("/auth/register/")
    # The role choice is a radio group: arrow keys move the choice.
    page.locator('input[name="role"][value="learner"]').focus()
    page.keyboard.press("ArrowDown")
    expect(page.locator('input[name="role"][value="mentor"]')).to_be_checked()

    user = make_user("mentor")
    bp.goto("/auth/login/")
    page.get_by_label("Username or e-mail").focus()
    page.keyboard.type(user.username)
    page.keyboard.press("Tab")
    expect(page.get_by_label("Password")).to_be_focused()
    page.keyboard.type(user.password)
    page.keyboard.press("Enter")
    page.wait_for_url("**/dashboard/")
    # The first Tab of a page reaches the skip link, which moves focus to the content.
    page.keyboard.press("Tab")
    expect(page.get_by_role("link", name="Skip to content")).to_be_focused()


def test_forged_csrf_token_is_refused(
    live_server: LiveServer,
    new_page: Callable[..., BrowserPage],
    make_user: Callable[..., TestUser],
) -> None:
    user = make_user("learner")
    bp = new_page("learner", user=user)
    bp.goto("/profile/")
    bp.page.locator('form[action="/profile/"] input[name="csrf_token"]').evaluate(
        "input => { input.value = 'forged' }"
    )
    bp.page.get_by_label("Bio").fill("should not be saved")
    bp.page.get_by_role("button", name="Save profile").click()
    expect(bp.page.locator(".error-code")).to_have_text("403")

    async def bio(platform: Platform) -> str:
        found = await platform.accounts.get_user(user.id)
        assert found is not None
        return found.bio or ""

    assert live_server.call(bio) == ""
