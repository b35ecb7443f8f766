"""What the analysis of a study reads from its database: the answers table, the study's settings (level
order, fast-read threshold) and context (name, design, dates, model card, readings assigned per reader).

Why one function: the app and ``python -m study analyze --db`` must start from the same inputs with the
same settings, so both call :func:`analyze_study`; only the cut-off and, for the CLI, explicit overrides
differ, and only when the investigator asks.
"""

from __future__ import annotations

from dataclasses import replace

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from study.analysis.study_analysis import DEFAULTS, Cutoff, Settings, analyze
from study.analysis.summary import condition_name
from study.domain.rules import study_ai_output
from study.domain.studies import get_study, study_config
from study.domain.answers import answers_table
from study.storage.models import Assignment, Reader

__all__ = ["analyze_study", "study_context", "study_settings"]


def study_settings(config, cutoff: Cutoff = Cutoff(), **overrides) -> Settings:
    """:data:`DEFAULTS` with the study's level order and fast-read threshold, the cut-off and ``overrides``
    (n_boot, seed, alpha, ...; None values are ignored)."""
    base = replace(DEFAULTS, level_order=tuple(lv.name for lv in config.levels),
                   fast_read_seconds=config.fast_read_seconds, cutoff=cutoff)
    return replace(base, **{k: v for k, v in overrides.items() if v is not None})


def _design_text(config) -> str:
    d = config.design
    text = d.type.replace("_", "-")
    if d.type == "crossover":
        text += f", washout {d.washout_days} days"

    return text + f"; conditions: {', '.join(condition_name(c) for c in d.conditions)}"


def study_context(session: Session, study) -> tuple[dict, dict[str, int]]:
    """(study facts for the report, readings assigned per reader pseudonym)."""

    config = study_config(study)
    ai = study_ai_output(session, study.model_version, study.id)
    primary = config.primary_question
    labels = {str(k): str(v) for k, v in (primary.options or ())}
    assigned = dict(session.execute(select(Reader.pseudonym, func.count(Assignment.id))
                                    .join(Assignment, Assignment.reader_id == Reader.id)
                                    .where(Reader.study_id == study.id).group_by(Reader.pseudonym)).all())
    facts = {"name": study.name, "design": study.design, "design_text": _design_text(config), "seed": study.seed,
             "created_at": study.created_at.isoformat() if study.created_at else None,
             "locked_at": study.design_locked_at.isoformat() if study.design_locked_at else None,
             "model_version": study.model_version, "model_card": dict(ai.model_card) if ai else None,
             "primary_question": primary.id, "labels": labels, "levels": [lv.name for lv in config.levels],
             "fast_read_seconds": config.fast_read_seconds}
    return facts, {str(k): int(v) for k, v in assigned.items()}


def analyze_study(session: Session, study_id: int | str, cutoff: Cutoff = Cutoff(), **overrides) -> dict:
    """The results object of a study (``study_analysis.analyze`` on its answers table, with its settings)."""

    study = get_study(session, study_id)
    answers = answers_table(session, study.id)
    if answers.empty:
        raise ValueError(f"study {study.name!r} has no answers yet")
    facts, assigned = study_context(session, study)
    settings = study_settings(study_config(study), cutoff, **overrides)
    return analyze(answers, settings, study=facts, assigned=assigned)
