"""Issue 19 in the browser: the analysis page of a finished three-arm study (unaided / AI / AI + saliency) of the
real IDRiD photographs with one reader per experience level (the study that used to stop with "math range
error") shows every section, each with its result or its reason, and no traceback, NaN or interval of zero
width in its text (Streamlit draws table cells on a canvas: the cells' text is checked on the same sections in
tests/test_analysis_shapes.py and tests/test_app_analysis_page.py); full-page screenshots at 1440 x 900 and
1024 x 768 go to test-output/.

Needs /usr/bin/chromium, the playwright package and ../shared/real/idrid; skips, saying which is absent.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from study.jobs.simulate_readers import answer_all
from study.storage import db
from testsupport.app import CHROMIUM, launch_chromium, make_photo_study, real_photos, streamlit_server, wait_script_idle

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "test-output"
USER, PASSWORD = "dr-analysis", "three-arms-only-pw-9K"

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(not Path(CHROMIUM).is_file(), reason=f"{CHROMIUM} is absent (apt-get install chromium)"),
    pytest.mark.skipif(not real_photos(), reason="../shared/real/idrid (the real photographs) is absent"),
]


@pytest.fixture
def three_arm_server(tmp_path):
    pytest.importorskip("playwright.sync_api", reason="the playwright package is not installed")
    from argon2 import PasswordHasher
    from sqlalchemy import select

    from study.storage.models import Reader

    url, store, ids, _ = make_photo_study(tmp_path, real_photos(), design="multi_arm",
                                          arms=["unaided", "ai", "ai_saliency"], n_readers=3)
    factory = db.session_factory(db.make_engine(url))
    with factory() as s:
        pseudonyms = list(s.scalars(select(Reader.pseudonym).where(Reader.study_id == ids["study"])))
    answer_all(factory, ids["study"], pseudonyms, seed=7)
    env = {"REVISION_DB_URL": url, "REVISION_STORE_ROOT": str(store), "REVISION_PUBLIC_DEMO": "off",
           "REVISION_INVESTIGATOR_USER": USER, "REVISION_INVESTIGATOR_PASSWORD_HASH": PasswordHasher().hash(PASSWORD)}
    with streamlit_server(tmp_path, env) as (base, _proc):
        yield base


def _idle(page) -> None:
    wait_script_idle(page, 180_000)


def test_the_three_arm_study_with_one_reader_per_level_is_analysed_in_the_browser(three_arm_server):
    from playwright.sync_api import expect, sync_playwright

    OUT.mkdir(exist_ok=True)
    with sync_playwright() as p:
        browser = launch_chromium(p)
        for width, height in ((1440, 900), (1024, 768)):
            page = browser.new_page(viewport={"width": width, "height": height})
            page.goto(f"{three_arm_server}/investigator_signin")
            expect(page.get_by_role("textbox", name="User")).to_be_visible(timeout=60_000)
            page.get_by_role("textbox", name="User").fill(USER)
            page.get_by_role("textbox", name="Password").fill(PASSWORD)
            page.get_by_role("button", name="Sign in").click()
            _idle(page)
            page.locator('[data-testid="stSidebarNavLink"]').filter(has_text="Analysis and exports").first.click()
            _idle(page)
            page.get_by_role("button", name="Run the analysis").click()
            expect(page.get_by_role("button", name="Download the HTML report")).to_be_visible(timeout=300_000)
            _idle(page)
            assert page.locator('[data-testid="stException"]').count() == 0
            text = page.locator('[data-testid="stMain"]').inner_text()
            assert "could not run" not in text and "Traceback" not in text
            assert not re.search(r"\b(nan|NaN|None|inf)\b", text)
            intervals = re.findall(r"([+-]?\d+(?:\.\d+)?%?) to ([+-]?\d+(?:\.\d+)?%?)", text)
            assert intervals and not [i for i in intervals if i[0] == i[1] and "%" not in i[0]]  # no zero width
            for heading in ("Accuracy", "Mixed-effects logistic model", "Interaction with the AI", "Reading time"):
                assert heading in text
            assert "one reader per experience level: the level effect cannot be separated from the reader effect" \
                in text
            # the aided arms against each other (the tables are drawn on a canvas: their cells are checked through
            # study.outputs.report.sections in tests/test_analysis_shapes.py; here the text around them)
            assert "AI-aided with saliency map compared with AI-aided" in text
            assert "Holm" in text
            main_height = page.evaluate("() => document.querySelector('[data-testid=stMain]').scrollHeight")
            page.set_viewport_size({"width": width, "height": min(int(main_height) + 40, 16000)})
            page.wait_for_timeout(500)
            page.screenshot(path=OUT / f"analysis_three_arms_{width}x{height}.png", full_page=True)
            page.close()
        browser.close()
