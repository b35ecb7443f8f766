"""One analysis for the app, the command line and the report: same results, explicit populations, MRMC on
the largest fully crossed subset, the data cut-off, the fast-read sensitivity analysis, real colours."""

from __future__ import annotations

import json
import re
from datetime import datetime, timedelta, timezone

import pandas as pd
import pytest
from sqlalchemy import select

from study.domain import flags, workflow
from study.analysis.study_analysis import SECTIONS, Cutoff, largest_crossed
from study.cli import main
from study.storage.models import Reader
from study.services import analysis
from study.jobs.simulate_readers import answer_all
from testsupport.studies import VALID_ANSWER
from testsupport.studies import committed

SQLITE = pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
START = datetime(2026, 1, 5, 9, 0, tzinfo=timezone.utc)


@pytest.fixture
def live_study(make_study, Session):
    """A demo-like crossover: 12 cases, 6 readers (2 per level); 5 have read everything, the sixth (the
    last pseudonym) is part-way through session 1 (3 readings), as in a live study."""
    sid, _, _ = make_study("crossover", n_cases=12, n_readers=6, years=(2, 7, 15), name="Contract")
    with Session() as s:
        readers = list(s.scalars(select(Reader).where(Reader.study_id == sid).order_by(Reader.pseudonym)))
    full, partial = readers[:-1], readers[-1]
    answer_all(Session, sid, [r.pseudonym for r in full], seed=4, start=START)
    with Session() as s:
        for k in range(3):
            item = committed(workflow.next_item, s, partial.id, now=START + timedelta(minutes=k))
            committed(workflow.submit, s, partial.id, item.assignment_id, VALID_ANSWER, f"partial-{k}",
                            now=START + timedelta(minutes=k, seconds=30))
    return sid, [r.pseudonym for r in full], partial.pseudonym


@SQLITE
def test_app_results_equal_cli_results_and_partial_reader_keeps_mrmc(live_study, Session, db_url, tmp_path):
    sid, full, partial = live_study
    app = analysis.results(Session, sid)
    js = tmp_path / "cli.json"
    assert main(["analyze", "--db", db_url, "--study", "Contract", "--json", str(js)]) == 0
    assert json.loads(analysis.results_json(app)) == json.loads(js.read_text())  # same call, same defaults
    assert app["meta"]["n_boot"] == 1000 and app["meta"]["levels"] == ["junior", "intermediate", "senior"]
    assert app["meta"]["reference_level"] == "junior"  # the study's order, not alphabetical

    for section in SECTIONS:
        pop = app[section]["population"]
        assert set(pop) == {"readers", "cases", "readings", "excluded"}
    assert app["descriptive"]["population"]["readers"] == 6  # every answer counts in the descriptive part
    assert app["descriptive"]["population"]["readings"] == 5 * 24 + 3

    mr = app["mrmc"]  # a reader part-way through no longer makes MRMC vanish
    assert mr["auc"] is not None and mr["n_readers"] == 5 and mr["n_cases"] == 12
    assert mr["population"]["readers"] == 5
    assert any(e["who"] == f"reader {partial}" and "not fully crossed" in e["why"] for e in mr["population"]["excluded"])
    auc = mr["auc"]["rrrc"]["per_modality"]
    assert set(auc) == {"unaided", "ai"}
    sb, sz = app["mrmc_binary"], app["sizing"]  # issue 14: sensitivity/specificity MRMC and sizing, same subset
    assert set(sb["population"]) == set(sz["population"]) == {"readers", "cases", "readings", "excluded"}
    assert sb["n_readers"] == 5 and sb["sensitivity"] and sb["specificity"]
    assert any(e["who"] == f"reader {partial}" and "not fully crossed" in e["why"] for e in sb["population"]["excluded"])
    assert sz["pilot"] == {"readers": 5, "cases": 12} and sz["comparisons"][0]["grid"]
    assert "ordinal" in app["agreement"]["note"] and app["meta"]["patients"]["clustered"] is False  # no grades

    completion = {c["reader"]: c for c in app["study"]["completion"]}
    assert completion[partial] == {"reader": partial, "level": completion[partial]["level"], "done": 3, "total": 24,
                                   "complete": False}
    assert all(completion[r]["complete"] for r in full)

    page = analysis.report_html(app)
    mrmc_part = page[page.index("id='mrmc'"):page.index("id='ai'")]
    assert "AUC" in mrmc_part and "AI-aided - unaided" in mrmc_part and f"reader {partial}" in mrmc_part
    assert "id='mrmc-binary'" in mrmc_part and "id='sizing'" in mrmc_part
    assert "Contract" in page and app["study"]["snapshot_sha256"] in page and "ViT-Test" in page


@pytest.mark.heavy
@SQLITE
def test_cutoff_completed_readers_and_time(live_study, Session, db_url, tmp_path):
    sid, full, partial = live_study
    everything = analysis.results(Session, sid)
    done = analysis.results(Session, sid, Cutoff(completed_only=True))
    pop = done["descriptive"]["population"]
    assert pop["readers"] == 5 and pop["readings"] == 5 * 24
    assert any(e["who"] == f"reader {partial}" and "completed readers only" in e["why"] for e in pop["excluded"])
    assert done["study"]["cutoff"]["completed_only"] is True
    assert done["study"]["snapshot_sha256"] != everything["study"]["snapshot_sha256"]
    assert "Data cut-off: completed readers only" in done["methods"]
    assert "completed readers only" in analysis.report_html(done)
    js = tmp_path / "done.json"  # the CLI's cut-off flags make the same call
    assert main(["analyze", "--db", db_url, "--study", "Contract", "--completed-only", "--json", str(js)]) == 0
    assert json.loads(js.read_text()) == json.loads(analysis.results_json(done))
    with pytest.raises(analysis.AnalysisError, match="no answers are left after the data cut-off"):
        analysis.results(Session, sid, Cutoff(until=START - timedelta(days=1)))

    until = START + timedelta(days=2)  # session 1 only: session 2 comes after the 28-day washout
    early = analysis.results(Session, sid, Cutoff(until=until))
    assert early["study"]["answers_used"] < everything["study"]["answers_used"]
    assert pd.Timestamp(early["study"]["last_answer"]) <= pd.Timestamp(until)
    assert any("after the cut-off" in e["why"] for e in early["descriptive"]["population"]["excluded"])


@SQLITE
def test_fast_read_sensitivity_uses_the_flag_rule(live_study, Session):
    from study.analysis.study_inputs import analyze_study
    from study.domain.answers import answers_table

    sid, _, _ = live_study
    with Session() as s:
        res = analyze_study(s, sid, fast_read_seconds=40.0, n_boot=100)
        table = answers_table(s, sid)
    latest = table[table["is_latest"] & ~table["ungradable"]]
    expected = sum(flags.is_fast_read(x, 40.0) for x in latest["seconds"])
    sens = res["sensitivity"]["fast_reads"]
    assert 0 < expected < len(latest) and sens["n_fast"] == expected
    assert sens["population"]["readings"] == len(latest) - expected
    assert any("faster than 40 s" in e["why"] for e in sens["population"]["excluded"])
    assert sens["glmm"]["fixed_effects"] and sens["differences"]


@SQLITE
def test_report_built_in_the_app_process_has_real_distinct_colours(live_study, Session):
    """Streamlit sets plotly's default template to its own, whose colours are placeholders (#000001 ...)."""
    import plotly.io as pio
    from streamlit.elements.lib.streamlit_plotly_theme import configure_streamlit_plotly_theme

    from study.outputs.report import build_figures

    sid, _, _ = live_study
    before = pio.templates.default
    try:
        configure_streamlit_plotly_theme()
        assert pio.templates.default == "streamlit"
        res = analysis.results(Session, sid)
        page = analysis.report_html(res)
        figs = build_figures(res)
    finally:
        pio.templates.default = before
    placeholder = re.compile(r'"#0000(0[1-9]|[12]\d|30)"')  # Streamlit's #000001 ... #000030
    assert not placeholder.search(page)
    bars = {t.name: t.marker.color for t in figs["accuracy"].data}
    assert set(bars) == {"unaided", "AI-aided"}
    colours = list(bars.values())
    assert len(set(colours)) == 2 and all(re.fullmatch(r"#[0-9A-Fa-f]{6}", c) for c in colours)
    assert not any(placeholder.fullmatch(f'"{c}"') for c in colours)


def test_largest_crossed_subset_prefers_more_cells():
    rows = [(r, c, cond) for r in "ABC" for c in range(6) for cond in ("unaided", "ai")]
    rows = [x for x in rows if not (x[0] == "C" and x[1] >= 2)]  # C read only cases 0 and 1
    rows += [("D", c, "unaided") for c in range(6)]  # D never read aided
    readers, cases = largest_crossed(pd.DataFrame(rows, columns=["reader", "case", "condition"]), ["unaided", "ai"])
    assert readers == ["A", "B"] and cases == list(range(6))  # 2 x 6 beats 3 x 2
