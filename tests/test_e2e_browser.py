"""End to end in a real browser: a reader signs in with a code, consents and completes a short sequential
study; the database holds the answers, and while an unaided case is on screen neither the DOM nor the
websocket traffic carries any AI output. Screenshots go to test-output/ (gitignored).

Needs /usr/bin/chromium (scripts/install_system_deps.sh installs it) and the playwright package; skips
with the reason otherwise.
"""
from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import func, select

from study.storage import db
from study.domain import workflow
from study.storage.models import Answer, AuditEvent, Reader
from tests.app_helpers import SUBMIT_SELECTOR, make_study
from testsupport.app import CARD, CHROMIUM, launch_chromium, settle_after_change, streamlit_server, wait_script_idle
from testsupport.studies import committed

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "test-output"
AI_MARKERS = ["AI suggestion", "It can be wrong", "0.8731", CARD["version"], CARD["name"]]

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(not Path(CHROMIUM).is_file(), reason=f"{CHROMIUM} is absent (apt-get install chromium; "
                       "scripts/install_system_deps.sh does it)"),
]


@pytest.fixture
def server_env(request) -> dict[str, str]:
    """Extra environment for the app server: none, or (parametrized indirectly with (user, password))
    investigator credentials as a real study sets them, user + argon2 hash."""
    if not hasattr(request, "param"):
        return {}
    from argon2 import PasswordHasher

    user, password = request.param
    return {"REVISION_INVESTIGATOR_USER": user, "REVISION_INVESTIGATOR_PASSWORD_HASH": PasswordHasher().hash(password)}


@pytest.fixture
def server(tmp_path, tiny_cnn_checkpoint, server_env):
    pytest.importorskip("playwright.sync_api", reason="the playwright package is not installed")
    url, ids, codes = make_study(tmp_path, design="sequential", n_cases=2, n_readers=1)
    env = {"REVISION_DB_URL": url, "REVISION_APP_MODEL": "revision-tiny-cnn",
           "REVISION_APP_CHECKPOINT": str(tiny_cnn_checkpoint), "REVISION_INVESTIGATOR_PASSWORD": "e2e-only",
           "REVISION_PUBLIC_DEMO": "on",  # the tour visits the demo pages beside a live study (study mode off)
           **server_env}
    with streamlit_server(tmp_path, env) as (base, _proc):
        yield base, url, codes


def _text(frames: list) -> str:
    return "\n".join(f.decode("utf-8", "replace") if isinstance(f, bytes) else str(f) for f in frames)


def test_reader_completes_a_sequential_study_without_ai_leaks(server):
    from playwright.sync_api import expect, sync_playwright

    base, url, codes = server
    OUT.mkdir(exist_ok=True)
    frames: list = []
    with sync_playwright() as p:
        browser = launch_chromium(p)
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        page.on("websocket", lambda ws: ws.on("framereceived", lambda payload: frames.append(payload)))
        page.goto(f"{base}/reader_signin")  # the fresh server's very first request names a page
        expect(page.get_by_text("Reader sign-in").first).to_be_visible(timeout=30_000)
        _idle(page)
        assert _nav(page) == START_PAGES + DEMO_PAGES + SIGNIN_PAGES, "app.py's role navigation must decide, from the first request"
        page.screenshot(path=OUT / "e2e_1_signin.png")
        page.locator("input[type=password]").fill(codes[0])
        page.get_by_role("button", name="Sign in").click()
        expect(page.get_by_text("Instructions and consent")).to_be_visible(timeout=30_000)
        page.screenshot(path=OUT / "e2e_2_consent.png")
        page.get_by_text("I have read the instructions").click()
        page.wait_for_timeout(800)
        mark = len(frames)
        page.get_by_role("button", name="Start reading").click()
        for k in range(1, 5):
            expect(page.get_by_text(f"Case {k} of 4")).to_be_visible(timeout=30_000)
            _idle(page)  # the rest of this run's deltas have arrived
            page.wait_for_timeout(300)
            unaided = page.get_by_text("Unaided reading").count() > 0
            page.screenshot(path=OUT / f"e2e_3_case{k}_{'unaided' if unaided else 'aided'}.png", full_page=True)
            dom, traffic = page.content(), _text(frames[mark:])
            if unaided:
                for marker in AI_MARKERS:
                    assert marker not in dom, f"case {k}: {marker!r} in the DOM"
                    if marker != "AI suggestion":  # the instructions name it; the others are AI output
                        assert marker not in traffic, f"case {k}: {marker!r} in the websocket traffic"
            else:
                expect(page.get_by_text(f"Model: {CARD['name']}")).to_be_visible(timeout=30_000)
                page.screenshot(path=OUT / f"e2e_3_case{k}_aided.png", full_page=True)
                traffic = _text(frames[mark:])
                assert "AI suggestion" in page.content()
                assert CARD["version"] in traffic and "It can be wrong" in traffic  # the panel did arrive (aided)
            page.locator('[role="radiogroup"]').nth(0).locator("label").first.click()
            page.locator('[role="radiogroup"]').last.get_by_text("No", exact=True).click()
            page.locator('input[type="number"]').first.fill("70")  # confidence has no default
            before = len(frames)
            page.locator('input[type="number"]').first.press("Tab")
            settle_after_change(page, frames, before)  # the change's rerun carries the aided panel
            mark = len(frames)
            page.locator(SUBMIT_SELECTOR).click()
        expect(page.get_by_text("Study complete")).to_be_visible(timeout=30_000)
        page.screenshot(path=OUT / "e2e_4_complete.png")
        browser.close()
    factory = db.session_factory(db.make_engine(url))
    with factory() as s:
        assert s.scalar(select(func.count()).select_from(Answer)) == 4
        assert s.scalar(select(func.count()).select_from(AuditEvent)
                        .where(AuditEvent.action == "reader.consented")) == 1


E2E_USER, E2E_PASSWORD = "dr-e2e", "tour-only-pw-7Q"
START_PAGES = ["Welcome"]  # the visitors' front door while the public demo is on (issue 13)
DEMO_PAGES = ["Model playground", "Model evaluation", "Try the study"]
SIGNIN_PAGES = ["Reader sign-in", "Investigator sign-in"]
INVESTIGATOR_PAGES = ["Study set-up", "Live monitor", "Analysis and exports", "Study operations", "Reader detail",
                      "Case browser", "Audit trail"]


def _settle(page, title: str) -> None:
    """Wait until the page's title is drawn and the script run is over; assert that no exception is shown."""
    from playwright.sync_api import expect

    expect(page.locator("h1").filter(has_text=title).first).to_be_visible(timeout=30_000)
    _idle(page)
    expect(page.locator('[data-testid="stException"]')).to_have_count(0)


def _idle(page) -> None:
    wait_script_idle(page)


def _nav(page) -> list[str]:
    """The page titles in the sidebar navigation (the text after each icon)."""
    return [t.strip().splitlines()[-1] for t in page.locator('[data-testid="stSidebarNavLink"]').all_inner_texts()]


def _shot(page, name: str) -> None:
    """A screenshot of the whole page: Streamlit scrolls inside its main container, so the viewport is
    stretched to the content's height first."""
    _idle(page)
    assert page.locator('[data-testid="stException"]').count() == 0, f"{name}: an exception is shown"
    size = page.viewport_size
    height = page.evaluate("() => Math.max(...[...document.querySelectorAll("
                           "'[data-testid=stMain], [data-testid=stSidebarContent]')].map(e => e.scrollHeight), 0)")
    page.set_viewport_size({"width": size["width"], "height": max(size["height"], min(int(height) + 40, 6000))})
    page.wait_for_timeout(300)
    page.screenshot(path=OUT / name, full_page=True)
    page.set_viewport_size(size)


WELCOME_TITLE = "ReVision Reader Study"


def _open(page, title: str) -> None:
    page.locator('[data-testid="stSidebarNavLink"]').filter(has_text=title).first.click()
    _settle(page, title)


@pytest.mark.parametrize("server_env", [(E2E_USER, E2E_PASSWORD)], indirect=True, ids=["env-credentials"])
def test_every_reachable_page_renders(server):
    """A tour of every page a visitor and an investigator can reach, a full-page screenshot of each
    (test-output/tour_*.png): each shows its title and no exception, and the investigator pages are
    neither in the navigation nor reachable by URL before signing in."""
    from playwright.sync_api import expect, sync_playwright

    base, url, _ = server
    OUT.mkdir(exist_ok=True)
    with sync_playwright() as p:
        browser = launch_chromium(p)
        page = browser.new_page(viewport={"width": 1400, "height": 1000}, accept_downloads=True)
        requests: list[str] = []
        page.on("request", lambda r: requests.append(r.url))
        page.goto(base)
        _settle(page, WELCOME_TITLE)
        assert _nav(page) == START_PAGES + DEMO_PAGES + SIGNIN_PAGES
        _shot(page, "tour_0_welcome.png")
        page.goto(f"{base}/investigator_setup")  # not served to a visitor: the default page comes instead
        _settle(page, WELCOME_TITLE)
        expect(page.get_by_text("Page not found")).to_be_visible()
        expect(page.locator("h1").filter(has_text="Study set-up")).to_have_count(0)
        assert _nav(page) == START_PAGES + DEMO_PAGES + SIGNIN_PAGES
        page.screenshot(path=OUT / "tour_0_investigator_url_as_visitor.png")
        page.keyboard.press("Escape")
        expect(page.get_by_text("Page not found")).to_have_count(0)

        # the playground; its saliency section (open) computes a map on demand, drawn as a reader sees it
        _open(page, "Model playground")
        expect(page.get_by_text("Input photograph")).to_be_visible(timeout=30_000)
        explain = page.get_by_role("button", name="Explain")
        expect(explain).to_be_visible(timeout=30_000)
        _idle(page)  # a click while the script is still running can be lost in the rerun
        explain.click()
        expect(page.get_by_text("saliency for")).to_be_visible(timeout=90_000)  # seconds of CPU on a busy 2-core machine
        _settle(page, "Model playground")
        expect(page.locator('[data-testid="map-caption"]')).to_contain_text("Where the model looked for")
        expect(page.locator('[data-testid="stAlertContentError"]')).to_have_count(0)
        _shot(page, "tour_1_playground.png")

        _open(page, "Model evaluation")
        expect(page.get_by_text("ROC curves")).to_be_visible(timeout=30_000)
        _shot(page, "tour_2_evaluation.png")

        _open(page, "Try the study")
        _shot(page, "tour_3_try_study_intro.png")
        page.get_by_role("button", name="Start").click()
        expect(page.get_by_text("Case 1 of 10")).to_be_visible(timeout=30_000)
        _idle(page)  # no page title while reading: the photograph gets the height
        expect(page.locator('[data-testid="stException"]')).to_have_count(0)
        expect(page.get_by_text("Primary diagnosis")).to_be_visible()
        _shot(page, "tour_4_try_study_case1.png")

        _open(page, "Reader sign-in")
        expect(page.get_by_text("Access code", exact=True)).to_be_visible()
        _shot(page, "tour_5_reader_signin.png")

        _open(page, "Investigator sign-in")
        expect(page.get_by_text("Demo installation")).to_have_count(0)  # credentials come from the environment
        _shot(page, "tour_6_investigator_signin.png")
        page.get_by_role("textbox", name="User").fill(E2E_USER)
        page.get_by_role("textbox", name="Password").fill(E2E_PASSWORD)
        page.get_by_role("button", name="Sign in").click()

        _settle(page, "Study set-up")
        assert _nav(page) == INVESTIGATOR_PAGES
        expect(page.get_by_role("button", name="Sign out")).to_be_visible()
        expect(page.get_by_text("Readers", exact=True)).to_be_visible()
        for summary in page.locator('[data-testid="stExpander"] summary').all():
            summary.click()  # open every section (client side, no rerun) for the screenshot
        expect(page.get_by_text("Run the AI precompute")).to_be_visible()
        _shot(page, "tour_7_setup.png")

        _open(page, "Live monitor")
        expect(page.get_by_text("Readings done")).to_be_visible(timeout=30_000)
        _shot(page, "tour_8_monitor.png")

        _open(page, "Analysis and exports")
        expect(page.get_by_text("Exports and the analysis become available once readers")).to_be_visible(timeout=30_000)
        _shot(page, "tour_9_analysis.png")
        expect(page.get_by_role("button", name="Download Long CSV")).to_have_count(0)  # nothing to export yet

        # one answer arrives; the long CSV is then built when its button is clicked, and downloads
        factory = db.session_factory(db.make_engine(url))
        with factory() as s:
            rid = s.scalar(select(Reader.id))
            item = committed(workflow.next_item, s, rid)
            committed(workflow.submit, s, rid, item.assignment_id, {"primary_diagnosis": "amd", "confidence": 70,
                                                         "referral": True}, "tour-answer")
        _open(page, "Live monitor")
        _open(page, "Analysis and exports")
        with page.expect_download(timeout=30_000) as download:
            page.get_by_role("button", name="Download Long CSV").click()
        lines = Path(download.value.path()).read_text("utf-8").splitlines()
        assert download.value.suggested_filename == "answers_long.csv"
        assert len(lines) == 2 and item.case_id in lines[1]
        with factory() as s:  # the download is in the audit trail, with who took it and a hash of what
            exported = s.scalars(select(AuditEvent).where(AuditEvent.action == "study.exported")).all()
        assert [(e.actor, e.after["format"], e.after["file"]["bytes"]) for e in exported] == [
            (f"investigator:{E2E_USER}", "csv", Path(download.value.path()).stat().st_size)]
        for n, title in enumerate(INVESTIGATOR_PAGES[3:], start=10):  # the study operations (issue 12)
            _open(page, title)
            _shot(page, f"tour_{n}_{title.lower().replace(' ', '_')}.png")
        expect(page.get_by_role("button", name="Download these events as CSV")).to_be_visible()
        browser.close()
    outside = [u for u in requests if not u.startswith((base, "data:", "blob:"))]
    assert not outside, f"requests that left the server (a favicon or font from a CDN?): {outside}"


@pytest.mark.parametrize("size", [(1440, 900), (1024, 768)], ids=["1440x900", "1024x768"])
def test_the_welcome_page_is_the_front_door(server, size):
    """A visitor's first page (issue 13): what the platform is, the way in for readers, investigators and
    visitors (each link works), the demo disclaimer; nothing cut off at a laptop's or a small screen's size."""
    from playwright.sync_api import expect, sync_playwright

    base, _, _ = server
    OUT.mkdir(exist_ok=True)
    with sync_playwright() as p:
        browser = launch_chromium(p)
        page = browser.new_page(viewport={"width": size[0], "height": size[1]})
        page.goto(base)
        _settle(page, WELCOME_TITLE)
        assert _nav(page) == START_PAGES + DEMO_PAGES + SIGNIN_PAGES
        main = page.locator('[data-testid="stMain"]')
        for heading in ("Readers", "Investigators", "Visitors"):
            expect(main.locator("h3").filter(has_text=heading)).to_be_visible()
        expect(main.get_by_text("not for clinical use").first).to_be_visible()
        # nothing wider than the window (no horizontal scrolling, no text cut at the right)
        assert page.evaluate("() => document.querySelector('[data-testid=stMain]').scrollWidth <= window.innerWidth")
        _shot(page, f"welcome_{size[0]}x{size[1]}.png")
        for link, title in (("Reader sign-in", "Reader sign-in"), ("Investigator sign-in", "Investigator sign-in"),
                            ("Model playground", "Model playground")):
            page.goto(base)
            _settle(page, WELCOME_TITLE)
            main.get_by_role("link", name=link).click()
            # the page's title (the playground draws it before it loads the model, which takes a while cold)
            expect(page.locator("h1").filter(has_text=title).first).to_be_visible(timeout=90_000)
        if size == (1024, 768):  # Try the study on a small screen: the photograph and the answers side by side
            _open(page, "Try the study")
            page.get_by_role("button", name="Start").click()
            expect(page.get_by_text("Case 1 of 10")).to_be_visible(timeout=30_000)
            _idle(page)
            page.wait_for_function("() => window.__caseViewer && window.__caseViewer.painted", timeout=30_000)
            submit = page.locator('[data-testid="stFormSubmitButton"] button')
            submit.click()
            expect(page.get_by_text("Choose a diagnosis first.")).to_be_visible(timeout=30_000)
            _idle(page)
            stage = page.locator(".cv-stage").bounding_box()
            assert stage["width"] >= 400 and stage["height"] >= 400, f"the photograph is small: {stage}"
            for what, box in (("photograph", stage), ("Submit", submit.bounding_box()),
                              ("error", page.get_by_text("Choose a diagnosis first.").bounding_box()),
                              ("first answer", page.locator('[role="radiogroup"] label').first.bounding_box())):
                assert box["y"] >= 0 and box["y"] + box["height"] <= size[1] + 1, f"{what} is not in view: {box}"
            _shot(page, "try_study_1024x768.png")
        browser.close()


@pytest.fixture
def answered_server(tmp_path, tiny_cnn_checkpoint):
    """A crossover study answered by four simulated readers (through the reader workflow), served with
    investigator credentials from the environment."""
    pytest.importorskip("playwright.sync_api", reason="the playwright package is not installed")
    from argon2 import PasswordHasher

    from study.jobs.simulate_readers import simulate

    url, ids, _ = make_study(tmp_path, design="crossover", n_cases=10, n_readers=0)
    simulate(db.session_factory(db.make_engine(url)), ids["study"], 4, seed=3)
    env = {"REVISION_DB_URL": url, "REVISION_APP_MODEL": "revision-tiny-cnn",
           "REVISION_APP_CHECKPOINT": str(tiny_cnn_checkpoint), "REVISION_PUBLIC_DEMO": "off",
           "REVISION_INVESTIGATOR_USER": E2E_USER,
           "REVISION_INVESTIGATOR_PASSWORD_HASH": PasswordHasher().hash(E2E_PASSWORD)}
    with streamlit_server(tmp_path, env) as (base, _proc):
        yield base


def test_the_investigator_downloads_the_report_with_its_mrmc_table(answered_server):
    """Issue 12: the report the app hands out is the one analysis, MRMC table included, in colour."""
    from playwright.sync_api import expect, sync_playwright

    OUT.mkdir(exist_ok=True)
    with sync_playwright() as p:
        browser = launch_chromium(p)
        page = browser.new_page(viewport={"width": 1440, "height": 900})
        page.goto(f"{answered_server}/investigator_signin")
        expect(page.get_by_role("textbox", name="User")).to_be_visible(timeout=30_000)
        page.get_by_role("textbox", name="User").fill(E2E_USER)
        page.get_by_role("textbox", name="Password").fill(E2E_PASSWORD)
        page.get_by_role("button", name="Sign in").click()
        _settle(page, "Study set-up")
        _open(page, "Analysis and exports")
        page.get_by_role("button", name="Run the analysis").click()
        download_button = page.get_by_role("button", name="Download the HTML report")
        expect(download_button).to_be_visible(timeout=180_000)
        _idle(page)
        _shot(page, "analysis_page_1440x900.png")
        with page.expect_download(timeout=60_000) as download:
            download_button.click()
        html = Path(download.value.path()).read_text("utf-8")
        browser.close()
    assert "id='mrmc'" in html and "AUC" in html
    assert "#000001" not in html  # Streamlit's placeholder colours never reach the report's charts
