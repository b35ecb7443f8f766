"""Times as an investigator reads them: in the study's time zone, to the minute.

The database stores UTC. Screens, the CLI and the report show local time from ``REVISION_TIMEZONE``
(an IANA name such as ``Europe/London``), else ``[app] timezone`` in ``.streamlit/secrets.toml``, else
the server's own zone; the zone's abbreviation is printed so a reader of a printout knows which it was.
"""
from __future__ import annotations

import os
import tomllib
from datetime import datetime, timezone, tzinfo
from pathlib import Path
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

SECRETS = Path(".streamlit/secrets.toml")


class TimezoneSettingError(ValueError):
    """REVISION_TIMEZONE or [app] timezone names no known zone."""


def _setting() -> str | None:
    value = os.environ.get("REVISION_TIMEZONE")
    if value:
        return value
    try:
        return tomllib.loads(SECRETS.read_text()).get("app", {}).get("timezone") or None
    except (OSError, tomllib.TOMLDecodeError):
        return None


def display_zone() -> tzinfo:
    """The configured zone, else the server's local zone."""
    name = _setting()
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
