"""The study's rules, in one place: what is correct, the AI's call, the AI output a reader was shown, the
latest answer version and progress.

Why one home: the export, the analysis, the monitor, the status command, the simulator and the reading
workflow each used to carry their own copy of these rules, and the copies drifted (the monitor and the
analysis counted different answers as correct). Everything that needs one of them calls it here. Scoring a
payload lives in :mod:`study.domain.scoring` (question kinds, references); this module re-exports it as the
study's rule so callers need one import.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from study.domain.config import NORMAL
from study.domain.scoring import Score, as_text, reference, reference_label, score
from study.storage.models import AIOutput, Answer, Assignment, Case

AI_POSITIVE = 0.5  # a finding probability at or above this makes it the AI's call


# --- what is correct ------------------------------------------------------------------------------

def truth_of(labels: dict | None) -> tuple[str, list[str]]:
    """(reference primary diagnosis, reference findings) from a case's stored labels."""
    primary = reference_label(labels)
    findings = list((labels or {}).get("findings") or ([] if primary == NORMAL else [primary]))
    return primary, findings


def call_is_correct(call: str, findings: set[str] | list[str]) -> bool:
    """A single top call (a visitor's in the mini study, or the model's) against a case's findings: right
    when it names one of them, or ``normal`` for a case with none."""
    return call == NORMAL if not findings else call in findings


# --- the AI's call from stored probabilities ------------------------------------------------------

def ai_call(probabilities: dict[str, float] | None, threshold: float = AI_POSITIVE) -> tuple[str, float]:
    """The AI's top suggestion and its probability: the most probable finding (ties: first by name), or
    ``normal`` with 1 - that probability when no finding reaches ``threshold``."""
    if not probabilities:
        return NORMAL, 0.5
    key = ranked_findings(probabilities)[0]
    p = float(probabilities[key])
    return (key, p) if p >= threshold else (NORMAL, 1.0 - p)


def ranked_findings(probabilities: dict[str, float]) -> list[str]:
    """Findings from the most to the least probable (ties: first by name): the order the AI panel lists
    them in and the order saliency explains them in."""
    return sorted(probabilities, key=lambda k: (-float(probabilities[k]), k))


def p_abnormal(probabilities: dict[str, float] | None, normal_label: str = NORMAL) -> float | None:
    """The AI's probability that the case is abnormal: 1 - P(normal) when the model gives one, else the
    highest finding probability (the case is abnormal when its top finding is, as :func:`ai_call` says)."""
    if not probabilities:
        return None
    if normal_label in probabilities:
        return 1.0 - float(probabilities[normal_label])
    return max(float(v) for v in probabilities.values())


# --- the AI output a reader is shown ----------------------------------------------------------------

def _shown_query(model_version: str | None):
    query = select(AIOutput)
    return query.where(AIOutput.model_version == model_version) if model_version else query


def shown_ai_output(session: Session, model_version: str | None, case_id: int) -> AIOutput | None:
    """The AI output an aided reader sees for a case: the newest one of the study's model version (any
    version when the study pins none); None when it has not been computed."""
    query = _shown_query(model_version).where(AIOutput.case_id == case_id)
    return session.scalar(query.order_by(AIOutput.created_at.desc(), AIOutput.id.desc()).limit(1))


def study_ai_output(session: Session, model_version: str | None, study_id: int) -> AIOutput | None:
    """The newest AI output of the study's model version over all its cases (the model card the report
    names); None before precompute."""
    query = _shown_query(model_version).join(Case, Case.id == AIOutput.case_id).where(Case.study_id == study_id)
    return session.scalar(query.order_by(AIOutput.created_at.desc(), AIOutput.id.desc()).limit(1))


def shown_ai_outputs(session: Session, model_version: str | None, case_ids) -> dict[int, AIOutput]:
    """:func:`shown_ai_output` for many cases in one query."""
    query = _shown_query(model_version).where(AIOutput.case_id.in_(set(case_ids)))
    out: dict[int, AIOutput] = {}
    for row in session.scalars(query.order_by(AIOutput.created_at, AIOutput.id)):
        out[row.case_id] = row  # later rows win: the newest
    return out


# --- the latest answer version --------------------------------------------------------------------

def latest_versions(pairs) -> dict:
    """{assignment: highest version} from (assignment, version) pairs: the version analysis uses."""
    latest: dict = {}
    for assignment, version in pairs:
        if version > latest.get(assignment, 0):
            latest[assignment] = version
    return latest


def latest_answer(session: Session, assignment_id: int) -> Answer | None:
    """The latest version of an assignment's answer (None when unanswered)."""
    return session.scalar(select(Answer).where(Answer.assignment_id == assignment_id)
                          .order_by(Answer.version.desc()).limit(1))


def latest_version_subquery():
    """SQL: (assignment_id, v = highest version) per answered assignment, to join answers on."""
    return (select(Answer.assignment_id, func.max(Answer.version).label("v"))
            .group_by(Answer.assignment_id).subquery())


# --- progress ------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Progress:
    """Readings done (assignments with at least one answer) of the total assigned."""
    done: int
    total: int

    @property
    def complete(self) -> bool:
        return self.total > 0 and self.done >= self.total


def progress_by(session: Session, *, study_id: int | None = None, reader_id: int | None = None,
                by_session: bool = False) -> dict:
    """Progress per reader id (or per (reader id, session) with ``by_session``) of a study or one reader.
    An assignment counts as done once any version of its answer exists."""
    answered = select(Answer.assignment_id).distinct().subquery()
    keys = [Assignment.reader_id] + ([Assignment.session] if by_session else [])
    query = (select(*keys, func.count(Assignment.id), func.count(answered.c.assignment_id))
             .select_from(Assignment).outerjoin(answered, answered.c.assignment_id == Assignment.id)
             .group_by(*keys))
    if study_id is not None:
        query = query.where(Assignment.study_id == study_id)
    if reader_id is not None:
        query = query.where(Assignment.reader_id == reader_id)
    out = {}
    for row in session.execute(query):
        key = tuple(row[:len(keys)]) if by_session else row[0]
        out[key] = Progress(int(row[-1] or 0), int(row[-2] or 0))
    return out


def reader_progress(session: Session, reader_id: int) -> Progress:
    """One reader's progress (0 of 0 for a reader without assignments)."""
    return progress_by(session, reader_id=reader_id).get(reader_id, Progress(0, 0))


__all__ = ["AI_POSITIVE", "Progress", "Score", "ai_call", "as_text", "call_is_correct",
           "latest_answer", "latest_version_subquery", "latest_versions", "p_abnormal", "progress_by", "ranked_findings",
           "reader_progress", "reference", "reference_label", "score", "shown_ai_output", "shown_ai_outputs",
           "study_ai_output", "truth_of"]
