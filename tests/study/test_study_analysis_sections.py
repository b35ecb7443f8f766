"""The analysis sections of issue 14 in the one study analysis: MRMC of sensitivity and specificity, the
sizing grid from the study's own AUC MRMC, ordinal agreement (QWK), and patients with two eyes (the GLMM nests
cases in patients, the MRMC jackknife and the agreement bootstrap leave out whole patients). Each section
states its population; the report and the Methods describe them."""

from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path

import pytest
from sqlalchemy import select

from study.analysis.study_analysis import MORE_SECTIONS
from study.analysis.study_inputs import analyze_study
from study.domain.answers import answers_table
from study.storage.models import Case, Reader
from study.outputs.report import render_html
from study.jobs.simulate_readers import answer_all, simulate
from tests.study.test_study_questions import dr_study

SQLITE = pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
START = datetime(2026, 3, 2, 9, 0, tzinfo=timezone.utc)
ROOT = Path(__file__).resolve().parents[2]
POP = {"readers", "cases", "readings", "excluded"}


def _answered(make_study, Session, *, two_eyes: bool) -> int:
    """A crossover of 12 cases and 4 readers, everyone finished; with ``two_eyes`` the cases are the two eyes
    of 6 patients."""
    sid, case_ids, _ = make_study("crossover", n_cases=12, n_readers=4, years=(2, 15), name="Sections")
    with Session() as s:
        if two_eyes:
            for i, cid in enumerate(case_ids):
                s.get(Case, cid).patient_pseudonym = f"P{i // 2:02d}"
            s.commit()
        pseudonyms = list(s.scalars(select(Reader.pseudonym).where(Reader.study_id == sid)))
    answer_all(Session, sid, pseudonyms, seed=5, start=START)
    return sid


def _check_population(section: dict) -> None:
    assert set(section["population"]) == POP
    assert section["population"]["readers"] >= 2 and section["population"]["cases"] >= 4


@SQLITE
def test_sections_with_their_populations_independent_cases(make_study, Session, db_url):
    sid = _answered(make_study, Session, two_eyes=False)
    with Session() as s:
        table = answers_table(s, sid)
        res = analyze_study(s, sid, n_boot=40)
    assert "patient" in table.columns and table["patient"].isna().all()
    assert res["meta"]["patients"]["clustered"] is False
    assert "(1|patient)" not in res["glmm"]["formula"] and res["glmm"]["clustered_by"] is None

    sb = res["mrmc_binary"]
    _check_population(sb)
    assert sb["n_readers"] == 4 and sb["n_cases"] == 12 and sb["n_diseased"] == 10 and sb["n_non_diseased"] == 2
    for fom in ("sensitivity", "specificity"):
        out = sb[fom]
        assert out["fom"] == fom and out["cluster"] is None and out["positive"] == "reader's call = 1"
        per = out["rrrc"]["per_modality"]
        assert set(per) == {"unaided", "ai"} and all(0 <= per[m]["fom"] <= 1 for m in per)
    assert sb["sensitivity"]["n_fom_cases"] == 10 and sb["specificity"]["n_fom_cases"] == 2

    # the sensitivity of each reader is their share of positive calls on the diseased cases
    latest = table[table["is_latest"] & ~table["ungradable"]]
    r0 = sorted(latest["reader"].unique())[0]
    mine = latest[(latest["reader"] == r0) & (latest["condition"] == "unaided") & (latest["truth"] != "normal")]
    expected = float((mine["answer"] != "normal").mean())
    assert sb["sensitivity"]["sensitivity"]["per_reader"]["unaided"][r0] == pytest.approx(expected)

    sz = res["sizing"]
    _check_population(sz)
    one = sz["comparisons"][0]  # one grid per comparison of conditions
    assert one["effect"] == pytest.approx(res["mrmc"]["auc"]["rrrc"]["comparisons"][0]["diff"])
    assert sz["pilot"] == {"readers": 4, "cases": 12}
    grid = one["grid"]
    assert {(g["readers"], g["cases"]) for g in grid} >= {(4, 12), (10, 100), (20, 400)}
    assert all(0 < g["power_rrrc"] <= 1 for g in grid)
    by = {(g["readers"], g["cases"]): g["power_rrrc"] for g in grid}
    assert by[(20, 400)] >= by[(4, 12)]  # more readers and cases, more power
    assert "ordinal primary question" in res["agreement"]["note"]  # says why there is no kappa

    text = res["methods"]
    assert "sensitivity and specificity" in text and "Hillis and Obuchowski" in text
    assert "clustered" not in text
    page = render_html(res)
    for anchor in ("id='mrmc-binary'", "id='sizing'"):
        part = page[page.index(anchor):]
        assert "<table" in part[:6000] and "Population:" in part[:3000]
    binary = page[page.index("id='mrmc-binary'"):page.index("id='sizing'")]
    assert "Sensitivity" in binary and "Specificity" in binary and "AI-aided - unaided" in binary
    assert " to " in binary  # intervals as intervals


@SQLITE
def test_two_eyes_per_patient_are_clustered_everywhere(make_study, Session, db_url):
    sid = _answered(make_study, Session, two_eyes=True)
    with Session() as s:
        table = answers_table(s, sid)
        res = analyze_study(s, sid, n_boot=40)
    assert table.groupby("case")["patient"].nunique().eq(1).all() and table["patient"].nunique() == 6
    patients = res["meta"]["patients"]
    assert patients["clustered"] is True and patients["n_patients"] == 6
    glmm = res["glmm"]
    assert "(1|patient)" in glmm["formula"] and "(1|case:patient)" in glmm["formula"]
    assert set(glmm["random_effects"]) == {"reader_sd", "patient_sd", "case:patient_sd"}
    assert glmm["clustered_by"]["unit"] == "patient"
    assert res["mrmc"]["auc"]["cluster"] == "patient" and res["mrmc"]["auc"]["n_clusters"] == 6
    assert res["mrmc"]["clustered_by"]["n_patients"] == 6
    for fom in ("sensitivity", "specificity"):
        assert res["mrmc_binary"][fom]["cluster"] == "patient"
    assert res["sizing"]["clustered"] is True
    for section in ("glmm", "mrmc", "mrmc_binary", "sizing"):
        _check_population(res[section])
    assert "(1|patient/case)" in res["methods"] and "leaves out whole patients" in res["methods"]
    page = render_html(res)
    assert "clustered in patients" in page and "(1|patient/case)" in page


@SQLITE
def test_ordinal_agreement_section_resamples_patients(Session, db_url, tmp_path):
    sid = dr_study(Session, tmp_path, two_eyes=True)
    simulate(Session, sid, 4, seed=2)
    with Session() as s:
        res = analyze_study(s, sid, n_boot=40)
    agr = res["agreement"]
    _check_population(agr)
    assert agr["ci"]["resampled"] == "patient" and agr["ci"]["n_units"] == 6 and agr["ci"]["n_boot"] == 40
    overall = {r["condition"]: r for r in agr["vs_reference"] if r["level"] == "all"}
    assert set(overall) == {"unaided", "ai"}
    assert all(r["ci_low"] is None or r["ci_low"] <= r["qwk"] <= r["ci_high"] for r in overall.values())
    assert agr["between_readers"] and agr["clustered_by"]["unit"] == "patient"
    assert "quadratic-weighted kappa" in res["methods"] and "resampling patients" in res["methods"]
    sb = res["mrmc_binary"]  # the abnormal call of an ordinal question: a grade above the lowest
    assert sb is not None and "above the lowest" in sb["call"]
    for name in MORE_SECTIONS:
        assert "note" not in res[name] and set(res[name]["population"]) == POP
    page = render_html(res)
    part = page[page.index("id='qwk'"):]
    assert "Population:" in part[:2000] and "Between readers" in part and "resampling patients" in part
