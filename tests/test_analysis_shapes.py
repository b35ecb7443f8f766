"""Property-based tests (issue 19): the analysis holds on every shape a real study takes, and never claims what its
data cannot show.

Hypothesis draws study shapes (``study.analysis.simulated_reads.shaped_reads``): 1-40 readers over 1-40 levels
(some levels empty, some with one reader), 1-500 cases, one to three aided arms, crossed, multi-arm and
sequential designs, readers part-way and readers split over halves of the cases, perfect and hopeless cells,
all-normal cases, ungradable readings. For each: the analysis returns; every section has a result or a reason;
no interval of zero width carries a p-value; nothing the page or the report shows is NaN; no section failed
unexpectedly (the server log would have its traceback). The shapes that once failed are kept as examples. The
default run is bounded (small studies, few examples, well under a minute or two on 2 cores); the larger run is
marked slow.
"""

from __future__ import annotations

import json
import logging
import math
import re
from dataclasses import replace

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from study.analysis.claims import zero_width
from study.analysis.reads import prepare_reads
from study.analysis.simulated_reads import ARMS, shaped_reads
from study.analysis.study_analysis import DEFAULTS, MORE_SECTIONS, SECTIONS, analyze_frame
from study.outputs.report import build_figures, render_html, sections

BAD_TEXT = re.compile(r"\b(nan|NaN|None|inf|Traceback)\b")
# what a section shows when it ran (else it carries "note", the reason)
CONTENT = {"descriptive": "accuracy", "glmm": "fixed_effects", "reading_time": "fixed_effects",
           "ai_interaction": "agreement", "agreement": "vs_reference", "sizing": "comparisons",
           "mrmc": "design", "mrmc_binary": "design"}


@st.composite
def study_shapes(draw, max_readers: int, max_levels: int, max_cases: int) -> dict:
    n_levels = draw(st.integers(1, max_levels))
    per_level = draw(st.lists(st.integers(0, max(1, max_readers // n_levels)), min_size=n_levels, max_size=n_levels))
    if not sum(per_level):
        per_level[draw(st.integers(0, n_levels - 1))] = 1
    n_arms = draw(st.integers(1, 3))
    conditions = ["unaided", *ARMS[:n_arms]]
    cells = draw(st.dictionaries(st.tuples(st.sampled_from(conditions), st.integers(0, n_levels - 1)),
                                 st.sampled_from(["perfect", "hopeless"]), max_size=2))
    return {"readers_per_level": per_level, "n_cases": draw(st.integers(1, max_cases)), "n_arms": n_arms,
            "design": draw(st.sampled_from(["crossed", "multi_arm", "sequential"])),
            "partway": draw(st.integers(0, min(2, sum(per_level)))), "split": draw(st.booleans()), "cells": cells,
            "all_normal": draw(st.booleans()), "ungradable": draw(st.sampled_from([0.0, 0.0, 0.1, 0.5, 1.0])),
            "p_correct": draw(st.sampled_from([0.0, 0.3, 0.7, 0.7, 1.0])), "seed": draw(st.integers(0, 2**16))}


class _Errors(logging.Handler):
    """Collects the analysis's ERROR records (an unexpected failure of a section, logged with its traceback)."""

    def __init__(self):
        super().__init__(logging.ERROR)
        self.records: list[logging.LogRecord] = []

    def emit(self, record):
        self.records.append(record)


def _walk(obj, path=""):
    if isinstance(obj, dict):
        yield path, obj
        for k, v in obj.items():
            yield from _walk(v, f"{path}.{k}")
    elif isinstance(obj, list):
        for i, v in enumerate(obj):
            yield from _walk(v, f"{path}[{i}]")


def _no_zero_width_interval_with_a_p(res: dict) -> None:
    for path, row in _walk(res):
        if row.get("p") is None and row.get("p_holm") is None:
            continue
        for lo, hi in (("ci_low", "ci_high"), ("pp_ci_low", "pp_ci_high"), ("or_ci_low", "or_ci_high")):
            if lo in row and hi in row:
                assert not zero_width(row[lo], row[hi]), (path, row)
        for key in ("ci", "or_ci"):
            if isinstance(row.get(key), list):
                assert not zero_width(*row[key]), (path, row)


def _nothing_undefined_on_the_page(res: dict) -> None:
    for sec in sections(res, build_figures(res)):
        assert not BAD_TEXT.search(sec.title), sec.title
        for kind, value in sec.parts:
            if kind == "table":
                for row in value:
                    for k, cell in row.items():
                        assert isinstance(cell, str) and not BAD_TEXT.search(cell), (sec.key, k, cell)
            elif kind != "figure":
                assert not BAD_TEXT.search(value), (sec.key, value)
    page = re.sub(r"<script.*?</script>|<div id=\"fig-.*?</div>", "", render_html(res), flags=re.S)
    assert not re.search(r">\s*(nan|NaN|None|inf)\s*<", page)


def check_shape(shape: dict, n_boot: int = 20) -> dict | None:
    """Run the analysis on one shape and check the invariants; the results (None for an empty table)."""
    reads = shaped_reads(**shape)
    levels = [f"L{i}" for i in range(len(shape["readers_per_level"]))]
    if reads.empty:
        with pytest.raises(ValueError, match="no rows"):
            prepare_reads(reads, level_order=levels)
        return None
    errors = _Errors()
    log = logging.getLogger("study.analysis")
    log.addHandler(errors)
    try:
        res = analyze_frame(prepare_reads(reads, level_order=levels), replace(DEFAULTS, n_boot=n_boot))
    finally:
        log.removeHandler(errors)
    assert not errors.records, [r.getMessage() for r in errors.records]
    json.dumps(res, allow_nan=False)
    for name in (*SECTIONS, *MORE_SECTIONS):
        section = res[name]
        assert isinstance(section, dict) and (section.get("note") or CONTENT[name] in section), (name, section)
        assert set(section["population"]) == {"readers", "cases", "readings", "excluded"}
    for name in ("mrmc", "mrmc_binary"):
        section = res[name]
        foms = ("auc", "percent_correct") if name == "mrmc" else ("sensitivity", "specificity")
        if not section.get("note"):
            assert all(section.get(f) or section.get(f"{f}_error") for f in foms), section
    for one in res["sizing"].get("comparisons") or []:
        assert one.get("grid") or one.get("note")
    fast = res["sensitivity"]["fast_reads"]
    assert fast.get("note") or fast.get("differences") is not None
    _no_zero_width_interval_with_a_p(res)
    _nothing_undefined_on_the_page(res)
    return res


def _shape(per_level, n_cases, n_arms=1, design="crossed", **more) -> dict:
    base = {"readers_per_level": list(per_level), "n_cases": n_cases, "n_arms": n_arms, "design": design,
            "partway": 0, "split": False, "cells": {}, "all_normal": False, "ungradable": 0.0, "p_correct": 0.7,
            "seed": 0}
    return {**base, **more}


# The shapes of issue 19 and those the property tests found: each once ended in an exception or a claim
ISSUE_SHAPES = [
    _shape((1, 1, 1), 57, 2, "multi_arm"),                                         # 3 arms, one reader per level
    _shape((1, 1, 1), 57, 2, "multi_arm", cells={("ai", 0): "perfect"}),           # ... one reader always right
    _shape((1, 1, 1), 57, 2, "multi_arm", cells={("unaided", 2): "hopeless"}),     # ... one always wrong
    _shape((1, 1, 1), 57, 2, "multi_arm", partway=1),                              # a level's reader part-way
    _shape((2, 2), 12, p_correct=1.0),                                             # everyone always right
    _shape((2, 2), 12, ungradable=0.5),                                            # half the readings ungradable
    _shape((1, 1), 10),                                                            # two readers
    _shape((4,), 12, cells={("ai", 0): "perfect", ("unaided", 0): "hopeless"}),    # 4 readers, 12 cases, separated
    _shape((1, 2), 1, design="multi_arm", partway=1, split=True),                  # no rows at all
    _shape((0, 1), 3, 2, "multi_arm", partway=1),                                  # no unaided readings
    _shape((1,), 2, 1, "sequential", ungradable=1.0),                              # every reading ungradable
    _shape((2, 1), 4, 3, "sequential", all_normal=True, partway=2, seed=11),       # reading times of 3 readings
]


@pytest.mark.parametrize("shape", ISSUE_SHAPES)
def test_the_shapes_that_once_failed(shape):
    check_shape(shape)


def test_three_arms_one_reader_per_level_says_what_it_cannot_show():
    res = check_shape(ISSUE_SHAPES[0])
    glmm = res["glmm"]
    assert glmm["formula"] == "correct ~ condition + (1|reader) + (1|case)"
    assert "one reader per experience level: the level effect cannot be separated from the reader effect" \
        in glmm["fallback"]
    assert [m["key"] for m in res["meta"]["comparisons"]] == ["ai", "ai_saliency", "ai_saliency vs ai"]
    assert set(res["marginal_effects"]) == {"ai", "ai_saliency", "ai_saliency vs ai"}
    assert res["mrmc"]["design"].startswith("every reading, as an incomplete design")
    assert "Holm" in res["methods"] and "Holm-adjusted" in res["summary"]
    assert "not fully crossed" in res["sizing"]["note"]


def test_a_separated_cell_is_fitted_with_priors_and_said_so():
    res = check_shape(_shape((3, 3), 20, cells={("ai", 0): "perfect"}, seed=2))
    glmm = res["glmm"]
    assert glmm["separation"] == f"every reading by L0 readers AI-aided was correct (60)"
    assert glmm["estimation"].startswith("penalised maximum likelihood") and glmm["fixef_prior_sd"] == [10, 2.5]
    assert all(math.isfinite(fe["estimate"]) and fe["se"] < 10 for fe in glmm["fixed_effects"])
    assert "bglmer" in res["summary"] and "blme::bglmer" in res["methods"]


@pytest.mark.heavy
@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.too_slow], derandomize=True)
@given(shape=study_shapes(max_readers=10, max_levels=4, max_cases=30))
@example(shape=ISSUE_SHAPES[3])
def test_any_study_shape(shape):
    check_shape(shape)


@pytest.mark.slow
@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(shape=study_shapes(max_readers=40, max_levels=40, max_cases=500))
def test_any_study_shape_up_to_full_size(shape):
    check_shape(shape)
