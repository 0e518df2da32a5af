"""Time zones: the one rule that turns a local wall time into UTC, and back for display.

Sessions are stored in UTC. People type and read times in their own zone, an IANA name
(``Europe/Berlin``) kept on their profile (``users.timezone``). A wall time is converted with
the rules of *that date* (``zoneinfo``), never with the offset of the day it is typed on.

Daylight-saving changes make two kinds of wall time special:

- a **skipped** time (clocks go forward, e.g. 02:30 on 28 March 2027 in Berlin) does not
  exist: it is refused (:class:`NonexistentLocalTime`), never silently moved;
- a **repeated** time (clocks go back, e.g. 02:30 on 31 October 2027 in Berlin happens twice)
  is read as its *first* occurrence (``fold=0``, still on summer time), and the result says
  it was ambiguous so a form can tell the user.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import lru_cache
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError, available_timezones

from control.errors import ValidationFailed

DEFAULT_ZONE = "UTC"
ZONE_MAX = 64  # users.timezone is String(64); the longest IANA name is 32 characters
LOCAL_INPUT_FORMAT = "%Y-%m-%dT%H:%M"  # what an <input type="datetime-local"> sends
DISPLAY_FORMAT = "%a %d %b %Y, %H:%M"
# Regions a person picks from (the list the profile and session forms offer); any other
# name zoneinfo knows (``US/Eastern``, ``Etc/GMT-3``...) is still accepted.
_REGIONS = (
    "Africa",
    "America",
    "Antarctica",
    "Arctic",
    "Asia",
    "Atlantic",
    "Australia",
    "Europe",
    "Indian",
    "Pacific",
)


class UnknownTimeZone(ValidationFailed):
    """The name is not an IANA time zone this server knows."""

    code = "unknown_timezone"


class NonexistentLocalTime(ValidationFailed):
    """The wall time falls in the hour skipped when clocks go forward."""

    code = "nonexistent_local_time"


@dataclass(frozen=True)
class LocalTime:
    """A wall time resolved in a zone: the UTC instant, and whether it happened twice."""

    utc: datetime
    ambiguous: bool  # a repeated autumn time: ``utc`` is its first occurrence


@lru_cache(maxsize=1)
def _known() -> frozenset[str]:
    return frozenset(available_timezones())


def check_zone(name: str | None, field: str = "timezone") -> str:
    """The zone name, stripped, or :class:`UnknownTimeZone` naming ``field``."""
    text = (name or "").strip()
    if not text:
        raise UnknownTimeZone("choose a time zone", fields={field: "choose a time zone"})
    if len(text) > ZONE_MAX or text not in _known():
        raise UnknownTimeZone(
            f"unknown time zone {text[:ZONE_MAX]!r}",
            fields={field: f"unknown time zone “{text[:ZONE_MAX]}”: use a name like Europe/Berlin"},
        )
    return text


def zone(name: str | None) -> ZoneInfo:
    """The ``ZoneInfo`` of a checked name; unknown names raise :class:`UnknownTimeZone`."""
    try:
        return ZoneInfo(check_zone(name))
    except ZoneInfoNotFoundError:  # listed but its file is missing: a broken install
        raise UnknownTimeZone(f"time zone {name!r} is not installed") from None


def display_zone(name: str | None) -> ZoneInfo:
    """For showing times: the user's zone, or UTC when it is unset or no longer known."""
    try:
        return zone(name)
    except UnknownTimeZone:
        return ZoneInfo(DEFAULT_ZONE)


def choices() -> list[str]:
    """Zone names a form offers: ``UTC`` then the regional IANA names, sorted."""
    regional = sorted(z for z in _known() if z.split("/", 1)[0] in _REGIONS and "/" in z)
    return [DEFAULT_ZONE, *regional]


def local_to_utc(local: datetime, zone_name: str, field: str = "schedule") -> LocalTime:
    """Resolve a naive wall time in ``zone_name`` (the rule every schedule input follows).

    Skipped times raise :class:`NonexistentLocalTime` (naming ``field``); repeated times take
    the first occurrence. An aware ``local`` is simply converted (it needs no rule).
    """
    if local.tzinfo is not None:
        return LocalTime(local.astimezone(UTC), False)
    tz = zone(zone_name)
    first = local.replace(tzinfo=tz, fold=0)
    second = local.replace(tzinfo=tz, fold=1)
    utc = first.astimezone(UTC)
    # zoneinfo maps a skipped wall time to *some* instant; going back to the zone shows the
    # wall time moved, which is how a gap is recognised.
    moved = utc.astimezone(tz)
    if moved.replace(tzinfo=None) != local:
        raise NonexistentLocalTime(
            f"{local:%H:%M} does not exist on {local:%d %b %Y} in {zone_name}",
            fields={
                field: f"{local:%H:%M} does not exist on {local:%d %b %Y} in {zone_name}: the "
                f"clocks go forward then. Pick another time (e.g. {moved:%H:%M})."
            },
        )
    return LocalTime(utc, first.utcoffset() != second.utcoffset())


def parse_local_input(value: str, zone_name: str, field: str = "schedule") -> LocalTime:
    """A ``datetime-local`` form value (``2027-04-06T18:00``) read in ``zone_name``.

    A blank or malformed value raises :class:`ValidationFailed` naming ``field``.
    """
    try:
        local = datetime.strptime((value or "").strip(), LOCAL_INPUT_FORMAT)
    except ValueError:
        raise ValidationFailed(
            "pick a date and time", fields={field: "Pick a date and time."}
        ) from None
    return local_to_utc(local, zone_name, field)


def to_local(value: datetime, zone_name: str | None) -> datetime:
    """An aware (or naive-UTC) instant in the user's zone, for display."""
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value.astimezone(display_zone(zone_name))


def format_local(
    value: datetime | None, zone_name: str | None, fmt: str = DISPLAY_FORMAT, *, label: bool = True
) -> str:
    """``Tue 06 Apr 2027, 18:00 CEST``: the instant in the user's zone, with its abbreviation."""
    if value is None:
        return ""
    local = to_local(value, zone_name)
    text = local.strftime(fmt)
    return f"{text} {zone_label(local)}" if label else text


def zone_label(local: datetime) -> str:
    """The short name of the offset in force (``CEST``, ``EST``), or ``UTC+05:30`` where the
    zone has no abbreviation (tzdata writes ``+0530`` for those)."""
    abbr = local.tzname() or ""
    if abbr and abbr[0] not in "+-":
        return abbr
    offset = local.utcoffset() or timedelta(0)
    sign = "-" if offset < timedelta(0) else "+"
    minutes = abs(int(offset.total_seconds())) // 60
    return f"UTC{sign}{minutes // 60:02d}:{minutes % 60:02d}"


def local_input_value(value: datetime, zone_name: str | None) -> str:
    """The instant as a ``datetime-local`` value in the user's zone (to prefill a form)."""
    return to_local(value, zone_name).strftime(LOCAL_INPUT_FORMAT)
