"""No claim from a degenerate variance: the last check on a results object before anyone reads it.

Why a final check as well as the sections' own: the sections say in words why they give no interval where
they know it (MRMC: the readers' figures of merit do not vary; bootstrap: every replicate gives the same
difference), but an interval of zero width can come from any estimate whose variance collapsed (a reader who
is always right, a cell with one reading). Wherever the results carry an interval of zero width, or none, next
to a p-value, the interval and the p-value are withheld and the row says why (``degenerate``), so that the
page, the report and the JSON never present "95% CI +11.1 to +11.1, p = 1.5e-46" as a finding.
"""

from __future__ import annotations

import math

__all__ = ["DEGENERATE", "withhold_degenerate", "zero_width"]

# (low, high) keys of the intervals in the results, with the p-values that go with them
INTERVALS = (("ci_low", "ci_high"), ("pp_ci_low", "pp_ci_high"), ("or_ci_low", "or_ci_high"))
PAIRED = ("ci", "or_ci")
P_KEYS = ("p", "p_holm")
DEGENERATE = "no variance to test against (the interval has zero width), so no interval or p-value is given"


def zero_width(lo, hi) -> bool:
    """True when an interval is missing, undefined, half given or of zero width (to rounding)."""
    if lo is None or hi is None or not (math.isfinite(lo) and math.isfinite(hi)):
        return True
    return abs(hi - lo) <= 1e-12 * max(1.0, abs(lo), abs(hi))


def _intervals(row: dict) -> list[tuple[str, str | None]]:
    """The intervals of a row: (low key, high key), or (list key, None) for a [low, high] list."""
    return [(lo, hi) for lo, hi in INTERVALS if lo in row and hi in row] + [
        (k, None) for k in PAIRED if isinstance(row.get(k), list) and len(row[k]) == 2]


def _check(row: dict) -> None:
    """Withhold a row's zero-width intervals, and its p-values when any of its intervals is not a proper one."""
    improper = []
    for lo, hi in _intervals(row):
        bounds = row[lo] if hi is None else [row[lo], row[hi]]
        if zero_width(*bounds):
            improper.append((lo, hi, any(b is not None for b in bounds)))
    if not improper:
        return
    claimed = any(given for *_, given in improper) or any(row.get(k) is not None for k in P_KEYS)
    for lo, hi, _ in improper:
        if hi is None:
            row[lo] = [None, None]
        else:
            row[lo] = row[hi] = None
    for k in P_KEYS:
        if k in row:
            row[k] = None
    if claimed and not row.get("degenerate"):
        row["degenerate"] = DEGENERATE


def withhold_degenerate(obj):
    """Walk a JSON-ready results object and withhold every zero-width interval and the p-value beside it
    (in place; returns ``obj``)."""
    if isinstance(obj, dict):
        _check(obj)
        for v in obj.values():
            withhold_degenerate(v)
    elif isinstance(obj, list):
        for v in obj:
            withhold_degenerate(v)
    return obj
