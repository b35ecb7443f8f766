"""The reading station in a real browser, with real-size photographs, at 1440 x 900, 1024 x 768 and 1180 x 820.

A reader reads one case of each arm (unaided, AI, AI + saliency) of a study whose photographs were
imported through the manifest import: the real IDRiD photographs (3410 x 2848) where ../shared is
present, else synthetic 3000 x 2500 JPEGs (the layout checks hold for both).
Checked on every case, right after Submit: the page is scrolled to the top, the photograph fills the
height below the heading and lies inside the viewport, and on aided cases the AI panel is inside the
viewport with full finding names; on the unaided case neither the DOM (shadow DOM included) nor the
websocket frames carry any AI text, number or overlay. In the viewer, 20 zoom, pan and contrast changes
send nothing to the server, a pinch zooms (at the tablet size, with touch), and each case starts with a
fresh view. The photograph route serves only signed links. Screenshots go to test-output/ (gitignored).
"""
from __future__ import annotations

import urllib.error
import urllib.request
from pathlib import Path

import pytest
from sqlalchemy import func, select

from study.storage import db
from study.storage.models import Answer
from tests.app_helpers import (CARD, CHROMIUM, SUBMIT_SELECTOR, answer_default_protocol, launch_chromium,
                               make_photo_study, streamlit_server, study_photos, viewer_view_changes)

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "test-output"
VIEWPORTS = [(1440, 900), (1024, 768), (1180, 820)]
AI_MARKERS = ["AI suggestion", "It can be wrong", "0.8731", "87%", CARD["version"], CARD["name"], "Grad-CAM",
              "data:image/png"]


pytestmark = [
    pytest.mark.skipif(not Path(CHROMIUM).is_file(), reason=f"{CHROMIUM} is absent (apt-get install chromium; "
                       "scripts/install_system_deps.sh does it)"),
]

SHADOW_HTML = """() => [...document.querySelectorAll('[data-testid="stBidiComponentIsolated"]')]
                     .map(h => h.shadowRoot ? h.shadowRoot.innerHTML : '').join('\\n')"""
SCROLL_TOP = """() => Math.max(document.scrollingElement.scrollTop,
                              document.querySelector('[data-testid="stMain"]')?.scrollTop || 0)"""


@pytest.fixture
def photo_server(tmp_path):
    pytest.importorskip("playwright.sync_api", reason="the playwright package is not installed")
    url, store, ids, codes = make_photo_study(tmp_path, study_photos(tmp_path, 3)[0], design="multi_arm",
                                              arms=["unaided", "ai", "ai_saliency"], n_readers=len(VIEWPORTS))
    env = {"REVISION_DB_URL": url, "REVISION_STORE_ROOT": str(store), "REVISION_INVESTIGATOR_PASSWORD": "e2e-only"}
    with streamlit_server(tmp_path, env) as (base, _proc):
        yield base, url, codes


def _idle(page) -> None:
    from playwright.sync_api import expect

    expect(page.locator('[data-testid="stApp"][data-test-script-state="notRunning"]')).to_have_count(1, timeout=30_000)


def _viewer_drawn(page, frames_before: int) -> None:
    page.wait_for_function("(n) => window.__caseViewer && window.__caseViewer.frames.length > n "
                           "&& document.querySelector('[data-testid=stBidiComponentIsolated]')"
                           "?.shadowRoot?.querySelector('.cv-root')?.dataset.source !== 'none'",
                           arg=frames_before, timeout=30_000)


def _inside(box, width: int, height: int) -> bool:
    return box is not None and box["y"] >= -1 and box["y"] + box["height"] <= height + 1 and box["x"] >= -1 \
        and box["x"] + box["width"] <= width + 1


def _text(frames: list) -> str:
    return "\n".join(f.decode("utf-8", "replace") if isinstance(f, bytes) else str(f) for f in frames)


def _pinch(context, page) -> None:
    """Two fingers moving apart over the photograph (touch events through the DevTools protocol)."""
    box = page.locator(".cv-stage").bounding_box()
    cx, cy = box["x"] + box["width"] / 2, box["y"] + box["height"] / 2
    cdp = context.new_cdp_session(page)

    def touch(kind: str, spread: float | None) -> None:
        points = [] if spread is None else [{"x": cx - spread, "y": cy, "id": 0}, {"x": cx + spread, "y": cy, "id": 1}]
        cdp.send("Input.dispatchTouchEvent", {"type": kind, "touchPoints": points})

    touch("touchStart", 20)
    for spread in range(40, 220, 20):
        touch("touchMove", spread)
        page.wait_for_timeout(30)
    touch("touchEnd", None)
    page.wait_for_timeout(300)


def test_reading_station_layout_leaks_and_viewer(photo_server):
    from playwright.sync_api import expect, sync_playwright

    base, url, codes = photo_server
    OUT.mkdir(exist_ok=True)
    with sync_playwright() as p:
        browser = launch_chromium(p)
        for (width, height), code in zip(VIEWPORTS, codes):
            received: list = []
            sent: list = []
            tablet = (width, height) == (1180, 820)  # a tablet's size: a touch screen, pinch to zoom
            context = browser.new_context(viewport={"width": width, "height": height}, has_touch=tablet)
            page = context.new_page()
            page.on("websocket", lambda ws: (ws.on("framereceived", lambda f: received.append(f)),
                                             ws.on("framesent", lambda f: sent.append(f))))
            page.goto(f"{base}/reader_signin")
            page.locator("input[type=password]").fill(code)
            page.get_by_role("button", name="Sign in").click()
            expect(page.get_by_text("Instructions and consent")).to_be_visible(timeout=30_000)
            expect(page.get_by_text("one session of 3 readings")).to_be_visible()
            assert page.locator('[data-testid="stSidebar"]').count() == 0 or not page.locator(
                '[data-testid="stSidebar"]').is_visible(), "a reader gets no sidebar"
            page.get_by_text("I have read the instructions").click()
            # the button is enabled once the server has seen the consent (no fixed wait: it flaked under load)
            expect(page.get_by_role("button", name="Start reading")).to_be_enabled(timeout=30_000)
            mark = len(received)
            drawn = 0
            page.get_by_role("button", name="Start reading").click()
            for k in range(1, 4):
                expect(page.get_by_text(f"Case {k} of 3")).to_be_visible(timeout=30_000)
                _viewer_drawn(page, drawn)
                _idle(page)
                page.wait_for_timeout(300)
                drawn = page.evaluate("() => window.__caseViewer.frames.length")
                aided = page.get_by_text("AI-assisted reading").count() > 0
                tag = f"{width}x{height}_case{k}_{'aided' if aided else 'unaided'}"
                page.screenshot(path=OUT / f"station_{tag}.png")
                assert page.evaluate(SCROLL_TOP) == 0, f"{tag}: the new case must start at the top of the page"
                stage = page.locator(".cv-stage").bounding_box()
                assert _inside(stage, width, height), f"{tag}: photograph not inside the viewport: {stage}"
                assert stage["height"] >= 0.65 * height and stage["y"] + stage["height"] >= height - 48, \
                    f"{tag}: the photograph must take the height down to the bottom of the window: {stage}"
                assert stage["width"] >= 0.5 * width, f"{tag}: the photograph is too narrow: {stage}"
                viewer = page.locator('[data-testid="case-viewer"]')
                assert viewer.get_attribute("data-zoom") == "fit", f"{tag}: each case starts with a fresh view"
                assert page.locator('[data-control="red_free"]').get_attribute("aria-pressed") == "false"
                dom = page.content() + page.evaluate(SHADOW_HTML)
                traffic = _text(received[mark:])
                if not aided:
                    for marker in AI_MARKERS:
                        assert marker not in dom, f"{tag}: {marker!r} in the DOM"
                        assert marker not in traffic, f"{tag}: {marker!r} in the websocket traffic"
                    assert page.locator('[data-control="overlay"]').count() == 0
                else:
                    panel = page.locator(".st-key-ai_panel").bounding_box()
                    assert _inside(panel, width, height), f"{tag}: AI panel not inside the viewport: {panel}"
                    expect(page.locator(".st-key-ai_panel").get_by_text("Age-related macular degeneration",
                                                                        exact=False)).to_be_visible()
                    assert CARD["version"] in traffic
                saliency = page.locator('[data-control="overlay"]').count() == 1
                if k == 1:
                    messages, frames = viewer_view_changes(page, sent)
                    assert frames, f"{tag}: the viewer drew nothing"
                    assert messages == 0, f"{tag}: {messages} message(s) sent to the server by view changes"
                    assert viewer.get_attribute("data-zoom") != "fit"
                    page.screenshot(path=OUT / f"station_{tag}_zoomed.png")
                    if tablet:
                        page.keyboard.press("0")
                        _pinch(context, page)
                        zoom = viewer.get_attribute("data-zoom")
                        assert zoom != "fit" and float(zoom) > 0.5, f"{tag}: pinching out must zoom in ({zoom})"
                if saliency:
                    page.locator('[data-control="overlay"]').click()
                    page.wait_for_timeout(300)
                    page.screenshot(path=OUT / f"station_{tag}_overlay.png")
                answer_default_protocol(page)
                mark = len(received)
                page.locator(SUBMIT_SELECTOR).click()
            expect(page.get_by_text("Study complete")).to_be_visible(timeout=30_000)
            context.close()
        browser.close()
    factory = db.session_factory(db.make_engine(url))
    with factory() as s:
        assert s.scalar(select(func.count()).select_from(Answer)) == 3 * len(VIEWPORTS)


def test_photograph_route_serves_signed_links_only(photo_server):
    from study.domain import image_links
    from study.domain.cases import display_files
    from study.domain.reader_sessions import code_version
    from study.services.reader import link_key
    from study.storage.models import Case, Reader

    base, url, _ = photo_server
    factory = db.session_factory(db.make_engine(url))
    key = link_key(factory)  # the key the server keeps in the database, as this process finds it
    with factory() as s:
        case = s.scalars(select(Case)).first()
        reader = s.scalars(select(Reader)).first()
        study_id, ref, reader_id, version = case.study_id, case.image_ref, reader.id, code_version(reader)

    def link(study: int, name: str, rid: int = reader_id, v: int = version) -> str:
        return base + image_links.image_url(key, study, name, reader_id=rid, code_version=v)

    files = display_files(study_id, ref, Path(url.removeprefix("sqlite:///")).parent / "store")
    good = link(study_id, files.screen.name)
    with urllib.request.urlopen(good) as resp:
        assert resp.headers["Content-Type"] == "image/jpeg"
        assert "immutable" in resp.headers["Cache-Control"] and "private" in resp.headers["Cache-Control"]
        assert resp.read()[:2] == b"\xff\xd8"
    forged = good[:-3] + ("AAA" if not good.endswith("AAA") else "BBB")
    for bad, refused in ((forged, {403}), (base + "/case-image/..%2F..%2Fetc%2Fpasswd", {400, 403, 404}),
                         (base + "/case-image/abc.%C3%A9", {403}),  # not ASCII: a short 403, no traceback
                         (link(study_id + 1, files.screen.name), {403}),  # another study: not this reader's
                         (link(study_id, files.screen.name, v=version + 1), {403})):  # another code version
        with pytest.raises(urllib.error.HTTPError) as err:
            urllib.request.urlopen(bad)
        assert err.value.code in refused, bad
        body = err.value.read().decode()
        assert "Traceback" not in body and "/tmp" not in body and len(body) < 200, body
