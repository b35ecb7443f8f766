"""Exports of a study's answers: the long analysis table (CSV / Parquet) and an iMRMC input file.

Why one long table with every answer version: nothing a reader entered is hidden from the analyst.
Each row is one stored answer version (reader x case x condition x version); ``is_latest`` marks the
version analysis must use, and ``correct`` is computed from the primary diagnosis against the case's
reference label. The AI columns describe exactly the output the reader was shown (the study's model
version, as the workflow picks it) and are empty for unaided readings.

iMRMC (the FDA's MRMC program) needs one binary truth per case and a rating per reader x case x
modality. "Primary diagnosis == reference" is a per-reading outcome, not a per-case truth, so it
cannot be an ROC task; instead the export uses a per-case binary task and turns each reader's
answer and 0-100 confidence into a rating of how sure the reader is that the case is positive:

- task ``abnormal`` (default): truth 1 = any finding in the reference (reference label != normal);
  rating = 50 + confidence / 2 if the reader's primary diagnosis is not ``normal``, else
  50 - confidence / 2.
- task ``<finding key>``: truth 1 = that finding in the reference; rating = 50 + confidence / 2 if
  the reader's primary diagnosis is that finding, 50 if they listed it only among findings,
  else 50 - confidence / 2.

Only the latest version of each answer goes into the iMRMC file. The file is: free-text header
lines, ``NR``/``N0``/``N1``/``NM`` counts, ``BEGIN DATA:``, then one ``-1,caseID,0,truth`` line per
case and ``readerID,caseID,modalityID,score`` lines. Case IDs are integers 1..K (iMRMC readers such as
RJafroc require integers); the header lists which case key each number stands for.
"""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
from sqlalchemy import select
from sqlalchemy.orm import Session

from study.config import NORMAL
from study.models import AIDED_CONDITIONS, AIOutput, Answer, Assignment, Case, Reader
from study.simulate import ai_top
from study.studies import get_study, study_config

FORMATS = ("csv", "parquet", "imrmc")


def truth_of(labels: dict) -> tuple[str, list[str]]:
    """(reference primary diagnosis, reference findings) from a case's stored labels."""
    primary = labels.get("label") or labels.get("primary") or NORMAL
    findings = list(labels.get("findings") or ([] if primary == NORMAL else [primary]))
    return primary, findings


def _shown_ai(session: Session, case_ids: set[int], model_version: str | None) -> dict[int, AIOutput]:
    """The AI output the workflow shows for each case (same rule as ``workflow._ai_output``)."""
    query = select(AIOutput).where(AIOutput.case_id.in_(case_ids))
    if model_version:
        query = query.where(AIOutput.model_version == model_version)
    out: dict[int, AIOutput] = {}
    for row in session.scalars(query.order_by(AIOutput.created_at, AIOutput.id)):
        out[row.case_id] = row  # later rows win: the newest, as the workflow picks
    return out


def answers_table(session: Session, study_id: int | str) -> pd.DataFrame:
    """Every stored answer version of the study as one long table (see the module docstring)."""
    study = get_study(session, study_id)
    config = study_config(study)
    rows = session.execute(
        select(Answer, Assignment, Reader, Case)
        .join(Assignment, Answer.assignment_id == Assignment.id)
        .join(Reader, Answer.reader_id == Reader.id)
        .join(Case, Assignment.case_id == Case.id)
        .where(Assignment.study_id == study.id)
        .order_by(Reader.pseudonym, Assignment.session, Assignment.position, Answer.version)).all()
    latest: dict[int, int] = {}
    for ans, a, _r, _c in rows:
        latest[a.id] = max(latest.get(a.id, 0), ans.version)
    ai = _shown_ai(session, {c.id for _, _, _, c in rows}, study.model_version)
    out = []
    for ans, a, r, c in rows:
        primary, findings = truth_of(c.reference_labels)
        p = ans.payload
        shown = ai.get(c.id) if a.condition in AIDED_CONDITIONS else None
        top, top_p = ai_top(shown.probabilities) if shown else (None, None)
        row = {
            "study": study.name, "reader": r.pseudonym, "level": r.level, "years": r.years_experience,
            "case": c.case_key, "truth": primary, "truth_findings": ";".join(findings),
            **{f"truth_{f}": int(f in findings) for f in config.findings},
            "condition": a.condition, "session": a.session, "position": a.position, "step": a.step,
            "primary_diagnosis": p.get("primary_diagnosis"), "findings": ";".join(p.get("findings") or []),
            "confidence": p.get("confidence"), "referral": p.get("referral"),
            "correct": int(p.get("primary_diagnosis") == primary),
            "version": ans.version, "is_latest": ans.version == latest[a.id], "correction_reason": ans.reason,
            "ai_model_version": shown.model_version if shown else None,
            "ai_top_suggestion": top, "ai_top_probability": top_p,
            "ai_probabilities": json.dumps(shown.probabilities, sort_keys=True) if shown else None,
            "ai_saliency_shown": bool(shown is not None and a.condition == "ai_saliency"
                                      and (shown.saliency_png or shown.saliency_path)),
            "shown_at": ans.shown_at.isoformat() if ans.shown_at else None,
            "submitted_at": ans.submitted_at.isoformat(),
            "seconds": (ans.submitted_at - ans.shown_at).total_seconds() if ans.shown_at else None,
            "answer_id": ans.id, "assignment_id": a.id,
        }
        out.append(row)
    columns = list(out[0]) if out else ["study", "reader", "level", "years", "case", "truth", "condition",
                                         "correct", "version", "is_latest"]
    df = pd.DataFrame(out, columns=columns)
    if not df.empty:
        df["confidence"] = df["confidence"].astype("Int64")
        df["referral"] = df["referral"].astype("boolean")
    return df


def _rating(answer_primary: str, answer_findings: str, confidence, task: str) -> float:
    conf = 50.0 if confidence is None or pd.isna(confidence) else float(confidence)
    if task == "abnormal":
        return 50 + conf / 2 if answer_primary != NORMAL else 50 - conf / 2
    if answer_primary == task:
        return 50 + conf / 2
    if task in (answer_findings or "").split(";"):
        return 50.0
    return 50 - conf / 2


def imrmc_text(table: pd.DataFrame, task: str = "abnormal", *, study: str = "") -> str:
    """An iMRMC input file for ``task`` from :func:`answers_table` output (latest versions only)."""
    if table.empty:
        raise ValueError("the study has no answers to export")
    latest = table[table["is_latest"]]
    if task != "abnormal" and f"truth_{task}" not in latest.columns:
        known = [c[len("truth_"):] for c in latest.columns if c.startswith("truth_") and c != "truth_findings"]
        raise ValueError(f"unknown task {task!r}: use 'abnormal' or a finding key ({', '.join(known)})")
    cases = sorted(latest["case"].unique())
    case_no = {c: i for i, c in enumerate(cases, start=1)}
    readers = sorted(latest["reader"].unique())
    reader_no = {r: i for i, r in enumerate(readers, start=1)}
    first = latest.drop_duplicates("case").set_index("case")
    truth = {c: int(first.at[c, "truth"] != NORMAL) if task == "abnormal" else int(first.at[c, f"truth_{task}"])
             for c in cases}
    modalities = sorted(latest["condition"].unique())
    n1 = sum(truth.values())
    lines = [f"iMRMC input exported by the ReVision reader study tools; study: {study}",
             f"task: {task} (truth 1 = {'any finding' if task == 'abnormal' else task} in the reference); "
             "score = 50 +/- confidence/2 (see study/export.py)",
             "readers (ID = pseudonym): " + ", ".join(f"{reader_no[r]}={r}" for r in readers),
             "cases (ID = case key): " + ", ".join(f"{case_no[c]}={c}" for c in cases),
             "", f"NR: {len(readers)}", f"N0: {len(cases) - n1}", f"N1: {n1}", f"NM: {len(modalities)}", "",
             "BEGIN DATA:"]
    lines += [f"-1,{case_no[c]},0,{truth[c]}" for c in cases]
    for row in latest.sort_values(["reader", "condition", "case"]).itertuples(index=False):
        score = _rating(row.primary_diagnosis, row.findings, row.confidence, task)
        lines.append(f"{reader_no[row.reader]},{case_no[row.case]},{row.condition},{score:g}")
    return "\n".join(lines) + "\n"


def export(session: Session, study_id: int | str, fmt: str, out: str | Path, *, task: str = "abnormal") -> int:
    """Write the export to ``out``; returns the number of data rows written."""
    if fmt not in FORMATS:
        raise ValueError(f"format must be one of {', '.join(FORMATS)}, got {fmt!r}")
    study = get_study(session, study_id)
    table = answers_table(session, study.id)
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    if fmt == "csv":
        table.to_csv(out, index=False)
        return len(table)
    if fmt == "parquet":
        table.to_parquet(out, index=False)
        return len(table)
    text = imrmc_text(table, task, study=study.name)
    out.write_text(text, encoding="utf-8")
    return int(table["is_latest"].sum())
