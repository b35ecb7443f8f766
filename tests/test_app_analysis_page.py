"""The analysis page renders every section from the one results object, with the cut-off control, and its
report carries the MRMC table."""
from __future__ import annotations

from datetime import datetime, timezone

import pandas as pd
import pytest
from argon2 import PasswordHasher
from sqlalchemy import select
from streamlit.testing.v1 import AppTest

from study.storage import db
from study.domain import workflow
from study.storage.models import Reader
from study.services import analysis
from study.outputs import report
from study.services.analysis import Cutoff
from study.jobs.simulate_readers import answer_all
from tests.app_helpers import make_study
from testsupport.app import APP
from testsupport.studies import committed

PASSWORD = "correct horse battery staple"
PAGE_ONLY = ["Data cut-off", "Report", "Exports"]


@pytest.fixture
def env(tmp_path, monkeypatch):
    """A sequential study of 8 cases: three readers finished, the fourth part-way through (2 readings)."""
    url, ids, _ = make_study(tmp_path, design="sequential", n_cases=8, n_readers=4)
    factory = db.session_factory(db.make_engine(url))
    start = datetime(2026, 2, 2, 9, 0, tzinfo=timezone.utc)
    with factory() as s:
        readers = list(s.scalars(select(Reader).order_by(Reader.pseudonym)))
    answer_all(factory, ids["study"], [r.pseudonym for r in readers[:3]], seed=2, start=start)
    with factory() as s:
        for k in range(2):
            item = committed(workflow.next_item, s, readers[3].id, now=start)
            committed(workflow.submit, s, readers[3].id, item.assignment_id, {"primary_diagnosis": "amd", "confidence": 60,
                                                                   "referral": True}, f"p{k}", now=start)
    monkeypatch.setenv("REVISION_DB_URL", url)
    monkeypatch.setenv("REVISION_INVESTIGATOR_USER", "lead")
    monkeypatch.setenv("REVISION_INVESTIGATOR_PASSWORD_HASH", PasswordHasher().hash(PASSWORD))
    return factory, ids["study"], readers[3].pseudonym


def open_page() -> AppTest:
    at = AppTest.from_file(APP, default_timeout=180)
    at.switch_page("pages/investigator_signin.py").run()
    at.text_input(key="inv_user").input("lead")
    at.text_input(key="inv_password").input(PASSWORD)
    at.button[-1].click().run()
    at.switch_page("pages/investigator_analysis.py").run()
    assert not at.exception, at.exception
    return at


def results_of(at: AppTest, study_id: int, cutoff=Cutoff()) -> dict:
    """The results the page keeps for its study and cut-off."""
    return at.session_state[f"analysis_{study_id}_{cutoff!r}"]


def test_the_page_renders_every_section_from_one_results_object(env):
    factory, study_id, partial = env
    at = open_page()
    assert at.button(key="run_analysis") and not at.dataframe  # nothing runs before it is asked for
    at.button(key="run_analysis").click().run()
    assert not at.exception, at.exception
    res = results_of(at, study_id)
    assert res == analysis.results(factory, study_id)  # the service's results, as the CLI gets them

    # the page shows every section the report has, in the same order, with the same tables cell for cell
    sections = report.sections(res)
    headings = [h.value for h in at.subheader]
    assert headings == [PAGE_ONLY[0], *[s.title for s in sections], *PAGE_ONLY[1:]]
    html = analysis.report_html(res)
    assert all(f"id='{s.key}'" in html for s in sections)
    expected = [pd.DataFrame(v) for s in sections for kind, v in s.parts if kind == "table" and v]
    shown = [d.value for d in at.dataframe]
    assert len(shown) == len(expected)
    for a, b in zip(shown, expected):
        pd.testing.assert_frame_equal(a.reset_index(drop=True), b, check_dtype=False)

    tables = {tuple(d.value.columns): d.value for d in at.dataframe}
    glmm = next(t for cols, t in tables.items() if "odds ratio" in cols and "term" in cols)
    assert glmm["term"].iloc[1] == "AI-aided" and (glmm["95% CI"].str.contains(" to ")).all()
    mrmc = next(t for cols, t in tables.items() if "measure" in cols and "AUC" in set(t["measure"]))
    assert {"unaided", "AI-aided", "AI-aided - unaided"} <= set(mrmc["comparison"])
    assert any(cols[:2] == ("condition", "level") and "right -> wrong" in cols for cols in tables)  # switching
    assert any("time ratio" in cols for cols in tables)  # reading time
    binary = next(t for cols, t in tables.items() if "measure" in cols and "cases entering" in cols)
    assert {"Sensitivity", "Specificity"} == set(binary["measure"])
    assert "AI-aided - unaided" in set(binary["comparison"]) and binary["95% CI"].str.contains(" to ").any()
    grid = next(t for cols, t in tables.items() if cols[0] == "readers" and any(c.endswith(" cases") for c in cols))
    assert len(grid) >= 3 and grid.iloc[:, 1:].apply(lambda c: c.str.endswith("%")).all().all()
    assert any("cases for 80% power" in cols for cols in tables)
    accuracy = next(t for cols, t in tables.items() if "accuracy" in cols)
    assert accuracy["accuracy"].str.endswith("%").all()  # percentages on the page, proportions only in the JSON
    effects = next(t for cols, t in tables.items() if "model-based, reference" in cols)
    assert "observed, reference" in next(c for c in tables if "observed, reference" in c)  # named apart
    assert effects["model-based, reference"].str.endswith("%").all()
    captions = " ".join(c.value for c in at.caption).replace("\\", "")  # without plain()'s Markdown escapes
    assert "Hillis and Obuchowski" in captions  # the grid's short explanation
    assert f"reader {partial}: not fully crossed" in captions  # MRMC names the reader it left out, in a sentence
    for text in [c.value for c in at.caption] + [m.value for m in at.markdown] + [i.value for i in at.info]:
        assert not any(bad in text for bad in ("nan", "NaN", "Traceback")), text
    assert len(at.get("plotly_chart")) >= 3  # accuracy, forest, reading time
    assert at.get("download_button")  # report, results, exports

    mrmc_part = html[html.index("id='mrmc'"):html.index("id='ai'")]
    assert "<table" in mrmc_part and "AUC" in mrmc_part and "AI-aided - unaided" in mrmc_part


def test_the_cut_off_control_changes_the_population(env):
    _, study_id, partial = env
    at = open_page()
    at.radio(key="cutoff_mode").set_value("completed").run()
    at.button(key="run_analysis").click().run()
    assert not at.exception, at.exception
    res = results_of(at, study_id, Cutoff(completed_only=True))
    assert res["study"]["cutoff"]["completed_only"] is True
    assert res["descriptive"]["population"]["readers"] == 3
    assert any(e["who"] == f"reader {partial}" for e in res["descriptive"]["population"]["excluded"])
    assert any("completed readers only" in c.value for c in at.caption)


def test_the_page_renders_ordinal_agreement_clustered_in_patients(tmp_path, monkeypatch):
    """An ordinal (DR-grade) study with two eyes per patient: the agreement table and the clustering note."""
    from study.jobs.simulate_readers import simulate
    from tests.study.test_study_questions import dr_study

    url = f"sqlite:///{tmp_path / 'dr.sqlite'}"
    db.upgrade(url)
    factory = db.session_factory(db.make_engine(url))
    sid = dr_study(factory, tmp_path, two_eyes=True)
    simulate(factory, sid, 3, seed=2)
    monkeypatch.setenv("REVISION_DB_URL", url)
    monkeypatch.setenv("REVISION_INVESTIGATOR_USER", "lead")
    monkeypatch.setenv("REVISION_INVESTIGATOR_PASSWORD_HASH", PasswordHasher().hash(PASSWORD))
    at = open_page()
    at.button(key="run_analysis").click().run()
    assert not at.exception, at.exception
    assert "Agreement: quadratic-weighted kappa (ordinal primary question)" in [h.value for h in at.subheader]
    tables = {tuple(d.value.columns): d.value for d in at.dataframe}
    qwk = next(t for cols, t in tables.items() if "qwk" in cols)
    assert {"unaided", "AI-aided"} <= set(qwk["condition"]) and qwk["95% CI"].str.contains(" to ").any()
    assert any("mean pairwise qwk" in cols for cols in tables)
    captions = " ".join(c.value for c in at.caption)
    assert "clustered in patients" in captions
