"""Exports: every answer version exactly once, correct against truth, no AI on unaided rows, iMRMC parses."""

from __future__ import annotations

import json

import pandas as pd
from sqlalchemy import select

from study.domain import workflow
from study.cli import main
from study.outputs.export import answers_table, export
from study.storage.models import Answer, Assignment
from study.jobs.simulate_readers import simulate
from tests.study.test_study_simulate import seed_study
from testsupport.studies import committed


def parse_imrmc(text: str) -> tuple[dict, dict, list]:
    """Header counts, case truth and reader rows of an iMRMC input file."""
    head, _, data = text.partition("BEGIN DATA:\n")
    counts = {k: int(v) for k, v in (line.split(":", 1) for line in head.splitlines()
                                      if line.split(":")[0] in ("NR", "N0", "N1", "NM"))}
    truth, rows = {}, []
    for line in data.strip().splitlines():
        reader, case, modality, score = line.split(",")
        if reader == "-1":
            assert modality == "0" and score in ("0", "1")
            truth[int(case)] = int(score)
        else:
            rows.append((int(reader), int(case), modality, float(score)))
    return counts, truth, rows


def _study_with_corrections(Session):
    # unaided answers stay open to corrections after the AI-assisted readings began (the study says so)
    sid = seed_study(Session, n_cases=6, ai_accuracy=0.9, name="Export", unaided_corrections_after_ai=True)
    simulate(Session, sid, 3, seed=2)
    with Session() as s:
        # correct two unaided session-1 answers
        answers = list(s.scalars(select(Answer).join(Assignment).where(Assignment.condition == "unaided")
                                 .order_by(Answer.id).limit(2)))
        for ans in answers:
            new = dict(ans.payload)
            new["primary_diagnosis"] = "normal" if ans.payload["primary_diagnosis"] != "normal" else "amd"
            new["confidence"] = 33
            committed(workflow.correct, s, ans.reader_id, ans.id, new, "typo in the first answer")
    return sid, [a.id for a in answers]


def test_csv_has_every_version_once_and_correct_matches_truth(Session, tmp_path):
    sid, corrected = _study_with_corrections(Session)
    out = tmp_path / "answers.csv"
    with Session() as s:
        n = export(s, sid, "csv", out)
        stored = {(a.id, a.version) for a in s.scalars(select(Answer))}
    df = pd.read_csv(out)
    assert n == len(df) == len(stored) == 3 * 6 * 2 + 2
    assert set(zip(df.answer_id, df.version)) == stored  # each version exactly once
    assert not df.duplicated(["answer_id"]).any()
    latest = df[df.is_latest]
    assert len(latest) == 3 * 6 * 2 and not latest.duplicated(["reader", "case", "condition"]).any()
    v2 = df[df.version == 2]
    assert len(v2) == 2 and (v2.correction_reason == "typo in the first answer").all() and v2.is_latest.all()
    assert (~df[df.answer_id.isin(corrected)].is_latest).all()
    assert (df.correct == (df.primary_diagnosis == df.truth).astype(int)).all()
    assert df.correct.nunique() == 2  # the check is not vacuous
    assert ((df.truth == "normal") == (df.truth_findings.fillna("") == "")).all()


def test_unaided_rows_carry_no_ai_and_aided_rows_the_ai_shown(Session, tmp_path):
    sid, _ = _study_with_corrections(Session)
    with Session() as s:
        df = answers_table(s, sid)
    ai_cols = ["ai_model_version", "ai_top_suggestion", "ai_top_probability", "ai_probabilities"]
    unaided, aided = df[df.condition == "unaided"], df[df.condition == "ai"]
    assert len(unaided) and len(aided)
    assert unaided[ai_cols].isna().all().all() and not unaided.ai_saliency_shown.any()
    assert aided[ai_cols].notna().all().all()
    probs = aided.ai_probabilities.map(json.loads)
    top = probs.map(lambda p: max(p.values()))
    expected = top.where(aided.ai_top_suggestion != "normal", 1 - top)
    assert (aided.ai_top_probability - expected).abs().max() < 1e-12
    assert (aided.ai_top_suggestion == probs.map(lambda p: max(p, key=p.get) if max(p.values()) >= 0.5
                                                 else "normal")).all()
    # the analysis columns: P(abnormal) by study.domain.rules, unaided rows none; levels in the study's order
    assert (aided.ai_prob - top).abs().max() < 1e-12 and unaided.ai_prob.isna().all()
    assert list(df.level.cat.categories) == ["junior", "intermediate", "senior"]


def test_fast_read_column_is_the_flag_rule(make_study, Session):
    from datetime import datetime, timedelta, timezone

    from study.domain import flags
    from testsupport.studies import VALID_ANSWER

    sid, _, codes = make_study("sequential", n_cases=2, n_readers=1)  # 4 readings, no washout
    reader_id = next(iter(codes))
    t0 = datetime(2026, 3, 1, 9, 0, tzinfo=timezone.utc)
    with Session() as s:
        for k, seconds in enumerate([1.0, 2.999, 3.0, 40.0]):
            item = committed(workflow.next_item, s, reader_id, now=t0 + timedelta(minutes=k))
            committed(workflow.submit, s, reader_id, item.assignment_id, VALID_ANSWER, f"k{k}",
                            now=t0 + timedelta(minutes=k, seconds=seconds))
        df = answers_table(s, sid)
    assert df.seconds.round(3).tolist() == [1.0, 2.999, 3.0, 40.0]
    assert df.fast_read.tolist() == [True, True, False, False]  # under [monitor] fast_read_seconds (3 s)
    assert (df.fast_read == df.seconds.map(lambda x: flags.is_fast_read(x, 3.0))).all()


def test_parquet_is_the_same_table(Session, tmp_path):
    sid, _ = _study_with_corrections(Session)
    with Session() as s:
        export(s, sid, "csv", tmp_path / "a.csv")
        export(s, sid, "parquet", tmp_path / "a.parquet")
    a, b = pd.read_csv(tmp_path / "a.csv"), pd.read_parquet(tmp_path / "a.parquet")
    assert list(a.columns) == list(b.columns) and len(a) == len(b)
    assert (a.answer_id.to_numpy() == b.answer_id.to_numpy()).all()
    assert (a.confidence.to_numpy() == b.confidence.astype(int).to_numpy()).all()


def test_imrmc_file_parses_back_with_the_right_counts(Session, tmp_path):
    sid, corrected = _study_with_corrections(Session)
    out = tmp_path / "study.imrmc"
    with Session() as s:
        export(s, sid, "imrmc", out)
        table = answers_table(s, sid)
    counts, truth, rows = parse_imrmc(out.read_text())
    latest = table[table.is_latest]
    n_abnormal = latest.drop_duplicates("case").truth.ne("normal").sum()
    assert counts == {"NR": 3, "N0": 6 - n_abnormal, "N1": n_abnormal, "NM": 2}
    assert len(truth) == 6 and sum(truth.values()) == n_abnormal
    assert len(rows) == 3 * 6 * 2 and len(set(r[:3] for r in rows)) == len(rows)
    assert {r[2] for r in rows} == {"unaided", "ai"} and all(0 <= r[3] <= 100 for r in rows)
    # the corrected answers appear with their latest rating (confidence 33 -> 50 +/- 16.5)
    fixed = table[table.answer_id.isin(corrected)]
    assert len(fixed) == 2
    assert sum(1 for r in rows if r[3] in (66.5, 33.5)) >= 2


def test_cli_export(Session, db_url, tmp_path, capsys):
    sid, _ = _study_with_corrections(Session)
    out = tmp_path / "x.csv"
    assert main(["export", "--db", db_url, "--study", "Export", "--format", "csv", "--out", str(out)]) == 0
    assert len(pd.read_csv(out)) == 3 * 6 * 2 + 2
    assert main(["export", "--db", db_url, "--study", "Export", "--format", "imrmc", "--task", "nope",
                 "--out", str(tmp_path / "y.imrmc")]) == 2
    assert "unknown task" in capsys.readouterr().err


def test_a_page_download_is_audited_and_the_report_csv_is_not(Session):
    """analysis.export_bytes with an actor records who took which file (format, size, sha256); without one
    (the HTML report's internal CSV) it writes nothing."""
    import hashlib

    from study.storage.models import AuditEvent
    from study.services.analysis import export_bytes

    sid = seed_study(Session, n_cases=4, ai_accuracy=0.9, name="Audited export")
    simulate(Session, sid, 2, seed=3)
    export_bytes(Session, sid, "csv")
    data = export_bytes(Session, sid, "parquet", actor="investigator:lead")
    with Session() as s:
        events = s.scalars(select(AuditEvent).where(AuditEvent.action == "study.exported")).all()
    assert [(e.actor, e.entity_id, e.after) for e in events] == [
        ("investigator:lead", str(sid), {"format": "parquet", "file": {"sha256": hashlib.sha256(data).hexdigest(),
                                                                        "bytes": len(data)}})]
