"""The investigator pages: refused to visitors and readers, sign-in, set-up, monitor and analysis."""
from __future__ import annotations

from pathlib import Path

import pytest
from argon2 import PasswordHasher
from streamlit.testing.v1 import AppTest

from study.storage import db
from study.domain import workflow
from tests.app_helpers import make_study, rendered_text
from testsupport.app import APP
from testsupport.studies import study_toml
from testsupport.studies import committed

PAGES = ["pages/investigator_setup.py", "pages/investigator_monitor.py", "pages/investigator_analysis.py"]
ROOT = Path(APP).parent
PASSWORD = "correct horse battery staple"


@pytest.fixture
def env(tmp_path, monkeypatch):
    url, ids, codes = make_study(tmp_path, design="crossover", n_cases=4, n_readers=2)
    monkeypatch.setenv("REVISION_DB_URL", url)
    monkeypatch.setenv("REVISION_INVESTIGATOR_USER", "lead")
    monkeypatch.setenv("REVISION_INVESTIGATOR_PASSWORD_HASH", PasswordHasher().hash(PASSWORD))
    return url, ids, codes


@pytest.mark.parametrize("page", PAGES)
@pytest.mark.parametrize("who", [None, "reader"])
def test_investigator_pages_refuse_visitors_and_readers(env, page, who):
    at = AppTest.from_file(str(ROOT / page), default_timeout=60)
    if who:
        at.session_state["role"] = who
        at.session_state["reader_id"] = 1
    at.run()
    assert any("signed-in investigators only" in e.value for e in at.error)
    assert not at.dataframe and not at.metric and not at.file_uploader


def test_reader_navigation_has_no_investigator_page(env):
    _, _, codes = env
    at = AppTest.from_file(APP, default_timeout=60)
    at.switch_page("pages/reader_signin.py").run()
    at.text_input(key="access_code").input(codes[0])
    at.button[-1].click().run()
    assert at.session_state["role"] == "reader"
    at.switch_page("pages/investigator_setup.py").run()
    assert not any(t.value == "Study set-up" for t in at.title)


def sign_in(password: str = PASSWORD) -> AppTest:
    at = AppTest.from_file(APP, default_timeout=60)
    at.switch_page("pages/investigator_signin.py").run()
    at.text_input(key="inv_user").input("lead")
    at.text_input(key="inv_password").input(password)
    at.button[-1].click().run()
    if "role" in at.session_state and at.session_state["role"] == "investigator":
        at.switch_page("pages/investigator_setup.py").run()
    return at


def test_wrong_password_is_refused(env):
    at = sign_in("guess")
    assert "role" not in at.session_state
    assert any("Wrong user or password" in e.value for e in at.error)


def test_setup_validates_toml_and_shows_reader_codes_once(env):
    at = sign_in()
    assert not at.exception, at.exception
    assert at.title[0].value == "Study set-up"
    assert [m.value for m in at.metric][:2] == ["4", "4"]
    bad = b'[study]\nname = ""\n[design]\ntype = "zigzag"\n'
    at.file_uploader(key="toml_upload").set_value(("bad.toml", bad, "application/toml"))
    at.run()
    at.button(key="create_study").click().run()
    assert any("problem(s)" in e.value for e in at.error)
    problems = at.dataframe[0].value["problem"].tolist()
    assert any("name" in p for p in problems) and any("zigzag" in p for p in problems)
    good = study_toml("sequential", name="Second study").encode()
    at.file_uploader(key="toml_upload").set_value(("good.toml", good, "application/toml"))
    at.run()
    at.button(key="create_study").click().run()
    assert not at.exception, at.exception
    assert "Second study" in at.selectbox(key="study_pick").format_func(at.selectbox(key="study_pick").value)
    at.file_uploader(key="readers_upload").set_value(
        ("r.csv", b"display_name,years_experience\nDr A,3\nDr B,12\n", "text/csv"))
    at.run()
    at.button(key="add_readers").click().run()
    assert not at.exception, at.exception
    codes = at.dataframe[0].value["access_code"].tolist()
    assert len(codes) == 2 and all(len(c) == 14 for c in codes)
    at.button(key="codes_hide").click().run()
    assert not any(c in rendered_text(at) for c in codes)  # shown once only


def test_monitor_and_analysis_show_progress_and_accuracy(env):
    url, ids, _ = env
    factory = db.session_factory(db.make_engine(url))
    with factory() as s:
        item = committed(workflow.next_item, s, 1)
        committed(workflow.submit, s, 1, item.assignment_id, {"primary_diagnosis": "amd", "confidence": 60,
                                                   "referral": True}, "k1")
    at = sign_in()
    at.switch_page("pages/investigator_monitor.py").run()
    assert not at.exception, at.exception
    table = at.dataframe[0].value
    assert set(table.columns) >= {"reader", "session", "done", "total", "median_seconds", "last_activity"}
    assert int(table["done"].sum()) == 1
    at.switch_page("pages/investigator_analysis.py").run()
    assert not at.exception, at.exception
    assert len(at.get("download_button")) == 3  # CSV, Parquet, iMRMC: built only when clicked
    assert at.button(key="run_analysis")  # the analysis runs when asked (tests/test_app_analysis_page.py)


def test_analysis_offers_no_exports_before_any_answer(env):
    at = sign_in()
    at.switch_page("pages/investigator_analysis.py").run()
    assert not at.exception, at.exception
    assert any("once readers have submitted answers" in i.value for i in at.info)
    assert not at.get("download_button") and not [b for b in at.button if b.key == "run_analysis"]


def test_the_sidebar_says_who_is_signed_in(env):
    at = AppTest.from_file(APP, default_timeout=60)
    at.session_state["role"], at.session_state["investigator_user"] = "investigator", "lead"
    at.run()  # app.py itself: its navigation opens the set-up page
    assert not at.exception, at.exception
    assert any("Signed in as investigator **lead**" in c.value for c in at.sidebar.caption)


def test_rebuilding_the_design_needs_a_confirmation(env):
    at = sign_in()
    assert not at.exception, at.exception
    assert at.button(key="build_design").disabled  # the fixture's design exists: rebuilding replaces it
    at.checkbox(key="rebuild_ok").check().run()
    assert not at.button(key="build_design").disabled
    at.button(key="build_design").click().run()
    assert not at.exception, at.exception
    assert any("assignments stored" in s.value for s in at.success)


@pytest.mark.parametrize("page", ["pages/investigator_monitor.py", "pages/investigator_cases.py",
                                  "pages/investigator_audit.py", "pages/investigator_setup.py"])
def test_investigator_pages_without_any_study(tmp_path, monkeypatch, page):
    """Before the first study: the set-up page offers to create one; every other page says there is none."""
    from study.storage import db

    url = f"sqlite:///{tmp_path / 'empty.sqlite'}"
    db.upgrade(url)
    monkeypatch.setenv("REVISION_DB_URL", url)
    at = AppTest.from_file(str(ROOT / page), default_timeout=60)
    at.session_state["role"] = "investigator"
    at.session_state["investigator_user"] = "lead"
    at.run()
    assert not at.exception
    said = [i.value for i in at.info]
    if page.endswith("setup.py"):
        assert "No study yet." not in said and at.expander[0].label.startswith("1. New study")
    else:
        assert said == ["No study yet."] and not at.dataframe
