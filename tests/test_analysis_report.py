"""The report: results keys, summary numbers = results, self-contained HTML, CLI end to end."""

from __future__ import annotations

import json
import re

import pytest

from study.analysis.simulate_reads import simulate_reads
from study.analysis.summary import pct, pts
from study.cli import main
from study.report import analyze_reads, build_figures, render_html

LEVELS = ["resident", "fellow", "consultant"]
KEYS = {"meta", "descriptive", "glmm", "glmm_interaction_p", "marginal_effects", "reading_time", "mrmc",
        "ai_interaction", "methods", "software", "summary", "messages"}


@pytest.fixture(scope="module")
def results():
    return analyze_reads(simulate_reads(n_readers=9, n_cases=60, seed=7), level_order=LEVELS, n_boot=300)


def test_results_structure(results):
    assert KEYS <= set(results)
    json.dumps(results, allow_nan=False)
    g = results["glmm"]
    terms = [fe["term"] for fe in g["fixed_effects"]]
    assert terms[:2] == ["Intercept", "condition[T.aided]"]
    assert "condition[T.aided]:level[T.fellow]" in terms  # patsy names, resident = reference
    assert set(g["random_effects"]) == {"reader_sd", "case_sd"}
    assert all(set(fe) == {"term", "estimate", "se", "ci", "p"} for fe in g["fixed_effects"])
    me = results["marginal_effects"]["aided"]
    assert [m["level"] for m in me] == [*LEVELS, "all"]
    assert all(m["or_ci_low"] < m["odds_ratio"] < m["or_ci_high"] for m in me)
    assert results["reading_time"]["fixed_effects"][1]["term"] == "condition[T.aided]"
    mr = results["mrmc"]
    assert set(mr["auc"]["auc"]["per_modality"]) == {"aided", "unaided"} and mr["n_cases"] == 60
    assert mr["auc"]["n_readers"] == 9 and mr["percent_correct"]["fom"] == "percent_correct"
    assert set(results["ai_interaction"]) == {"agreement", "switching", "switching_summary", "kappa", "roc",
                                              "operating_points"}
    assert {"python", "numpy", "scipy", "statsmodels", "plotly", "revision-reader-study"} <= set(results["software"])


def test_summary_numbers_equal_results(results):
    text = results["summary"]
    d = next(r for r in results["descriptive"]["differences"] if r["level"] == "all")
    for s in (pct(d["acc_unaided"]), pct(d["acc_condition"]), pts(100 * d["difference"]),
              f"95% CI {pts(100 * d['ci_low'])} to {pts(100 * d['ci_high'])}"):
        assert s in text
    acc = {(r["condition"], r["level"]): r["accuracy"] for r in results["descriptive"]["accuracy"]}
    assert pct(acc[("unaided", "all")]) in text and pct(acc[("aided", "all")]) in text
    me = [m for m in results["marginal_effects"]["aided"] if m["level"] != "all"]
    best = max(me, key=lambda m: m["pp_diff"])
    worst = min(me, key=lambda m: m["pp_diff"])
    assert f"largest in {best['level']} readers ({pts(best['pp_diff'])} points" in text
    assert f"odds ratio {best['odds_ratio']:.2f}" in text
    assert f"smallest in {worst['level']} readers ({pts(worst['pp_diff'])} points" in text
    sw = next(r for r in results["ai_interaction"]["switching_summary"] if r["level"] == "all")
    assert f"{pct(sw['automation_bias_rate'])} were changed to a wrong answer ({sw['right_to_wrong_after_wrong_ai']} reads)" in text


def test_html_is_self_contained_and_has_every_figure(results):
    figs = build_figures(results)
    assert set(figs) == {"accuracy", "forest", "roc", "switching", "reading_time"}
    page = render_html(results, figs)
    assert not re.search(r"<script[^>]*\bsrc\s*=", page, re.I)
    assert not re.search(r"<link[^>]*href\s*=\s*[\"']https?:", page, re.I)
    assert page.count("<script type=\"text/javascript\">/**") == 1 or page.count("plotly.js v") >= 1
    for key in figs:
        assert f'id="fig-{key}"' in page
    assert results["summary"][:60] in page.replace("&#x27;", "'")
    assert "statsmodels" in page and "Methods" in page


def test_cli_analyze_reads_end_to_end(tmp_path, capsys):
    csv = tmp_path / "reads.csv"
    simulate_reads(n_readers=6, n_cases=40, seed=1).to_csv(csv, index=False)
    out, js = tmp_path / "report.html", tmp_path / "results.json"
    rc = main(["analyze", "--reads", str(csv), "--out", str(out), "--json", str(js), "--n-boot", "200",
               "--level-order", ",".join(LEVELS)])
    assert rc == 0
    res = json.loads(js.read_text())
    assert KEYS <= set(res)
    assert res["meta"]["n_reads"] == 480 and res["meta"]["levels"] == LEVELS  # superseded versions dropped
    assert res["meta"]["design"] == "sequential"
    assert 'id="fig-forest"' in out.read_text()
    assert res["summary"] in capsys.readouterr().out


def test_cli_bad_inputs(tmp_path, capsys):
    csv = tmp_path / "bad.csv"
    simulate_reads(n_readers=6, n_cases=10).drop(columns=["correct"]).to_csv(csv, index=False)
    assert main(["analyze", "--reads", str(csv), "--json", str(tmp_path / "x.json")]) == 2
    assert "missing column(s) ['correct']" in capsys.readouterr().err
    assert main(["analyze", "--reads", str(csv)]) == 2
    assert "nothing to write" in capsys.readouterr().err
    assert main(["analyze", "--json", str(tmp_path / "x.json")]) == 2
    assert "--reads FILE.csv" in capsys.readouterr().err
