"""Holm's step-down adjustment of a family of p-values (Holm 1979).

Why Holm: a study with two aided arms makes three comparisons (each arm against unaided, and the arms
against each other); Holm controls the family-wise error rate at alpha like Bonferroni but is uniformly
more powerful, and needs no assumption about how the tests depend on each other.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

__all__ = ["holm"]


def holm(pvalues: Sequence[float | None]) -> list[float | None]:
    """Holm-adjusted p-values in the input order; None (or NaN) entries stay None and are not counted."""
    known = [(p, i) for i, p in enumerate(pvalues) if p is not None and not math.isnan(p)]
    out: list[float | None] = [None] * len(pvalues)
    m, running = len(known), 0.0
    for rank, (p, i) in enumerate(sorted(known)):
        running = max(running, min(1.0, (m - rank) * p))
        out[i] = running
    return out
