"""docs/services.md documents every public method of every service on ``Platform``."""

from __future__ import annotations

import inspect
import re
from pathlib import Path

import pytest

from control.services.accounts import AccountService
from control.services.bookings import BookingService
from control.services.chat import ChatService
from control.services.credentials import CredentialService
from control.services.details import SessionDetails
from control.services.feedback import FeedbackService
from control.services.follows import FollowService
from control.services.interactions import InteractionService
from control.services.notifications import NotificationService
from control.services.profiles import ProfileService
from control.services.sessions import SessionService
from control.services.stats import StatsService
from control.services.user_admin import UserAdminService
from control.services.users import UserDirectory

DOC = Path(__file__).resolve().parents[3] / "docs" / "services.md"
SERVICES = {
    "accounts": AccountService,
    "follows": FollowService,
    "notifications": NotificationService,
    "sessions": SessionService,
    "bookings": BookingService,
    "feedback": FeedbackService,
    "chat": ChatService,
    "interactions": InteractionService,
    "stats": StatsService,
    "details": SessionDetails,
}


def _rows() -> dict[str, str]:
    rows = {}
    for line in DOC.read_text(encoding="utf-8").splitlines():
        match = re.match(r"\| `platform\.(\w+)` \(`\w+\.py`\) \| (.*) \|$", line)
        if match:
            rows[match.group(1)] = match.group(2)
    return rows


def test_every_public_service_method_is_documented() -> None:
    rows = _rows()
    missing = []
    for attribute, cls in SERVICES.items():
        row = rows.get(attribute, "")
        for name, member in vars(cls).items():
            if name.startswith("_") or not inspect.isfunction(member):
                continue
            if f"`{name}(" not in row:
                missing.append(f"platform.{attribute}.{name}")
    assert not missing, f"not in docs/services.md: {missing}"


@pytest.mark.parametrize(
    "part", [UserDirectory, ProfileService, CredentialService, UserAdminService]
)
def test_every_account_part_is_reached_through_platform_accounts(part: type) -> None:
    """``platform.accounts`` forwards each part's public methods (bar the internal ones)."""
    internal = {"require", "issue_token"}  # used between the parts, not by callers
    methods = {n for n, m in vars(part).items() if inspect.isfunction(m) and n[0] != "_"}
    assert sorted(methods - internal - set(vars(AccountService))) == []
