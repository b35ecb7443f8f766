"""The reading station in a real browser, with real-size photographs, at 1440 x 900, 1024 x 768 and 1180 x 820 (touch).

A reader reads the cases of a multi-arm study (unaided, AI, AI + saliency; two cases an arm, the arms in blocks)
whose photographs were imported through the manifest import: the real IDRiD photographs (3410 x 2848) where
../shared is present, else synthetic 3000 x 2500 JPEGs (the layout checks hold for both); each case's AI output
carries display-ready maps of its three most probable findings, as precompute stores them.

Checked on every case, right after Submit: the page is scrolled to the top, the photograph fills the height
below the heading and lies inside the viewport, on aided cases the AI panel is inside the viewport, and the
Submit button is inside the viewport; after a Submit with nothing answered, the error, Submit and the photograph
are all in view. On unaided and AI-only cases neither the DOM (shadow DOM included) nor the websocket frames
carry any AI text, number, picture or map link, and the browser requests no map while they are on screen (a map
of the next case is preloaded only from a saliency case). In the saliency arm the map names its finding, draws
in blue to cyan on the photograph, switches to the next finding and to outlines. In the viewer, 20 zoom, pan and
contrast changes send nothing to the server, a pinch zooms (tablet), and each case starts with a fresh view. On
the tablet every control is at least 44 px high. No request leaves the server. The photograph route serves only
signed links. Screenshots go to test-output/ (gitignored).
"""
from __future__ import annotations

import re
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from sqlalchemy import func, select

from study.storage import db
from study.storage.models import Answer
from testsupport.app import (CARD, CHROMIUM, answer_default_protocol, launch_chromium, make_photo_study,
                             settle_after_change, streamlit_server, study_photos, viewer_view_changes,
                             wait_script_idle)
from tests.app_helpers import SUBMIT_SELECTOR

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "test-output"
VIEWPORTS = [(1440, 900), (1024, 768), (1180, 820)]
N_CASES = 6  # two a arm: the first saliency case has a saliency case after it (its maps preloaded)
AI_MARKERS = ["AI suggestion", "It can be wrong", "0.8731", "87%", CARD["version"], CARD["name"], "Grad-CAM",
              "data:image/png", "Diabetic retinopathy (87"]

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(not Path(CHROMIUM).is_file(), reason=f"{CHROMIUM} is absent (apt-get install chromium; "
                       "scripts/install_system_deps.sh does it)"),
]

SHADOW_HTML = """() => [...document.querySelectorAll('[data-testid="stBidiComponentIsolated"]')]
                     .map(h => h.shadowRoot ? h.shadowRoot.innerHTML : '').join('\\n')"""
SCROLL_TOP = """() => Math.max(document.scrollingElement.scrollTop,
                              document.querySelector('[data-testid="stMain"]')?.scrollTop || 0)"""
# the share of the canvas's pixels in the map's colours (blue clearly above red): 0 without a map
MAP_PIXELS = """() => {
  const c = document.querySelector('[data-testid="stBidiComponentIsolated"]').shadowRoot.querySelector('canvas');
  const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
  let n = 0;
  for (let i = 0; i < d.length; i += 16) if (d[i + 2] > 150 && d[i + 2] > d[i] + 60) n++;
  return n / (d.length / 16);
}"""
# every control a finger may need, with its size: buttons, links, selects, sliders, number fields, radio options
# and the multiselect's box (its inner input and chevron are parts of it), in the page and in the viewer
TARGETS = """() => {
  const out = [];
  const roots = [document, ...[...document.querySelectorAll('[data-testid="stBidiComponentIsolated"]')]
                 .map(h => h.shadowRoot).filter(Boolean)];
  const sel = 'button, select, a[href], input[type=range], input[type=number], input[type=text], input[type=password],'
    + ' [role=radiogroup] label, [data-testid=stCheckbox] label, [data-testid=stMultiSelect] [role=group]';
  for (const r of roots) for (const el of r.querySelectorAll(sel)) {
    if (el.closest('[data-testid=stMultiSelect]') && !el.matches('[role=group]')) continue;
    const b = el.getBoundingClientRect(), cs = getComputedStyle(el);
    if (!b.width || !b.height || b.width < 2 || cs.visibility === 'hidden') continue;  // not shown (skip link)
    out.push([el.tagName, (el.getAttribute('aria-label') || el.textContent || '').trim().slice(0, 40),
              Math.round(b.width), Math.round(b.height)]);
  }
  return out;
}"""


@pytest.fixture(scope="module")
def photo_server(tmp_path_factory):
    pytest.importorskip("playwright.sync_api", reason="the playwright package is not installed")
    tmp = tmp_path_factory.mktemp("station")
    url, store, ids, codes = make_photo_study(tmp, study_photos(tmp, N_CASES)[0], design="multi_arm",
                                              arms=["unaided", "ai", "ai_saliency"], n_readers=len(VIEWPORTS),
                                              saliency="maps")
    env = {"REVISION_DB_URL": url, "REVISION_STORE_ROOT": str(store), "REVISION_INVESTIGATOR_PASSWORD": "e2e-only"}
    with streamlit_server(tmp, env) as (base, _proc):
        yield base, url, codes, store


@pytest.fixture(scope="module")
def link_key(photo_server):
    """The key the server signs photograph links with, kept in the database (as this process finds it)."""
    from study.services.reader import link_key

    return link_key(db.session_factory(db.make_engine(photo_server[1])))


@pytest.fixture
def our_links(link_key):
    """Read (verify) the server's signed links in this process."""
    from study.domain import image_links

    return lambda token: image_links.verify(link_key, token)


def _idle(page) -> None:
    wait_script_idle(page)


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


def _maps_named(verify, text: str) -> list[str]:
    """The saliency-map files (``<sha256>.map.png``) that signed links in ``text`` name."""
    from study.domain.image_links import LinkInvalid

    names = []
    for token in set(re.findall(r"/case-image/([A-Za-z0-9_-]+\.[A-Za-z0-9_-]+)", text)):
        try:
            names.append(verify(token).file_name)
        except LinkInvalid:  # a token cut by the regex at a frame's edge
            continue
    return [n for n in names if n.endswith(".map.png")]


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


def _check_the_map(page, tag: str) -> None:
    """The saliency arm: the map names its finding, draws in blue to cyan, switches finding and style."""
    from playwright.sync_api import expect

    caption, legend = page.locator('[data-testid="map-caption"]'), page.locator('[data-testid="map-legend"]')
    before = page.evaluate(MAP_PIXELS)
    expect(caption).to_be_hidden()
    page.locator('[data-control="overlay"]').click()
    expect(caption).to_have_text("Where the model looked for diabetic retinopathy (87%)")
    expect(legend).to_contain_text("not a lesion map")
    expect(legend).to_contain_text("top 1% (strongest)")
    page.wait_for_timeout(300)
    drawn = page.evaluate(MAP_PIXELS)
    assert drawn > before + 0.002, f"{tag}: the map drew no blue or cyan on the photograph ({before} -> {drawn})"
    page.screenshot(path=OUT / f"station_{tag}_map.png")
    page.locator('[data-control="map_finding"]').select_option(index=1)
    expect(caption).to_have_text("Where the model looked for glaucomatous optic neuropathy (46%)")
    page.locator('[data-control="map_outline"]').click()
    expect(legend).to_have_attribute("data-style", "outline")
    page.wait_for_timeout(300)
    outline = page.evaluate(MAP_PIXELS)
    assert 0 < outline < drawn, f"{tag}: outlines colour fewer pixels than filled bands ({outline} vs {drawn})"
    page.screenshot(path=OUT / f"station_{tag}_map_outline.png")
    page.locator('[data-control="overlay"]').click()
    expect(caption).to_be_hidden()


def _check_touch_targets(page, tag: str) -> None:
    small = [t for t in page.evaluate(TARGETS) if t[3] < 44 or (t[0] in ("BUTTON", "SELECT") and t[2] < 44)]
    assert not small, f"{tag}: touch targets under 44 px: {small}"


def test_reading_station_layout_maps_leaks_and_viewer(photo_server, our_links):
    from playwright.sync_api import expect, sync_playwright

    base, url, codes, _store = photo_server
    OUT.mkdir(exist_ok=True)
    with sync_playwright() as p:
        browser = launch_chromium(p)
        for (width, height), code in zip(VIEWPORTS, codes):
            received: list = []
            sent: list = []
            requests: list[tuple[int, str]] = []  # (case on screen when it was asked for, url)
            tablet = (width, height) == (1180, 820)  # a tablet's size: a touch screen, pinch to zoom
            full_walk = (width, height) == (1440, 900)  # the others stop after the first saliency case
            context = browser.new_context(viewport={"width": width, "height": height}, has_touch=tablet)
            page = context.new_page()
            on_screen = [0]
            page.on("request", lambda r: requests.append((on_screen[0], r.url)))
            page.on("websocket", lambda ws: (ws.on("framereceived", lambda f: received.append(f)),
                                             ws.on("framesent", lambda f: sent.append(f))))
            page.goto(f"{base}/reader_signin")
            page.locator("input[type=password]").fill(code)
            page.get_by_role("button", name="Sign in").click()
            expect(page.get_by_text("Instructions and consent")).to_be_visible(timeout=30_000)
            expect(page.get_by_text(f"one session of {N_CASES} readings")).to_be_visible()
            assert page.locator('[data-testid="stSidebar"]').count() == 0 or not page.locator(
                '[data-testid="stSidebar"]').is_visible(), "a reader gets no sidebar"
            page.get_by_text("I have read the instructions").click()
            # the button is enabled once the server has seen the consent (no fixed wait: it flaked under load)
            expect(page.get_by_role("button", name="Start reading")).to_be_enabled(timeout=30_000)
            mark = len(received)
            drawn = 0
            arms: dict[int, str] = {}
            on_screen[0] = 1
            page.get_by_role("button", name="Start reading").click()
            for k in range(1, N_CASES + 1):
                expect(page.get_by_text(f"Case {k} of {N_CASES}")).to_be_visible(timeout=30_000)
                _viewer_drawn(page, drawn)
                _idle(page)
                page.wait_for_timeout(300)
                drawn = page.evaluate("() => window.__caseViewer.frames.length")
                aided = page.get_by_text("AI-assisted reading").count() > 0
                saliency = page.locator('[data-control="overlay"]').count() == 1
                arms[k] = "ai_saliency" if saliency else "ai" if aided else "unaided"
                tag = f"{width}x{height}_case{k}_{arms[k]}"
                page.screenshot(path=OUT / f"station_{tag}.png")
                assert page.evaluate(SCROLL_TOP) == 0, f"{tag}: the new case must start at the top of the page"
                stage = page.locator(".cv-stage").bounding_box()
                assert _inside(stage, width, height), f"{tag}: photograph not inside the viewport: {stage}"
                assert stage["height"] >= 0.6 * height and stage["y"] + stage["height"] >= height - 56, \
                    f"{tag}: the photograph must take the height down to the bottom of the window: {stage}"
                assert stage["width"] >= 0.5 * width, f"{tag}: the photograph is too narrow: {stage}"
                submit = page.locator(SUBMIT_SELECTOR)
                assert _inside(submit.bounding_box(), width, height), f"{tag}: Submit is not in view"
                viewer = page.locator('[data-testid="case-viewer"]')
                assert viewer.get_attribute("data-zoom") == "fit", f"{tag}: each case starts with a fresh view"
                assert page.locator('[data-control="red_free"]').get_attribute("aria-pressed") == "false"
                dom = page.content() + page.evaluate(SHADOW_HTML)
                traffic = _text(received[mark:])
                if not saliency:  # no map link in what this case's page received
                    assert not _maps_named(our_links, traffic), f"{tag}: a map link reached a {arms[k]} page"
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
                if aided and arms.get(k - 1) == "unaided":  # the first aided case: Submit with nothing answered
                    submit.click()
                    error = page.get_by_text("required questions marked in red")
                    expect(error).to_be_visible(timeout=30_000)
                    _idle(page)
                    for what, box in (("the error", error.bounding_box()), ("Submit", submit.bounding_box()),
                                      ("the photograph", page.locator(".cv-stage").bounding_box())):
                        assert _inside(box, width, height), f"{tag}: {what} not in view after a refused Submit"
                    page.screenshot(path=OUT / f"station_{tag}_refused.png")
                if saliency and arms.get(k - 1) != "ai_saliency":
                    _check_the_map(page, tag)
                    if tablet:
                        _check_touch_targets(page, tag)
                    if not full_walk:
                        break
                before = len(received)
                answer_default_protocol(page)
                settle_after_change(page, received, before)  # the change's rerun carries the aided panel
                mark = len(received)
                on_screen[0] = k + 1
                submit.click()
            if full_walk:
                expect(page.get_by_text("Study complete")).to_be_visible(timeout=30_000)
            maps_asked = {k for k, u in requests if "/case-image/" in u
                          and _maps_named(our_links, u[u.index("/case-image/"):])}
            assert maps_asked and all(arms.get(k) == "ai_saliency" for k in maps_asked), \
                f"{width}x{height}: maps requested while {[arms.get(k) for k in maps_asked]} cases were on screen"
            outside = [u for _k, u in requests if not u.startswith((base, "data:", "blob:"))]
            assert not outside, f"{width}x{height}: requests that left the server: {outside}"
            context.close()
        browser.close()
    factory = db.session_factory(db.make_engine(url))
    with factory() as s:
        assert s.scalar(select(func.count()).select_from(Answer)) == N_CASES + 2 * 4


def test_photograph_route_serves_signed_links_only(photo_server, link_key):
    from study.domain import image_links
    from study.domain.cases import display_files
    from study.domain.reader_sessions import code_version
    from study.storage.models import Case, Reader

    base, url, _, store = photo_server
    factory = db.session_factory(db.make_engine(url))
    key = link_key
    with factory() as s:
        case = s.scalars(select(Case)).first()
        reader = s.scalars(select(Reader)).first()
        study_id, ref, reader_id, version = case.study_id, case.image_ref, reader.id, code_version(reader)

    def link(study: int, name: str, rid: int = reader_id, v: int = version) -> str:
        return base + image_links.image_url(key, study, name, reader_id=rid, code_version=v)

    files = display_files(study_id, ref, store)
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
