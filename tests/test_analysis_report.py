"""The report: results keys, summary numbers = results, self-contained HTML, CLI end to end."""

from __future__ import annotations

import html
import json
import re

import pandas as pd
import pytest

from study.analysis.simulated_reads import simulate_reads
from study.analysis.summary import condition_name, p_text, pct, pts
from study.cli import main
from study.outputs.report import analyze_reads, build_figures, render_html

LEVELS = ["resident", "fellow", "consultant"]
KEYS = {"meta", "descriptive", "glmm", "glmm_interaction_p", "marginal_effects", "reading_time", "mrmc",
        "mrmc_binary", "sizing", "agreement", "ai_interaction", "methods", "software", "summary", "messages",
        "sensitivity"}


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
    assert all(set(fe) == {"term", "estimate", "se", "ci", "p", "odds_ratio", "or_ci"} for fe in g["fixed_effects"])
    assert all(fe["or_ci"][0] < fe["odds_ratio"] < fe["or_ci"][1] for fe in g["fixed_effects"])
    me = results["marginal_effects"]["aided"]
    assert [m["level"] for m in me] == [*LEVELS, "all"]
    assert all(m["or_ci_low"] < m["odds_ratio"] < m["or_ci_high"] for m in me)
    assert results["reading_time"]["fixed_effects"][1]["term"] == "condition[T.aided]"
    mr = results["mrmc"]
    assert set(mr["auc"]["auc"]["per_modality"]) == {"aided", "unaided"} and mr["n_cases"] == 60
    assert mr["auc"]["n_readers"] == 9 and mr["percent_correct"]["fom"] == "percent_correct"
    assert set(results["ai_interaction"]) == {"agreement", "switching", "switching_summary", "kappa", "roc",
                                              "operating_points", "population"}
    assert {"python", "numpy", "scipy", "statsmodels", "plotly", "revision-reader-study"} <= set(results["software"])


def test_summary_numbers_equal_results(results):
    text = results["summary"]
    d = next(r for r in results["descriptive"]["differences"] if r["level"] == "all")
    assert d["reference"] == "unaided"
    for s in (pct(d["acc_reference"]), pct(d["acc_condition"]), pts(100 * d["difference"]),
              f"95% CI {pts(100 * d['ci_low'])} to {pts(100 * d['ci_high'])}"):
        assert s in text
    acc = {(r["condition"], r["level"]): r["accuracy"] for r in results["descriptive"]["accuracy"]}
    assert pct(acc[("unaided", "all")]) in text and pct(acc[("aided", "all")]) in text
    p = results["glmm_interaction_p"]["aided"]
    assert f"across experience levels gave p = {p_text(p)}" in text  # three decimals (or "< 0.001")
    if p < results["meta"]["alpha"]:
        me = [m for m in results["marginal_effects"]["aided"] if m["level"] != "all"]
        best = max(me, key=lambda m: m["pp_diff"])
        assert f"largest in {best['level']} readers ({pts(best['pp_diff'])} points" in text
    else:  # no tested difference between levels: no "largest in" claim
        assert "largest in" not in text and "do not show that the AI effect differs" in text
    mr = results["mrmc"]["auc"]["rrrc"]
    cmp = mr["comparisons"][0]
    a, b = cmp["modalities"]
    assert (a, b) == ("aided", "unaided")  # every comparison reads condition - reference
    assert (f"AUC was {mr['per_modality'][a]['fom']:.3f} {condition_name(a)} and {mr['per_modality'][b]['fom']:.3f} "
            f"{condition_name(b)} (difference {cmp['diff']:+.3f}, 95% CI {cmp['ci'][0]:+.3f} to {cmp['ci'][1]:+.3f}, "
            f"p = {p_text(cmp['p'])}") in text
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


def _tables_text(page: str) -> str:
    """The report without scripts and figure divs: what a reader of the tables sees."""
    page = re.sub(r"<script.*?</script>", "", page, flags=re.S)
    return re.sub(r"<div id=\"fig-.*?</div>", "", page, flags=re.S)


def test_tables_in_words_intervals_as_intervals(results):
    from study.outputs.report import sens_spec_rows

    page = _tables_text(render_html(results))
    assert not re.search(r"\[\s*-?\d+\.\d+,\s*-?\d+\.\d+\s*\]", page)  # no raw [low, high] lists
    assert "ci_low" not in page and " to " in page
    rows = sens_spec_rows(results)
    findings = {r["finding"] for r in pd.DataFrame(results["descriptive"]["sensitivity_specificity"]).to_dict("records")}
    assert len(rows) == 2 * len(findings)  # one row per finding and measure, conditions as columns
    assert all(" to " in r["unaided"] and "%" in r["unaided"] for r in rows)  # percentages, not proportions
    mrmc = page[page.index("id='mrmc'"):page.index("id='ai'")]
    assert "AUC" in mrmc and "aided - unaided" in mrmc  # AUC per condition and the difference
    assert not re.search(r"<td>0\.\d{4,}</td>", _tables_text(page[page.index("id='accuracy'"):page.index("id='glmm'")]))


def test_methods_describe_only_the_sections_that_ran(results):
    assert "Obuchowski" in results["methods"] and "log(seconds)" in results["methods"]
    reads = simulate_reads(n_readers=6, n_cases=30, seed=2).drop(columns=["confidence", "seconds"])
    res = analyze_reads(reads, level_order=LEVELS, n_boot=100)
    # issue 19: a section that cannot run says why (it used to be None, and vanished from the report)
    assert "confidence rating" in res["mrmc"]["note"] and "no reading times" in res["reading_time"]["note"]
    assert "empirical AUCs" not in res["methods"] and "log(seconds)" not in res["methods"]
    assert "Hillis and Obuchowski" not in res["methods"]  # no sizing without the AUC MRMC
    # the readers' abnormal calls need no confidence: the sensitivity/specificity MRMC still runs
    assert res["mrmc_binary"]["sensitivity"] and "sensitivity and specificity" in res["methods"]
    sizing = res["sizing"]
    assert "comparisons" not in sizing and sizing["note"].startswith("sizing needs")
    page = render_html(res)
    assert "id='mrmc'" in page and "id='mrmc-binary'" in page
    for note in (res["mrmc"]["note"], sizing["note"]):  # the report says why there is no AUC and no sizing grid
        assert html.escape(note[1:]) in page


def test_report_has_the_binary_mrmc_and_sizing_sections_with_populations(results):
    from study.outputs.report import mrmc_rows, sizing_rows

    sb, sz = results["mrmc_binary"], results["sizing"]
    for section in (sb, sz):
        assert set(section["population"]) == {"readers", "cases", "readings", "excluded"}
    assert sb["n_readers"] == 9 and sb["n_cases"] == 60
    assert sb["sensitivity"]["rrrc"]["per_modality"]["aided"]["fom"] > 0
    rows = mrmc_rows(sb, ("sensitivity", "specificity"))
    assert {r["measure"] for r in rows} == {"Sensitivity", "Specificity"}
    assert {r["comparison"] for r in rows} == {"unaided", "AI-aided", "AI-aided - unaided"}
    assert all(" to " in r["95% CI"] for r in rows)
    assert all(r["estimate"].endswith("%") for r in rows if " - " not in r["comparison"])  # percentages
    assert all(not r["estimate"].endswith("%") and r["estimate"][0] in "+-" for r in rows if " - " in r["comparison"])
    one = sz["comparisons"][0]
    grid = sizing_rows(one)
    assert [r["readers"] for r in grid] == [f"{n} readers" for n in sz["readers"]]
    assert all(v.endswith("%") for r in grid for k, v in r.items() if k != "readers")
    assert one["effect"] == pytest.approx(results["mrmc"]["auc"]["rrrc"]["comparisons"][0]["diff"])
    assert one["comparison"] == ["aided", "unaided"] and sz["frrc_reference"] == "f"
    page = _tables_text(render_html(results))
    for anchor, heading in (("id='mrmc-binary'", "sensitivity and specificity"), ("id='sizing'", "Sizing")):
        part = page[page.index(anchor):]
        assert heading in part[:300] and "Population:" in part[:2000] and "<table" in part[:6000]
    assert "Fewest cases for 80% power" in page
    c = sb["sensitivity"]["rrrc"]["comparisons"][0]
    assert "sensitivity for the abnormal call" in results["summary"] and f"p = {p_text(c['p'])}" in results["summary"]


@pytest.mark.parametrize("p, claims", [(0.97, False), (0.01, True)])
def test_summary_names_the_largest_gain_only_when_the_test_supports_it(results, p, claims):
    from study.analysis.summary import summary_paragraph

    res = {**results, "glmm_interaction_p": {"aided": p}}
    text = summary_paragraph(res)
    assert ("largest in" in text) is claims
    assert f"p = {p_text(p)}" in text
    assert ("do not show that the AI effect differs" in text) is not claims
