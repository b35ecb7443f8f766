"""The Streamlit app, driven headless with AppTest: the playground shows the demo model's suggestion
with its disclaimer."""
from __future__ import annotations

from pathlib import Path

from streamlit.testing.v1 import AppTest


APP = str(Path(__file__).resolve().parents[1] / "app.py")


def test_playground_shows_a_labelled_demo_suggestion(monkeypatch):
    monkeypatch.setenv("REVISION_PUBLIC_DEMO", "on")  # a live study in data/ (after `make run`) would hide it
    at = AppTest.from_file(APP, default_timeout=120).run()
    assert not at.exception, at.exception
    assert at.title[0].value == "ReVision Reader Study"  # the welcome page: the visitors' default (issue 13)
    at.switch_page("pages/demo_playground.py").run()
    assert not at.exception, at.exception
    assert at.title[0].value == "Model playground"
    assert any("Demo model" in w.value and "not for clinical use" in w.value for w in at.warning)
    assert any("version" in c.value for c in at.caption)
    assert len(at.get("progress")) == 5  # the five findings, one labelled bar each, most probable first
    at.radio(key="pg_source").set_value("Synthetic case by number").run()
    at.number_input[0].set_value(3).run()
    assert not at.exception and len(at.get("progress")) == 5
