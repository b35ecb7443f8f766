"""Times as an investigator reads them: in the study's time zone, to the minute.

The database stores UTC. Screens, the CLI and the report show local time from ``REVISION_TIMEZONE``
(an IANA name such as ``Europe/London``), else ``[app] timezone`` in ``.streamlit/secrets.toml``, else
the server's own zone; the zone's abbreviation is printed so a reader of a printout knows which it was.
"""
from __future__ import annotations

from datetime import date, datetime, time, timedelta, timezone, tzinfo
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from study.storage import settings


class TimezoneSettingError(ValueError):
    """REVISION_TIMEZONE or [app] timezone names no known zone."""


def display_zone() -> tzinfo:
    """The configured zone, else the server's local zone."""
    name = settings.timezone_name()
    if name is None:
        return datetime.now().astimezone().tzinfo or timezone.utc
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise TimezoneSettingError(f"time zone {name!r} is not a known IANA zone name (e.g. 'Europe/London'); "
                                   "fix REVISION_TIMEZONE or [app] timezone") from exc


def local(value: datetime, zone: tzinfo | None = None) -> datetime:
    """``value`` (naive = UTC, as stored) in the display zone."""
    if value.tzinfo is None:
        value = value.replace(tzinfo=timezone.utc)
    return value.astimezone(zone or display_zone())


def minute(value: datetime | None, zone: tzinfo | None = None) -> str:
    """``2026-12-01 14:05 CET``; an empty string for no time."""
    if value is None:
        return ""
    return local(value, zone).strftime("%Y-%m-%d %H:%M %Z").strip()


def parse_when(text: str, *, end: bool = False, zone=None) -> datetime:
    """A CLI time: ``2026-12-01`` (a day in the investigator's zone; with ``end`` the day after it, so that
    ``--until`` includes the day) or ``2026-12-01T14:05`` (a zone in the text wins). A clear ValueError else."""
    zone = zone or display_zone()
    value = (text or "").strip()
    try:
        if len(value) == 10:
            day = date.fromisoformat(value)
            return datetime.combine(day + timedelta(days=1 if end else 0), time(), tzinfo=zone)
        moment = datetime.fromisoformat(value)
    except ValueError:
        raise ValueError(f"{text!r} is not a date (2026-12-01) or a time (2026-12-01T14:05)") from None
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=zone)


def zone_label() -> str:
    """The abbreviation of the zone times are shown in (``study.domain.timefmt``), e.g. ``CET``."""
    return local(datetime.now(timezone.utc)).strftime("%Z") or "UTC offset " + local(datetime.now(timezone.utc)).strftime("%z")


def day_range(first: date | None, last: date | None, zone=None) -> tuple[datetime | None, datetime | None]:
    """(since, until) covering the days ``first`` to ``last`` inclusive in the investigator's zone."""
    zone = zone or display_zone()
    since = datetime.combine(first, time(), tzinfo=zone) if first else None
    until = datetime.combine(last + timedelta(days=1), time(), tzinfo=zone) if last else None
    return since, until
