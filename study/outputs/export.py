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

Studies with their own ``[[question]]`` tables (``config.custom_questions``) export one ``q_<id>``
column per question (multi_choice joined with ';', booleans true/false) and ``ref_<id>`` for each
question with a reference; the legacy protocol keeps its column names (``primary_diagnosis``,
``findings``, ``confidence``, ``referral``). Both carry what the analysis reads: ``answer`` and
``truth`` (the primary question's answer and reference as text), ``correct`` (``study.domain.rules``;
empty for ungradable readings and cases without a reference), ``ungradable``, ``primary_question``
and ``primary_kind``, ``confidence`` where a 0-100 question with id ``confidence`` exists, and for
an ordinal primary ``answer_grade``, ``truth_grade`` (0-based option positions) and
``grade_distance``. ``ai_saliency_method`` names the saliency method of the overlay shown. ``patient`` is the case's patient
pseudonym from the manifest (empty when none was given): the analysis clusters on it when a patient has
several cases (two eyes).

The rules behind the columns are the study's (``study.domain.rules``): ``correct``, the AI's call
(``ai_top_suggestion``), ``ai_prob`` (the AI's probability that the case is abnormal), the output shown and
``is_latest``; ``fast_read`` is ``study.domain.flags.is_fast_read`` at the study's ``[monitor] fast_read_seconds``.
``level`` is categorical in the study's configured order (first = reference), so the table is the
analysis input as it is (``study.analysis.study_analysis``); no CSV round trip.

iMRMC for other primary kinds: ordinal uses the grade as the rating (an ordinal ROC scale) against
truth = reference grade >= the task's grade (task ``abnormal``: the second grade, i.e. any grade above
the lowest; or an option key); boolean uses truth = the reference and rating 50 +/- confidence/2 (or
100/0 without a confidence question); multi_choice has no per-case binary truth and is refused.
Ungradable readings are left out of the iMRMC file (the header says how many).

Hostile text (issue 11). The long CSV is opened in spreadsheets, which run a cell starting with ``=``,
``+``, ``-``, ``@``, tab or carriage return as a formula (``=HYPERLINK(...)`` in a case id, a level name,
the study name or a correction reason). :func:`csv_safe_table` applies OWASP's rule to every text cell:
such a cell gets a leading single quote (``'=HYPERLINK(...)``), and the file quotes every non-numeric
field (``csv.QUOTE_NONNUMERIC``). Numbers stay numbers: numeric columns are not touched, and a text cell
that is a plain decimal number (``-1.5``, ``+2``, ``-3e4``: a spreadsheet reads it as that number, never
as a formula) is kept as it is. Consequence: an analysis read back from the CSV (``study analyze``, the
HTML report) shows such a name with its leading quote. The Parquet export keeps the raw values: its
columns are typed, and no program evaluates a Parquet string as a formula. The iMRMC file's header is free
text; line breaks and other control characters in the study name, reader pseudonyms and case keys that
it lists are replaced by visible escapes (``\\x0a`` for a line feed), so no id can add a line (such as a second
``BEGIN DATA:``) to the file; its data lines hold only integers, the modality and the score, and a
modality (condition) with a comma, whitespace or control character is refused with a ValueError.
"""

from __future__ import annotations

import csv
import json
import re
import unicodedata
from pathlib import Path

import numpy as np
import pandas as pd
from sqlalchemy import select
from sqlalchemy.orm import Session

from study.domain import flags, rules
from study.domain.config import LEGACY_SALIENCY, NORMAL
from study.domain.studies import get_study, study_config
from study.storage.models import AIDED_CONDITIONS, Answer, Assignment, Case, Reader

FORMATS = ("csv", "parquet", "imrmc")


# OWASP CSV injection: cells starting with these are run as formulas by spreadsheets
FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
_PLAIN_NUMBER = re.compile(r"[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?")


def csv_safe(value):
    """One cell neutralised for spreadsheets (OWASP): a string starting with ``=``, ``+``, ``-``, ``@``, tab or
    carriage return gets a leading single quote, unless it is a plain decimal number (``-1.5``); anything
    that is not a string is returned unchanged."""
    if isinstance(value, str) and value[:1] in FORMULA_START and not _PLAIN_NUMBER.fullmatch(value):
        return "'" + value
    return value


def csv_safe_table(table: pd.DataFrame) -> pd.DataFrame:
    """A copy of ``table`` with :func:`csv_safe` applied to every text column (numeric, boolean and
    datetime columns are left as they are)."""
    out = table.copy()
    for col in out.columns:
        if not (pd.api.types.is_numeric_dtype(out[col]) or pd.api.types.is_bool_dtype(out[col])
                or pd.api.types.is_datetime64_any_dtype(out[col])):
            out[col] = out[col].map(csv_safe, na_action="ignore")
    return out


def write_csv(table: pd.DataFrame, out) -> None:
    """The CSV as every export writes it: text cells neutralised (:func:`csv_safe_table`), non-numeric
    fields quoted."""
    csv_safe_table(table).to_csv(out, index=False, quoting=csv.QUOTE_NONNUMERIC)


def _visible(text) -> str:
    """Free text for one header line of the iMRMC file: control characters and line separators become
    ``\\xNN`` / ``\\uNNNN`` escapes, so that the text stays on its line."""
    out = []
    for ch in str(text):
        if unicodedata.category(ch) in ("Cc", "Zl", "Zp"):
            out.append(f"\\x{ord(ch):02x}" if ord(ch) < 0x100 else f"\\u{ord(ch):04x}")
        else:
            out.append(ch)
    return "".join(out)


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


def _rating(answer_primary: str, answer_findings: str, confidence, task: str) -> float:
    conf = 50.0 if confidence is None or pd.isna(confidence) else float(confidence)
    if task == "abnormal":
        return 50 + conf / 2 if answer_primary != NORMAL else 50 - conf / 2
    if answer_primary == task:
        return 50 + conf / 2
    if task in (answer_findings or "").split(";"):
        return 50.0
    return 50 - conf / 2


def _binary_task(latest: pd.DataFrame, task: str) -> tuple[dict, pd.Series, str, str]:
    """(truth per case, rating per row, task description, score rule) for the primary question's kind."""
    kind = str(latest["primary_kind"].iloc[0]) if "primary_kind" in latest.columns else "single_choice"
    first = latest.drop_duplicates("case").set_index("case")
    conf = latest["confidence"] if "confidence" in latest.columns else pd.Series(None, index=latest.index)
    if kind == "ordinal":
        grades = {**dict(zip(latest["answer"], latest["answer_grade"])), **dict(zip(first["truth"], first["truth_grade"]))}
        grades = {str(k): int(v) for k, v in grades.items() if pd.notna(k) and pd.notna(v)}
        if task == "abnormal":
            cut, label = 1, "reference grade above the lowest"
        elif task in grades:
            cut, label = grades[task], f"reference grade >= {task}"
        else:
            raise ValueError(f"unknown task {task!r} for an ordinal primary question: use 'abnormal' or a grade "
                             f"({', '.join(sorted(grades, key=grades.get))})")
        truth = {c: int(first.at[c, "truth_grade"] >= cut) for c in first.index}
        return truth, latest["answer_grade"].astype(float), f"{task} (truth 1 = {label})", \
            "score = the reader's grade (0 = lowest option)"
    if kind == "boolean":
        if task != "abnormal":
            raise ValueError(f"a yes/no primary question has one task, 'abnormal' (the reference is yes), got {task!r}")
        truth = {c: int(str(first.at[c, "truth"]) == "true") for c in first.index}
        yes = latest["answer"].astype(str) == "true"
        c = conf.astype(float).fillna(100.0)
        return truth, pd.Series(np.where(yes, 50 + c / 2, 50 - c / 2), index=latest.index), \
            "abnormal (truth 1 = reference yes)", "score = 50 +/- confidence/2 by the yes/no answer (100/0 without confidence)"
    if kind == "multi_choice":
        raise ValueError("iMRMC needs one binary truth per case; a multi_choice primary question has none "
                         "(use the long CSV export)")
    if task != "abnormal" and f"truth_{task}" not in latest.columns:
        known = [c[len("truth_"):] for c in latest.columns if c.startswith("truth_") and c != "truth_findings"]
        raise ValueError(f"unknown task {task!r}: use 'abnormal' or a finding key ({', '.join(known)})")
    truth = {c: int(first.at[c, "truth"] != NORMAL) if task == "abnormal" else int(first.at[c, f"truth_{task}"])
             for c in first.index}
    found = latest["findings"] if "findings" in latest.columns else pd.Series("", index=latest.index)
    ratings = [_rating(a, f, cf, task) for a, f, cf in zip(latest["answer"], found, conf)]
    return truth, pd.Series(ratings, index=latest.index), \
        f"{task} (truth 1 = {'any finding' if task == 'abnormal' else task} in the reference)", \
        "score = 50 +/- confidence/2 (see study/outputs/export.py)"


def imrmc_text(table: pd.DataFrame, task: str = "abnormal", *, study: str = "") -> str:
    """An iMRMC input file for ``task`` from :func:`answers_table` output (latest versions only)."""
    if table.empty:
        raise ValueError("the study has no answers to export")
    latest = table[table["is_latest"]]
    if "answer" not in latest.columns:  # an older table: the legacy primary diagnosis
        latest = latest.assign(answer=latest["primary_diagnosis"])
    ungradable = latest["ungradable"].astype(bool) if "ungradable" in latest.columns else pd.Series(False, index=latest.index)
    skipped = int(ungradable.sum())
    latest = latest[~ungradable & latest["truth"].notna()]
    if latest.empty:
        raise ValueError("no gradable answers with a reference to export")
    truth, ratings, described, rule = _binary_task(latest, task)
    latest = latest.assign(score_=ratings)
    cases = sorted(latest["case"].unique())
    case_no = {c: i for i, c in enumerate(cases, start=1)}
    readers = sorted(latest["reader"].unique())
    reader_no = {r: i for i, r in enumerate(readers, start=1)}
    modalities = sorted(latest["condition"].unique())
    for m in modalities:
        if not str(m) or any(ch == "," or ch.isspace() or unicodedata.category(ch) in ("Cc", "Zl", "Zp")
                             for ch in str(m)):
            raise ValueError(f"condition {_visible(m)!r} cannot be an iMRMC modality ID (no commas, spaces or "
                             "control characters); rename the study's arms")
    n1 = sum(truth[c] for c in cases)
    lines = [f"iMRMC input exported by the ReVision reader study tools; study: {_visible(study)}",
             f"task: {_visible(described)}; {rule}"
             + (f"; {skipped} ungradable reading(s) left out" if skipped else ""),
             "readers (ID = pseudonym): " + ", ".join(f"{reader_no[r]}={_visible(r)}" for r in readers),
             "cases (ID = case key): " + ", ".join(f"{case_no[c]}={_visible(c)}" for c in cases),
             "", f"NR: {len(readers)}", f"N0: {len(cases) - n1}", f"N1: {n1}", f"NM: {len(modalities)}", "",
             "BEGIN DATA:"]
    lines += [f"-1,{case_no[c]},0,{truth[c]}" for c in cases]
    for row in latest.sort_values(["reader", "condition", "case"]).itertuples(index=False):
        lines.append(f"{reader_no[row.reader]},{case_no[row.case]},{row.condition},{row.score_:g}")
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
        write_csv(table, out)  # text cells neutralised for spreadsheets (module docstring)
        return len(table)
    if fmt == "parquet":
        table.to_parquet(out, index=False)  # raw values: typed columns, nothing is run as a formula
        return len(table)
    text = imrmc_text(table, task, study=study.name)
    out.write_text(text, encoding="utf-8")
    return int(table["is_latest"].sum())
