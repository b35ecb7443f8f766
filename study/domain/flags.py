"""The one home of the monitor's quality flags: a read that was implausibly fast, a reader who stalled.

Scripted or careless reads of about a second per case move the reading-time model and can move
accuracy, so the monitor flags them and the analysis offers a sensitivity analysis without them. The
thresholds are study settings (``[monitor] fast_read_seconds`` and ``stalled_days`` in the study TOML,
``StudyConfig.fast_read_seconds`` / ``stalled_days``); everything that flags calls these functions.
"""
from __future__ import annotations

from datetime import datetime, timedelta


def reading_seconds(shown_at: datetime | None, submitted_at: datetime | None) -> float | None:
    """Seconds from the photograph being shown to the answer; None when either time is unknown."""
    if shown_at is None or submitted_at is None:
        return None
    return (submitted_at - shown_at).total_seconds()


def is_fast_read(seconds: float | None, threshold_s: float) -> bool:
    """True for a read that took less than ``threshold_s`` seconds; a threshold of 0 turns the flag off,
    and a read whose time is unknown is never flagged."""
    return threshold_s > 0 and seconds is not None and seconds < threshold_s


def is_stalled(last_activity: datetime | None, readings_left: int, now: datetime, stalled_days: float) -> bool:
    """True for a reader who has started, still has readings left and has not answered for
    ``stalled_days``. A reader who never started is "not started", not stalled."""
    return (readings_left > 0 and last_activity is not None
            and now - last_activity >= timedelta(days=stalled_days))
