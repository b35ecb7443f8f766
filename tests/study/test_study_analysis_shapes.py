"""Issue 19 through the study's own answers: a three-arm study (unaided / AI / AI + saliency) with one reader per
experience level is analysed by the app's call and the CLI, finished, with a reader part-way and with the
completed readers only, where the analysis used to stop with "math range error", "rank deficient" or "grouping
factor 'reader' needs at least two levels"."""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone

import pytest
from sqlalchemy import select

from study.cli import main
from study.domain import workflow
from study.jobs.simulate_readers import answer_all
from study.services import analysis
from study.services.analysis import Cutoff
from study.storage.models import Reader
from testsupport.studies import VALID_ANSWER, committed

SQLITE = pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
START = datetime(2026, 4, 6, 9, 0, tzinfo=timezone.utc)
ARMS = ["unaided", "ai", "ai_saliency"]


@pytest.fixture
def three_arms(make_study, Session):
    """15 cases, three readers (2, 7 and 15 years: one per level); the first two finished, the third part-way."""
    sid, _, _ = make_study("multi_arm", n_cases=15, n_readers=3, years=(2, 7, 15), arms=ARMS, name="Three arms")
    with Session() as s:
        readers = list(s.scalars(select(Reader).where(Reader.study_id == sid).order_by(Reader.pseudonym)))
    answer_all(Session, sid, [r.pseudonym for r in readers[:2]], seed=3, start=START)
    with Session() as s:
        for k in range(4):
            item = committed(workflow.next_item, s, readers[2].id, now=START + timedelta(minutes=k))
            committed(workflow.submit, s, readers[2].id, item.assignment_id, VALID_ANSWER, f"p-{k}",
                      now=START + timedelta(minutes=k, seconds=40))
    return sid, readers


def _check(res: dict) -> None:
    for name in ("descriptive", "glmm", "mrmc", "mrmc_binary", "reading_time", "ai_interaction", "agreement",
                 "sizing"):
        assert res[name].get("note") or len(res[name]) > 1, name
    json.dumps(res, allow_nan=False)
    page = analysis.report_html(res)
    assert "Traceback" not in page and "math range error" not in page


@SQLITE
def test_three_arms_one_reader_per_level_part_way_and_completed_only(three_arms, Session, db_url, tmp_path):
    sid, readers = three_arms
    res = analysis.results(Session, sid)
    _check(res)
    assert res["meta"]["conditions"] == ARMS and len(res["meta"]["comparisons"]) == 3
    assert res["descriptive"]["population"]["readings"] == 2 * 15 + 4
    glmm = res["glmm"]
    assert "one reader per experience level" in glmm["fallback"] and "(1|reader)" in glmm["formula"]
    assert set(res["marginal_effects"]) == {"ai", "ai_saliency", "ai_saliency vs ai"}

    done = analysis.results(Session, sid, Cutoff(completed_only=True))  # two readers of two levels left
    _check(done)
    assert done["descriptive"]["population"]["readers"] == 2

    js = tmp_path / "cli.json"  # the CLI makes the same call and does not stop either
    assert main(["analyze", "--db", db_url, "--study", "Three arms", "--json", str(js)]) == 0
    assert json.loads(js.read_text()) == json.loads(analysis.results_json(res))


@SQLITE
def test_one_reader_alone_gets_a_model_for_that_reader(three_arms, Session):
    sid, readers = three_arms
    until = START + timedelta(minutes=3)  # only the first answers of one reader are in
    res = analysis.results(Session, sid, Cutoff(until=until.replace(tzinfo=None)))
    _check(res)
    assert res["descriptive"]["population"]["readers"] == 1
    assert res["glmm"].get("note") or "results apply to this reader only" in res["glmm"]["fallback"]
