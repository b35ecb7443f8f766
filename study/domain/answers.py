"""The study's answers as one long table: every stored answer version with its reader, case, condition, the
reference, the AI output the reader was shown and the columns the analysis reads (the schema is described in
``study.outputs.export``, which writes this table to files).

Why here and not in the export: the analysis reads this table straight from the database
(``study.analysis.study_inputs``), and the analysis sits below the outputs; both call this one query.
"""

from __future__ import annotations

import json

import pandas as pd
from sqlalchemy import select
from sqlalchemy.orm import Session

from study.domain import flags, rules
from study.domain.config import LEGACY_SALIENCY
from study.domain.studies import get_study, study_config
from study.storage.models import AIDED_CONDITIONS, Answer, Assignment, Case, Reader


def _confidence_question(config) -> str | None:
    """The question id whose answers are a 0-100 confidence (for the ``confidence`` column), if any."""
    for q in config.questions:
        if q.id == "confidence" and q.kind in ("integer", "number") and (q.minimum or 0) >= 0 and (
                q.maximum is not None and q.maximum <= 100):
            return q.id
    return None


def answers_table(session: Session, study_id: int | str) -> pd.DataFrame:
    """Every stored answer version of the study as one long table (see the module docstring)."""
    study = get_study(session, study_id)
    config = study_config(study)
    primary_q = config.primary_question
    custom = config.custom_questions
    conf_id = _confidence_question(config)
    rows = session.execute(
        select(Answer, Assignment, Reader, Case)
        .join(Assignment, Answer.assignment_id == Assignment.id)
        .join(Reader, Answer.reader_id == Reader.id)
        .join(Case, Assignment.case_id == Case.id)
        .where(Assignment.study_id == study.id)
        .order_by(Reader.pseudonym, Assignment.session, Assignment.position, Answer.version)).all()
    latest = rules.latest_versions((a.id, ans.version) for ans, a, _r, _c in rows)
    ai = rules.shown_ai_outputs(session, study.model_version, {c.id for _, _, _, c in rows})
    out = []
    for ans, a, r, c in rows:
        p = ans.payload
        sc = rules.score(primary_q, c.reference_labels, p)
        seconds = flags.reading_seconds(ans.shown_at, ans.submitted_at)
        shown = ai.get(c.id) if a.condition in AIDED_CONDITIONS else None
        top, top_p = rules.ai_call(shown.probabilities) if shown else (None, None)
        saliency_shown = bool(shown is not None and a.condition == "ai_saliency"
                              and (shown.saliency_png or shown.saliency_path or shown.overlays))
        row = {"study": study.name, "reader": r.pseudonym, "level": r.level, "years": r.years_experience,
               "case": c.case_key, "patient": c.patient_pseudonym, "truth": sc.truth}
        if custom:
            row |= {"condition": a.condition, "session": a.session, "position": a.position, "step": a.step,
                    "ungradable": sc.ungradable, "answer": sc.answer, "correct": sc.correct}
            if primary_q.kind == "ordinal":
                row |= {"answer_grade": sc.answer_grade, "truth_grade": sc.truth_grade,
                        "grade_distance": sc.distance}
            if conf_id:
                row["confidence"] = p.get(conf_id)
            for q in config.questions:
                row[f"q_{q.id}"] = rules.as_text(q, p.get(q.id))
            for q in config.questions:
                if q.truth:
                    row[f"ref_{q.id}"] = rules.as_text(q, rules.reference(q, c.reference_labels))
        else:
            primary, findings = rules.truth_of(c.reference_labels)
            row |= {"truth_findings": ";".join(findings),
                    **{f"truth_{f}": int(f in findings) for f in config.findings},
                    "condition": a.condition, "session": a.session, "position": a.position, "step": a.step,
                    "primary_diagnosis": p.get("primary_diagnosis"), "findings": ";".join(p.get("findings") or []),
                    "confidence": p.get("confidence"), "referral": p.get("referral"), "correct": sc.correct}
        row |= {
            "version": ans.version, "is_latest": ans.version == latest[a.id], "correction_reason": ans.reason,
            "ai_model_version": shown.model_version if shown else None,
            "ai_top_suggestion": top, "ai_top_probability": top_p,
            "ai_probabilities": json.dumps(shown.probabilities, sort_keys=True) if shown else None,
            "ai_saliency_shown": saliency_shown,
            "ai_saliency_method": (shown.model_card.get("saliency") or {}).get("method", LEGACY_SALIENCY)
            if saliency_shown else None,
            "shown_at": ans.shown_at.isoformat() if ans.shown_at else None,
            "submitted_at": ans.submitted_at.isoformat(),
            "seconds": seconds,
            "fast_read": flags.is_fast_read(seconds, config.fast_read_seconds),
            "ai_prob": rules.p_abnormal(shown.probabilities) if shown else None,
            "answer_id": ans.id, "assignment_id": a.id,
        }
        if not custom:
            row |= {"answer": sc.answer, "ungradable": sc.ungradable}
        row |= {"primary_question": primary_q.id, "primary_kind": primary_q.kind}
        out.append(row)
    columns = list(out[0]) if out else ["study", "reader", "level", "years", "case", "patient", "truth", "condition",
                                         "correct", "version", "is_latest", "answer", "ungradable"]
    df = pd.DataFrame(out, columns=columns)
    if not df.empty:
        df["correct"] = df["correct"].astype("Int64")
        for col in ("confidence", "answer_grade", "truth_grade", "grade_distance"):
            if col in df.columns and pd.to_numeric(df[col], errors="coerce").notna().eq(df[col].notna()).all():
                df[col] = pd.to_numeric(df[col]).astype("Int64")
        if "referral" in df.columns:
            df["referral"] = df["referral"].astype("boolean")
        df["ungradable"] = df["ungradable"].astype(bool)
        order = [lv.name for lv in config.levels]
        df["level"] = pd.Categorical(df["level"], categories=order + sorted(set(df["level"]) - set(order)))
    df.attrs["level_order"] = [lv.name for lv in config.levels]
    return df
