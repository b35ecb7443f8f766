"""Study mode (issue 11): the public demo pages, which run the model for any visitor, are off while a study
has a reader with unaided readings left ("auto"), always on ("on") or never ("off"); `[app] public_demo`
from the environment (REVISION_PUBLIC_DEMO), then .streamlit/secrets.toml.

The setting and the query (study.domain.study_mode), the app with AppTest (navigation, a direct switch to a demo
page, each demo page's own check, a reader's pause), and a real browser on the served app.
"""
from __future__ import annotations

from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from study.storage import db, settings
from study.domain import study_mode, workflow
from study.storage.models import Reader
from tests.app_helpers import make_study, rendered_text
from testsupport.app import APP, CARD, CHROMIUM
from testsupport.studies import committed

ROOT = Path(__file__).resolve().parents[1]
DEMO_FILES = ["pages/demo_playground.py", "pages/demo_evaluation.py", "pages/demo_try_study.py"]
# what a demo page shows of the model: any of these on screen means the model reached the visitor
MODEL_MARKERS = ["Model:", "Demo model", "probability", "Model playground", "Model evaluation", "Try the study"]
WELCOME = "ReVision Reader Study"  # the welcome page's title: the default page while the demo is on (issue 13)
ANSWER = {"primary_diagnosis": "amd", "confidence": 70, "referral": True}


@pytest.fixture(autouse=True)
def _isolated(monkeypatch, tmp_path, tiny_cnn_checkpoint):
    """A tiny model, an empty study database, no secrets.toml and fresh study-mode answers per test."""
    monkeypatch.setenv("REVISION_APP_MODEL", "revision-tiny-cnn")
    monkeypatch.setenv("REVISION_APP_CHECKPOINT", str(tiny_cnn_checkpoint))
    monkeypatch.setenv("REVISION_DB_URL", f"sqlite:///{tmp_path / 'none' / 'absent.sqlite'}")
    monkeypatch.delenv(study_mode.ENV_VAR, raising=False)
    monkeypatch.setattr(settings, "SECRETS_FILE", tmp_path / "secrets.toml")
    study_mode.clear_cache()
    yield
    study_mode.clear_cache()


@pytest.fixture
def live_study(tmp_path, monkeypatch):
    """A sequential study whose two readers have every reading left; the app's database."""
    url, ids, codes = make_study(tmp_path, design="sequential", n_cases=2, n_readers=2)
    monkeypatch.setenv("REVISION_DB_URL", url)
    return url, db.session_factory(db.make_engine(url)), codes


@pytest.fixture
def as_served(monkeypatch):
    """AppTest as ``make run`` serves the app (scripts/serve_app.py): Streamlit's old pages/ mode off, so
    every request, a page named by URL included, goes through app.py's navigation. (AppTest otherwise
    runs a switched-to file in pages/ directly, bypassing app.py: then each page's own check decides.)"""
    from streamlit.runtime.pages_manager import PagesManager

    original = PagesManager.__init__

    def init(self, *args, **kwargs):
        original(self, *args, **kwargs)
        PagesManager.uses_pages_directory = False

    monkeypatch.setattr(PagesManager, "__init__", init)


def _live(url: str, factory) -> bool:
    study_mode.clear_cache()
    return study_mode.study_is_live(url, lambda: factory)


def select_reader_ids():
    from sqlalchemy import select

    return select(Reader.id).order_by(Reader.id)


def _answer_unaided_readings(factory) -> None:
    """Every reader answers in study order until no unaided reading is left (aided ones may remain)."""
    with factory() as s:
        readers = s.scalars(select_reader_ids()).all()
    n = 0
    while True:
        with factory() as s:
            if not study_mode.has_unaided_readings_left(s):
                return
            for rid in readers:
                item = committed(workflow.next_item, s, rid)
                if item is not None:
                    committed(workflow.submit, s, rid, item.assignment_id, ANSWER, f"k{n}-{rid}")
                    n += 1
        assert n < 100


def _nav_files(at: AppTest) -> list[str]:
    """The page files in the navigation menu of the last run (what st.navigation was given, less the hidden
    pages/landing.py that forwards "/" to the reader sign-in page)."""
    files = [str(Path(str(info["script_path"])).relative_to(ROOT)) for info in at._registered_pages.values()
             if info.get("script_path")]
    return [f for f in files if f != "pages/landing.py"]


def _app(page: str | None = None) -> AppTest:
    at = AppTest.from_file(APP, default_timeout=90)
    if page:
        at.switch_page(page)  # before the first run: as a URL naming the page (/demo_playground)
    return at.run()


def _assert_no_model(at: AppTest) -> None:
    sent = rendered_text(at)
    for marker in MODEL_MARKERS:
        assert marker not in sent, marker
    assert not at.get("plotly_chart") and not at.get("progress")
    assert not any(c.value.startswith("Model:") for c in at.caption)


# --- the setting ----------------------------------------------------------------------------------------

def test_setting_default_env_secrets_and_precedence(tmp_path):
    secrets = tmp_path / "s.toml"
    assert study_mode.public_demo_setting({}, secrets) == "auto"  # no file
    secrets.write_text('[database]\nurl = "sqlite://"\n')
    assert study_mode.public_demo_setting({}, secrets) == "auto"  # no [app]
    secrets.write_text('[app]\npublic_demo = "off"\n')
    assert study_mode.public_demo_setting({}, secrets) == "off"
    assert study_mode.public_demo_setting({"REVISION_PUBLIC_DEMO": "on"}, secrets) == "on"  # env beats secrets
    assert study_mode.public_demo_setting({"REVISION_PUBLIC_DEMO": " ON "}, secrets) == "on"
    assert study_mode.public_demo_setting({"REVISION_PUBLIC_DEMO": ""}, secrets) == "off"  # empty = unset


@pytest.mark.parametrize("env, toml, where", [
    ("yes", None, "REVISION_PUBLIC_DEMO"),
    (None, 'public_demo = "maybe"', "secrets.toml"),
    (None, "public_demo = true", "secrets.toml"),
])
def test_an_invalid_setting_names_the_setting_and_the_allowed_values(tmp_path, env, toml, where):
    secrets = tmp_path / "s.toml"
    if toml:
        secrets.write_text(f"[app]\n{toml}\n")
    with pytest.raises(study_mode.PublicDemoSettingError) as err:
        study_mode.public_demo_setting({"REVISION_PUBLIC_DEMO": env} if env else {}, secrets)
    message = str(err.value)
    assert "[app] public_demo" in message and "REVISION_PUBLIC_DEMO" in message and where in message
    assert "'auto', 'on', 'off'" in message


# --- the query ------------------------------------------------------------------------------------------

def test_live_while_unaided_readings_are_left_then_not(live_study):
    url, factory, _ = live_study
    assert _live(url, factory)
    _answer_unaided_readings(factory)
    assert not _live(url, factory)
    with factory() as s:  # aided readings are left: they never count
        assert any(committed(workflow.next_item, s, rid) is not None for rid in s.scalars(select_reader_ids()).all())


def test_revoked_readers_do_not_count(live_study):
    from study.domain.readers import revoke

    url, factory, _ = live_study
    with factory() as s:
        ids = s.scalars(select_reader_ids()).all()
        committed(revoke, s, ids[0])
        s.commit()
    assert _live(url, factory)  # the other reader still has unaided readings
    with factory() as s:
        committed(revoke, s, ids[1])
        s.commit()
    assert not _live(url, factory)


def test_a_missing_sqlite_file_is_no_study_and_is_not_created(tmp_path):
    url = f"sqlite:///{tmp_path / 'nothing.sqlite'}"
    assert not study_mode.study_is_live(url, lambda: pytest.fail("the database must not be opened"))
    assert not (tmp_path / "nothing.sqlite").exists()


def test_an_unreadable_database_keeps_the_demo_off(tmp_path, capsys):
    path = tmp_path / "broken.sqlite"
    path.write_bytes(b"not a database" * 100)
    url = f"sqlite:///{path}"
    assert study_mode.study_is_live(url, lambda: db.session_factory(db.make_engine(url)))  # fail closed
    assert "public demo pages stay off" in capsys.readouterr().err


def test_the_answer_is_cached_for_a_few_seconds_only(live_study):
    url, factory, _ = live_study
    calls = []

    def counting():
        calls.append(1)
        return factory

    assert study_mode.study_is_live(url, counting) and study_mode.study_is_live(url, counting)
    assert len(calls) == 1
    assert study_mode.study_is_live(url, counting, max_age=0) and len(calls) == 2
    assert study_mode.CACHE_SECONDS <= 5


# --- the app ----------------------------------------------------------------------------------------------

def test_auto_hides_the_demo_pages_while_a_study_is_live(live_study, monkeypatch):
    monkeypatch.setenv("REVISION_PUBLIC_DEMO", "auto")
    at = _app()
    assert not at.exception, at.exception
    assert at.title[0].value == "Reader sign-in"  # the default page
    assert _nav_files(at) == ["pages/reader_signin.py", "pages/investigator_signin.py"]
    _assert_no_model(at)
    with pytest.raises(ValueError, match="Could not find a navigation page"):
        at.switch_page("pages/demo_playground.py")
    for page in DEMO_FILES:
        # AppTest runs a file in pages/ directly (Streamlit's old pages/ mode, app.py bypassed): the page's
        # own check shows one short line and nothing of the model
        at = _app(page)
        assert not at.exception, at.exception
        assert [i.value for i in at.info] == ["This page is not available on this server."] and not at.title
        _assert_no_model(at)


@pytest.mark.parametrize("page", DEMO_FILES)
def test_a_demo_page_url_gives_the_reader_signin_page_through_the_navigation(live_study, as_served, page):
    at = _app(page)  # the page named by the first request, as /demo_playground
    assert not at.exception, at.exception
    assert at.title[0].value == "Reader sign-in"
    assert not any("demo_" in f for f in _nav_files(at))
    _assert_no_model(at)


@pytest.mark.parametrize("page", DEMO_FILES)
def test_a_demo_page_open_when_the_study_goes_live_shows_nothing_of_the_model(live_study, monkeypatch, page):
    """A visitor on a demo page (the demo on) whose next run comes while a study is live gets nothing of
    the model. (AppTest runs a switched-to file in pages/ directly, as Streamlit's old pages/ mode does on
    a fresh server's first request: this is each page's own check; the browser test covers app.py's.)"""
    monkeypatch.setenv("REVISION_PUBLIC_DEMO", "on")
    at = _app()
    at.switch_page(page).run()
    assert not at.exception, at.exception
    assert at.title[0].value in MODEL_MARKERS
    monkeypatch.setenv("REVISION_PUBLIC_DEMO", "auto")
    at.switch_page(page).run()  # the same page requested again (a rerun or its URL)
    assert not at.exception, at.exception
    assert not at.title and [i.value for i in at.info] == ["This page is not available on this server."]
    _assert_no_model(at)


def test_the_demo_pages_come_back_when_no_unaided_reading_is_left(live_study):
    url, factory, _ = live_study
    _answer_unaided_readings(factory)
    study_mode.clear_cache()
    at = _app()
    assert not at.exception, at.exception
    assert at.title[0].value == WELCOME  # the visitors' front door while the demo is on (issue 13)
    assert _nav_files(at) == ["pages/welcome.py"] + DEMO_FILES + ["pages/reader_signin.py", "pages/investigator_signin.py"]
    at.switch_page("pages/demo_playground.py").run()
    assert any(c.value.startswith("Model:") for c in at.caption) and len(at.get("progress")) == 5  # suggestions


def test_the_demo_pages_come_back_when_the_readers_are_revoked(live_study):
    from study.domain.readers import revoke

    url, factory, _ = live_study
    with factory() as s:
        for rid in s.scalars(select_reader_ids()).all():
            committed(revoke, s, rid)
        s.commit()
    study_mode.clear_cache()
    at = _app()
    assert at.title[0].value == WELCOME and _nav_files(at)[1:4] == DEMO_FILES


def test_on_and_off_override_auto(live_study, monkeypatch, tmp_path):
    monkeypatch.setenv("REVISION_PUBLIC_DEMO", "on")  # a live study, shown anyway
    at = _app()
    assert at.title[0].value == WELCOME and _nav_files(at)[1:4] == DEMO_FILES
    monkeypatch.setenv("REVISION_DB_URL", f"sqlite:///{tmp_path / 'none' / 'absent.sqlite'}")
    monkeypatch.setenv("REVISION_PUBLIC_DEMO", "off")  # no study at all, hidden anyway
    at = _app()
    assert at.title[0].value == "Reader sign-in" and not any("demo_" in f for f in _nav_files(at))
    _assert_no_model(at)
    at = _app("pages/demo_playground.py")
    assert not at.title and [i.value for i in at.info] == ["This page is not available on this server."]
    _assert_no_model(at)


def test_the_environment_beats_secrets_toml_in_the_app(monkeypatch):
    settings.SECRETS_FILE.write_text('[app]\npublic_demo = "off"\n')
    at = _app()  # no study: "auto" would show the demo; secrets.toml says off
    assert at.title[0].value == "Reader sign-in" and not any("demo_" in f for f in _nav_files(at))
    monkeypatch.setenv("REVISION_PUBLIC_DEMO", "on")
    at = _app()
    assert at.title[0].value == WELCOME


def test_an_invalid_setting_stops_the_app_with_a_clear_error(monkeypatch):
    monkeypatch.setenv("REVISION_PUBLIC_DEMO", "sometimes")
    at = _app()
    assert not at.exception, at.exception
    assert len(at.error) == 1
    message = at.error[0].value
    assert "[app] public_demo" in message and "REVISION_PUBLIC_DEMO" in message
    assert "'auto', 'on', 'off'" in message and "'sometimes'" in message
    assert not at.title  # no page ran
    _assert_no_model(at)


@pytest.mark.parametrize("page", DEMO_FILES)
def test_each_demo_page_checks_study_mode_itself(live_study, page):
    """Defence in depth: run as the app's main script (no navigation at all), a demo page shows one short
    line and nothing of the model while a study is live."""
    at = AppTest.from_file(str(ROOT / page), default_timeout=90).run()
    assert not at.exception, at.exception
    assert [i.value for i in at.info] == ["This page is not available on this server."]
    assert not at.title
    _assert_no_model(at)


def test_a_signed_in_reader_never_gets_a_demo_page(live_study, monkeypatch):
    monkeypatch.setenv("REVISION_PUBLIC_DEMO", "on")
    at = AppTest.from_file(str(ROOT / "pages/demo_playground.py"), default_timeout=90)
    at.session_state["role"] = "reader"
    at.run()
    assert not at.title
    _assert_no_model(at)


@pytest.mark.parametrize("mode", ["on", "auto"])
def test_a_reader_who_pauses_lands_on_the_reader_signin_page(live_study, as_served, monkeypatch, mode):
    monkeypatch.setenv("REVISION_PUBLIC_DEMO", mode)
    _, _, codes = live_study
    at = AppTest.from_file(APP, default_timeout=90)
    at.switch_page("pages/reader_signin.py").run()
    at.text_input(key="access_code").input(codes[0])
    at.button[0].click().run()
    assert at.session_state["role"] == "reader"
    at.switch_page("pages/reader_study.py").run()
    at.button(key="pause_consent").click().run()
    assert not at.exception, at.exception
    assert "role" not in at.session_state
    assert at.title[0].value == "Reader sign-in"
    _assert_no_model(at)


# --- a real browser on the served app ---------------------------------------------------------------------

@pytest.mark.browser
@pytest.mark.skipif(not Path(CHROMIUM).is_file(), reason=f"{CHROMIUM} is absent (apt-get install chromium; "
                    "scripts/install_system_deps.sh does it)")
def test_browser_a_visitor_gets_no_prediction_while_a_study_is_live(tmp_path, tiny_cnn_checkpoint):
    pytest.importorskip("playwright.sync_api", reason="the playwright package is not installed")
    from playwright.sync_api import expect, sync_playwright

    from tests.test_e2e_browser import _idle, _nav
    from testsupport.app import launch_chromium, streamlit_server

    url, _, _ = make_study(tmp_path, design="sequential", n_cases=2, n_readers=1)
    env = {"REVISION_DB_URL": url, "REVISION_APP_MODEL": "revision-tiny-cnn",
           "REVISION_APP_CHECKPOINT": str(tiny_cnn_checkpoint), "REVISION_PUBLIC_DEMO": "auto"}
    frames: list = []
    with streamlit_server(tmp_path, env) as (base, _proc):
        with sync_playwright() as p:
            browser = launch_chromium(p)
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            page.on("websocket", lambda ws: ws.on("framereceived", lambda payload: frames.append(payload)))
            for path in ("/demo_playground", "/", "/demo_evaluation", "/demo_try_study"):
                page.goto(base + path)  # the first request names a demo page: app.py still decides
                expect(page.locator("h1").filter(has_text="Reader sign-in").first).to_be_visible(timeout=30_000)
                _idle(page)
                assert _nav(page) == ["Reader sign-in", "Investigator sign-in"], path
                dom = page.content()
                for marker in ("Model playground", "Model evaluation", "Try the study", "Demo model",
                               "Model:", CARD["name"]):
                    assert marker not in dom, (path, marker)
                expect(page.locator('[data-testid="stException"]')).to_have_count(0)
            browser.close()
    traffic = "\n".join(f.decode("utf-8", "replace") if isinstance(f, bytes) else str(f) for f in frames)
    for marker in ("Demo model", "Model: ", "probability (suggestion)", "not for clinical use"):
        assert marker not in traffic, marker


def test_live_while_readers_hold_codes_before_the_design_is_built(tmp_path):
    """Issue 20: readers with codes but no assignments yet will have unaided readings: the demo stays off."""
    url, ids, codes = make_study(tmp_path, design="crossover", n_cases=2, n_readers=0)
    factory = db.session_factory(db.make_engine(url))
    assert not _live(url, factory)  # no reader yet
    from study.domain.readers import add_reader, revoke

    with factory() as s:
        reader, _code = add_reader(s, ids["study"], display_name="Dr Early", years_experience=3)
        s.commit()
    assert _live(url, factory)  # a code is out, the design is not built
    with factory() as s:
        revoke(s, reader.id)
        s.commit()
    assert not _live(url, factory)
