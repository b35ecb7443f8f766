"""Who each section of the analysis counts and who it leaves out, and why, in plain sentences.

Why one module: every section states its population (readers, cases, readings) and its exclusions
(``{"who", "why"}``, where ``why`` is a clause an investigator reads as it is: "marked 'Image ungradable'
(counted apart)"), and the study-wide exclusions come first in each; the report and the page turn them into
one sentence (:func:`study.outputs.report.population_line`).
"""

from __future__ import annotations

from collections.abc import Sequence

import pandas as pd

from study.analysis.summary import condition_name

__all__ = ["after_study_exclusions", "clustered_by", "load_exclusions", "population"]


def population(df: pd.DataFrame, excluded: Sequence[dict] = ()) -> dict:
    """Readers, cases and readings of ``df`` and what was left out before it."""
    return {"readers": int(df["reader"].nunique()), "cases": int(df["case"].nunique()), "readings": int(len(df)),
            "excluded": [dict(e) for e in excluded]}


def load_exclusions(df: pd.DataFrame, superseded: int) -> list[dict]:
    """What the loader left out (ungradable, no reference) and the corrected versions it did not use."""
    excluded = df.attrs.get("excluded", {})
    out = []
    for cond, n in (excluded.get("ungradable") or {}).items():
        out.append({"who": f"{n} reading(s) {condition_name(cond)}",
                    "why": "marked 'Image ungradable' (counted apart, not scored)"})
    if excluded.get("no_reference"):
        out.append({"who": f"{excluded['no_reference']} reading(s)",
                    "why": "their case has no reference answer to score them against"})
    if superseded:
        out.append({"who": f"{superseded} earlier answer version(s)",
                    "why": "superseded by a correction (the latest version counts)"})
    return out


def after_study_exclusions(section: dict | None, base: list[dict]) -> dict | None:
    """List a section's own exclusions after the study-wide ones (``base``)."""
    if section and section.get("population"):
        section["population"]["excluded"] = base + section["population"]["excluded"]
    return section


def clustered_by(kept: pd.DataFrame, cluster: bool) -> dict | None:
    """What the jackknife or bootstrap leaves out as one unit, when it is a patient (None: the case)."""
    if not cluster:
        return None
    n = int(kept["patient"].nunique()) if len(kept) else 0
    return {"unit": "patient", "n_patients": n,
            "note": f"resampling unit: the patient ({n} patients, all of a patient's cases together)"}
