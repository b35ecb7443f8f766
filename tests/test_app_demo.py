"""The public demo pages with a tiny random model: playground with saliency, evaluation, mini study."""
from __future__ import annotations

import pytest
from streamlit.testing.v1 import AppTest

from tests.app_helpers import APP, rendered_text


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


def test_playground_predicts_and_explains():
    at = open_page()
    assert not at.exception, at.exception
    assert at.title[0].value == "Model playground"
    assert len(at.get("plotly_chart")) == 1
    at.selectbox(key="sal_method").set_value("gradcam")
    at.button(key="sal_run").click().run()
    assert not at.exception, at.exception
    assert any("saliency for" in (img.proto.imgs[0].caption if img.proto.imgs else "")
               for img in at.get("imgs")) or "saliency for" in rendered_text(at)


def test_evaluation_shows_roc_and_auroc_table():
    at = open_page("pages/demo_evaluation.py")
    at.select_slider(key="eval_n").set_value(24).run()
    assert not at.exception, at.exception
    assert at.title[0].value == "Model evaluation"
    assert "auroc" in at.dataframe[0].value.columns
    assert len(at.get("plotly_chart")) == 1


def test_mini_study_ends_with_accuracy_per_condition():
    at = open_page("pages/demo_try_study.py")
    at.button(key="mini_start").click().run()
    assert not at.exception, at.exception
    mini = at.session_state["mini"]
    for i in range(10):
        charts = at.get("plotly_chart")
        if mini.conditions[i] == "unaided":
            assert not charts and "AI suggestion" not in rendered_text(at)
        else:
            assert len(charts) == 1
        at.radio(key=f"mini_q_{i}").set_value("normal")
        [b for b in at.button if b.proto.is_form_submitter][0].click().run()
        assert not at.exception, at.exception
    table = at.dataframe[0].value
    assert set(table["condition"]) == {"without AI", "with AI"} and "model accuracy" in table.columns
