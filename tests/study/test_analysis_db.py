"""``analyze --db``: the study's own export (study.domain.answers.answers_table) through the whole analysis."""

from __future__ import annotations

import json

import pytest

from study.cli import main
from study.jobs.simulate_readers import simulate
from tests.study.test_study_simulate import seed_study


@pytest.mark.heavy
@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_analyze_from_database(db_url, Session, tmp_path, capsys):
    sid = seed_study(Session, n_cases=16, ai_accuracy=0.8, design="sequential", name="Analyze")
    simulate(Session, sid, 9, seed=3)
    out, js = tmp_path / "r.html", tmp_path / "r.json"
    rc = main(["analyze", "--db", db_url, "--study", "Analyze", "--out", str(out), "--json", str(js), "--n-boot", "100"])
    captured = capsys.readouterr()
    assert rc == 0, captured.err
    res = json.loads(js.read_text())
    assert res["meta"]["design"] == "sequential" and res["meta"]["n_readers"] == 9
    assert res["meta"]["reference_condition"] == "unaided" and len(res["meta"]["conditions"]) >= 2
    assert res["ai_interaction"]["switching_summary"]  # step 1 / step 2 pairs found in the export
    assert res["glmm"]["fixed_effects"][0]["term"] == "Intercept"
    assert res["ai_interaction"]["roc"]["n_cases"] == 16  # P(abnormal) from per-finding AI probabilities
    assert res["mrmc"]["auc"]["n_readers"] == 9 and res["mrmc"]["n_cases"] == 16
    assert 'id="fig-accuracy"' in out.read_text() and 'id="fig-roc"' in out.read_text()
