"""What counts as correct: the one rule the export, the monitor and the analysis share.

Why one home: "the reader's answer to the primary question equals the case's reference" must not be
re-implemented per page or export, or the live monitor and the analysis drift apart. A reference
comes from ``case.reference_labels[question.truth]`` (the manifest stores every value as text);
the legacy primary diagnosis reads ``label`` (or ``primary``) and falls back to ``normal``, as the
exports always did.

Scores: single_choice and boolean are right when equal; multi_choice when the sets are equal
(exact match); ordinal when the grades are equal, with ``distance`` = |answer grade - reference
grade| (grades are option positions, lowest first). An ungradable reading, or a case without a
usable reference, scores ``correct = None``: it is counted as its own category, never as wrong.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from study.domain.config import NORMAL, UNGRADABLE, Question, StudyConfig

_TRUE = {"1", "true", "t", "yes", "y"}
_FALSE = {"0", "false", "f", "no", "n"}


@dataclass(frozen=True)
class Score:
    correct: int | None  # 1 right, 0 wrong, None: ungradable or no reference
    answer: str | None  # the answer as export text (multi_choice joined with ';')
    truth: str | None  # the reference in the same form
    ungradable: bool = False
    distance: int | None = None  # ordinal only
    answer_grade: int | None = None  # ordinal only: 0-based option position
    truth_grade: int | None = None


def as_text(question: Question, value: Any) -> str | None:
    """A stored answer value as one export cell."""
    if value is None:
        return None
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (list, tuple)):
        return ";".join(str(v) for v in value)
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def _option_key(question: Question, raw: Any) -> str | None:
    """An option key from a manifest cell; numeric spellings ("2.0" for "2") are accepted."""
    text = str(raw).strip()
    keys = question.keys
    if text in keys:
        return text
    try:
        number = float(text)
    except ValueError:
        return None
    return next((k for k in keys if _is_number(k) and float(k) == number), None)


def _is_number(text: str) -> bool:
    try:
        float(text)
        return True
    except ValueError:
        return False


def reference_label(labels: dict | None) -> str:
    """A case's reference primary diagnosis: its ``label`` (older imports: ``primary``), else normal."""
    labels = labels or {}
    return labels.get("label") or labels.get("primary") or NORMAL


def reference(question: Question, labels: dict | None) -> Any:
    """The reference answer to ``question`` for a case (None when the case has none usable)."""
    labels = labels or {}
    if question.truth == "label":
        return reference_label(labels)
    raw = labels.get(question.truth) if question.truth else None
    if raw is None or (isinstance(raw, str) and not raw.strip()):
        return None
    if question.kind == "boolean":
        if isinstance(raw, bool):
            return raw
        text = str(raw).strip().lower()
        return True if text in _TRUE else False if text in _FALSE else None
    if question.kind == "multi_choice":
        items = raw if isinstance(raw, (list, tuple)) else str(raw).split(";")
        keys = [_option_key(question, x) for x in items if str(x).strip()]
        if None in keys:
            return None
        return sorted(set(keys), key=question.keys.index)
    if question.kind in ("single_choice", "ordinal"):
        return _option_key(question, raw)
    return None


def score(question: Question | StudyConfig, labels: dict | None, payload: dict) -> Score:
    """Score ``payload`` (a stored answer) on ``question`` (or the config's primary question)."""
    q = question.primary_question if isinstance(question, StudyConfig) else question
    ref = reference(q, labels)
    truth = as_text(q, ref)
    if payload.get(UNGRADABLE):
        return Score(None, None, truth, ungradable=True)
    value = payload.get(q.id)
    answer = as_text(q, value)
    if ref is None or value is None:
        return Score(None, answer, truth)
    if q.kind == "multi_choice":
        return Score(int(sorted(set(value)) == sorted(ref)), answer, truth)
    if q.kind == "ordinal":
        keys = q.keys
        if value not in keys:
            return Score(None, answer, truth)
        a, t = keys.index(value), keys.index(ref)
        return Score(int(a == t), answer, truth, distance=abs(a - t), answer_grade=a, truth_grade=t)
    return Score(int(value == ref), answer, truth)


__all__ = ["Score", "as_text", "reference", "reference_label", "score"]
