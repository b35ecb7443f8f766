"""The public demo pages with a tiny random model: the welcome page, the playground with saliency, evaluation,
mini study."""
from __future__ import annotations

import pytest
from streamlit.testing.v1 import AppTest

from tests.app_helpers import rendered_text
from testsupport.app import APP


@pytest.fixture(autouse=True)
def tiny_model(monkeypatch, tiny_cnn_checkpoint, tmp_path):
    monkeypatch.setenv("REVISION_APP_MODEL", "revision-tiny-cnn")
    monkeypatch.setenv("REVISION_APP_CHECKPOINT", str(tiny_cnn_checkpoint))
    monkeypatch.setenv("REVISION_DB_URL", f"sqlite:///{tmp_path / 'demo.sqlite'}")
    monkeypatch.setenv("REVISION_PUBLIC_DEMO", "on")  # the demo pages whatever the database holds (study mode)


def open_page(page: str | None = None) -> AppTest:
    at = AppTest.from_file(APP, default_timeout=90)
    if page:
        at.switch_page(page)
    return at.run()


def test_the_welcome_page_is_the_visitors_default_and_loads_no_model():
    import sys

    at = open_page()
    assert not at.exception, at.exception
    assert at.title[0].value == "ReVision Reader Study"
    assert any("Research model" in w.value and "not for clinical use" in w.value for w in at.warning)  # tiny model
    assert [h.value for h in at.subheader] == ["Readers", "Investigators", "Visitors"]
    links = {link.proto.label: link.proto.page for link in at.get("page_link")}
    assert set(links) == {"Reader sign-in", "Investigator sign-in", "Model playground", "Model evaluation",
                          "Try the study"}
    assert not at.get("plotly_chart") and not any(c.value.startswith("Model:") for c in at.caption)
    # nothing of the model on it: a fresh process that runs only the welcome page never imports torch
    import subprocess

    import os

    code = ("from streamlit.testing.v1 import AppTest; import sys; "
            f"at = AppTest.from_file({APP!r}, default_timeout=60).run(); "
            "assert at.title[0].value == 'ReVision Reader Study', at.title; "
            "assert any('Demo model' in w.value and 'not for clinical use' in w.value for w in at.warning); "
            "print('torch' in sys.modules)")
    env = {k: v for k, v in os.environ.items() if k not in ("REVISION_APP_MODEL", "REVISION_APP_CHECKPOINT")}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, env=env)
    assert out.stdout.strip().splitlines()[-1] == "False", out.stderr[-2000:]


def test_playground_predicts_and_explains():
    at = open_page("pages/demo_playground.py")
    assert not at.exception, at.exception
    assert at.title[0].value == "Model playground"
    assert len(at.get("progress")) == 5  # the suggestions: one labelled bar a finding
    at.selectbox(key="sal_method").set_value("gradcam")
    at.button(key="sal_run").click().run()
    assert not at.exception, at.exception
    assert any("saliency for" in c.value for c in at.caption)
    # the map is drawn by the reading station's viewer, named and shown at once
    assert '\\"show_map\\": 0' in rendered_text(at) and '\\"percent\\"' in rendered_text(at)


def test_an_overlay_shows_only_over_the_image_it_was_computed_for():
    """Explain, then change the method, change the sample, leave and come back: no exception (the old page
    raised NameError: render_overlay), and the map shows only over its own image."""
    at = open_page("pages/demo_playground.py")
    at.selectbox(key="sal_method").set_value("gradcam")
    at.button(key="sal_run").click().run()
    first = at.session_state["sal_result"]["image"]
    assert at.session_state["sal_shown"] == first and "saliency for" in rendered_text(at)
    at.selectbox(key="sal_method").set_value("occlusion").run()  # the method of the next map: this one stays
    assert not at.exception, at.exception
    assert at.session_state["sal_shown"] == first
    at.selectbox(key="pg_sample").set_value(1).run()  # another photograph: its overlay is not this one
    assert not at.exception, at.exception
    assert at.session_state["sal_shown"] is None and "saliency for" not in rendered_text(at)
    at.switch_page("pages/demo_evaluation.py").run()
    at.switch_page("pages/demo_playground.py").run()
    at.selectbox(key="pg_sample").set_value(0).run()  # back to the first: its overlay again
    assert not at.exception, at.exception
    assert at.session_state["sal_shown"] == first
    at.radio(key="pg_source").set_value("Upload").run()  # no file yet: no photograph, no overlay
    assert not at.exception and at.session_state["sal_shown"] is None


def test_every_saliency_method_shows_its_settings_on_screen(monkeypatch):
    from revision_core.saliency import METHODS

    at = open_page("pages/demo_playground.py")
    for method in METHODS:
        at.selectbox(key="sal_method").set_value(method)
        at.button(key="sal_run").click().run()
        assert not at.exception, at.exception
        caption = next(c.value for c in at.caption if "saliency for" in c.value)
        assert at.session_state["sal_result"]["settings"] in caption and " s):" in caption


def test_evaluation_shows_roc_and_auroc_table():
    at = open_page("pages/demo_evaluation.py")
    at.select_slider(key="eval_n").set_value(24).run()
    assert not at.exception, at.exception
    assert at.title[0].value == "Model evaluation"
    assert "auroc" in at.dataframe[0].value.columns
    assert len(at.get("plotly_chart")) == 1


def test_roc_plot_is_square_and_says_overlapping_curves_in_words():
    import json

    at = open_page("pages/demo_evaluation.py")
    assert not at.exception, at.exception
    spec = json.loads(at.get("plotly_chart")[0].proto.spec)
    assert spec["layout"]["yaxis"]["scaleanchor"] == "x" and spec["layout"]["yaxis"]["scaleratio"] == 1
    names = [t["name"] for t in spec["data"]]
    assert names[-1] == "chance (AUROC 0.50)" and all("(AUROC " in n for n in names)
    assert not any("_" in n or n.split(" (")[0] in ("amd", "rvo", "glaucoma") for n in names)  # words, not keys


def test_overlapping_curves_are_found_whatever_their_thresholds():
    from revision_core.demo_eval import overlap_sentence, overlapping_curves

    curves = {"glaucoma": ([0, 0, 0, 0.5, 1], [0, 0.5, 1, 1, 1]), "rvo": ([0, 0, 1], [0, 1, 1]),
              "amd": ([0, 0.2, 1], [0, 0.8, 1]), "pathologic_myopia": ([0, 0, 0.1, 1], [0, 1, 1, 1])}
    groups = overlapping_curves(curves, {})
    assert groups == [["glaucoma", "rvo", "pathologic_myopia"]]
    names = {"glaucoma": "Glaucoma", "rvo": "Retinal vein occlusion", "pathologic_myopia": "Pathologic myopia"}
    assert overlap_sentence(groups[0], names, 1.0) == ("Three curves at AUROC 1.00 overlap (Glaucoma, Retinal vein "
                                                       "occlusion and Pathologic myopia): they are drawn on top of "
                                                       "each other.")


def test_try_the_study_hides_the_previous_cases_elements_while_the_next_is_drawn():
    """The reading page's stale-element rule, reused by import: an old AI panel never shows beside a new case."""
    at = open_page("pages/demo_try_study.py")
    styles = [h.proto.body for h in at.get("html")]
    assert any('[data-stale="true"] { visibility: hidden; }' in body for body in styles), styles


def test_mini_study_ends_with_accuracy_per_condition():
    at = open_page("pages/demo_try_study.py")
    at.button(key="mini_start").click().run()
    assert not at.exception, at.exception
    mini = at.session_state["mini"]
    [b for b in at.button if b.proto.is_form_submitter][0].click().run()  # no diagnosis chosen yet
    assert [e.value for e in at.error] == ["Choose a diagnosis first."] and mini.position == 0
    for i in range(10):
        bars = [b.proto.text for b in at.get("progress")]  # the case counter, then the AI panel's bars
        assert bars[0] == f"Case {i + 1} of 10"
        if mini.conditions[i] == "unaided":
            assert bars == [f"Case {i + 1} of 10"] and "AI suggestion" not in rendered_text(at)
        else:
            assert len(bars) == 6 and all(b.endswith("%**") for b in bars[1:])  # each value in bold
        at.radio(key=f"mini_q_{i}").set_value("normal")
        [b for b in at.button if b.proto.is_form_submitter][0].click().run()
        assert not at.exception, at.exception
    table = at.dataframe[0].value
    assert set(table["condition"]) == {"without AI", "with AI"} and "model accuracy" in table.columns


@pytest.mark.parametrize("page", ["pages/welcome.py", "pages/demo_playground.py"])
def test_a_warm_page_takes_under_a_second_of_server_time(page):
    """Issue 13: the welcome page and the playground redraw in under a second once warm (the model, the
    gallery and each image's suggestions are loaded once per process). The median of three reruns, each
    timed around AppTest's run of the script (so it includes AppTest's own overhead)."""
    import statistics
    import time

    at = open_page(page)
    at.run()
    times = []
    for _ in range(3):
        started = time.perf_counter()
        at.run()
        times.append(time.perf_counter() - started)
        assert not at.exception, at.exception
    assert statistics.median(times) < 1.0, times
