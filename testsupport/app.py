"""The app under test and the benchmarks: studies of photographs with stored AI outputs (no model runs), the app
served headless on a free port, Chromium via Playwright, the reader's steps in a browser and in AppTest."""
from __future__ import annotations

import contextlib
import io
import os
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import numpy as np
from PIL import Image

from study.domain.config import parse_text
from study.domain.design import build_design
from study.domain.readers import add_reader
from study.domain.studies import create_study
from study.jobs.precompute import store_ai_output
from study.storage import db
from testsupport.studies import committed, study_toml

REPO_ROOT = Path(__file__).resolve().parents[1]
APP = str(REPO_ROOT / "app.py")
CARD = {"name": "ReVision test model", "architecture": "test", "version": "feedc0de12345678", "input_size": 64,
        "device": "cpu", "precision": "fp32", "source": "test", "is_demo": True}
# distinctive probabilities: these strings must never reach the browser for an unaided item
PROBS = {"diabetic_retinopathy": 0.8731, "amd": 0.1234, "glaucoma": 0.4567, "rvo": 0.0321,
         "pathologic_myopia": 0.2468}
TRUTH = ["amd", "normal", "glaucoma", "diabetic_retinopathy", "rvo", "normal"]


def readers_and_design(s, study, n_readers: int, model_version: str | None = CARD["version"]) -> list[str]:
    """Add ``n_readers`` readers (2, 7, 12 ... years of experience), build the design, pin the AI's model
    version (``None``: leave it as precompute set it) and commit; returns the readers' access codes."""
    codes = []
    for i in range(n_readers):
        _, code = committed(add_reader, s, study.id, display_name=f"Reader {i}", years_experience=2 + 5 * i)
        codes.append(code)
    if n_readers:  # without readers there is no design yet (simulate adds readers and builds it)
        committed(build_design, s, study.id)
    if model_version is not None:
        study.model_version = model_version
    s.commit()
    return codes


SALIENCY_CARD = {**CARD, "saliency": {"method": "integrated_gradients", "steps": 32, "findings": 3}}


def map_stack(image) -> tuple:
    """Display-ready maps of the three most probable findings of ``PROBS`` (a blob each, in a different place),
    as ``revision_core.saliency_batch`` returns them to precompute."""
    from revision_core.saliency_batch import Map
    from revision_core.saliency_render import display_png

    w, h = image.size
    yy, xx = np.mgrid[0:h, 0:w]
    shift = float(np.asarray(image, dtype=np.float32).mean()) % 1  # each photograph's maps differ a little
    out = []
    for rank, finding in enumerate(sorted(PROBS, key=PROBS.get, reverse=True)[:3]):
        cx, cy = (0.25 + 0.2 * rank + 0.05 * shift) * w, 0.5 * h
        m = np.exp(-(((xx - cx) / (0.12 * w)) ** 2 + ((yy - cy) / (0.12 * h)) ** 2)).astype(np.float32)
        png, mw, mh = display_png(image, m)
        out.append(Map(finding, png, mw, mh, {"steps": 32, "baseline": "blurred"}))
    return tuple(out)


# ------------------------------------------------------------------ the reader's steps in AppTest

def sign_in(at, code: str):
    """Type ``code`` on the reader sign-in page and press Sign in."""
    at.text_input(key="access_code").input(code)
    at.button[0 if at.button[0].label == "Sign in" else -1].click()
    return at.run()


def signed_in(code: str):
    """An AppTest of the app, signed in as the reader with ``code`` and on the reading page when that worked."""
    from streamlit.testing.v1 import AppTest

    at = AppTest.from_file(APP, default_timeout=60)
    at.switch_page("pages/reader_signin.py").run()
    sign_in(at, code)
    if at.session_state["role"] == "reader":  # the navigation now offers the reading page
        at.switch_page("pages/reader_study.py").run()
    return at


def consent(at):
    at.checkbox(key="consent_box").check().run()
    at.button(key="consent_start").click().run()
    return at


def submit_button(at):
    """The reading page's Submit button in an AppTest run."""
    return next(b for b in at.button if str(b.key or "").startswith("submit_"))


# ------------------------------------------------------------------ the real app server and browser

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--disable-gpu"]


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def streamlit_server(log_dir: Path, env: dict[str, str]):
    """Yield (base url, process) of the app served headless on a free port, as ``make run`` serves it
    (scripts/serve_app.py); stopped on exit. ``env`` is added to this process's environment.

    Each server gets a port the kernel just handed out as free (so parallel test workers never share one);
    should another process take it before the server binds it, the server is started again on a new one."""
    for attempt in range(3):
        port = free_port()
        log_path = Path(log_dir) / f"streamlit-{port}.log"
        with open(log_path, "w") as log:
            proc = subprocess.Popen([sys.executable, "scripts/serve_app.py", "--server.headless", "true",
                                     "--server.port", str(port), "--browser.gatherUsageStats", "false"],
                                    cwd=REPO_ROOT, env={**os.environ, **env}, stdout=log, stderr=subprocess.STDOUT)
            try:
                deadline, ready = time.time() + 60, False
                while not ready and time.time() <= deadline and proc.poll() is None:
                    try:
                        urllib.request.urlopen(f"http://127.0.0.1:{port}/_stcore/health", timeout=2)
                        ready = proc.poll() is None  # it answered and still runs
                    except OSError:
                        time.sleep(0.3)
                if ready:
                    yield f"http://127.0.0.1:{port}", proc
                    return
                text = log_path.read_text()
                if attempt < 2 and "is not available" in text:
                    continue  # taken between free_port() and the server's bind
                raise RuntimeError("streamlit did not start: " + text[-2000:])
            finally:
                stop(proc)


def stop(proc: subprocess.Popen) -> None:
    """End a server process this test started: politely, then for good after 10 s."""
    proc.terminate()
    try:
        proc.wait(10)
    except subprocess.TimeoutExpired:
        proc.kill()


def launch_chromium(playwright):
    return playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)


def wait_script_idle(page, timeout_ms: int = 30_000) -> None:
    """Wait for the end of the app's script run (the app root's script state)."""
    from playwright.sync_api import expect

    expect(page.locator('[data-testid="stApp"][data-test-script-state="notRunning"]')).to_have_count(
        1, timeout=timeout_ms)


def settle_after_change(page, frames: list, before: int) -> None:
    """After a widget change in the answer column: wait until the rerun it causes (each change reruns the column
    and keeps a draft; on an aided case the AI panel comes with it) has sent something past ``frames[before]``
    (at most 10 s) and ended, so traffic counted from here on belongs to what follows."""
    for _ in range(100):
        if len(frames) > before:
            break
        page.wait_for_timeout(100)
    wait_script_idle(page)


def answer_default_protocol(page) -> None:
    """Answer the default protocol's form in the browser: first diagnosis, confidence 70, no referral."""
    page.locator('[role="radiogroup"]').nth(0).locator("label").first.click()
    number = page.locator('input[type="number"]').first
    number.fill("70")
    number.press("Tab")
    page.locator('[role="radiogroup"]').last.get_by_text("No", exact=True).click()


def viewer_view_changes(page, sent: list) -> tuple[int, list[float]]:
    """20 view changes in the case viewer (6 wheel zooms, 5 drags, 5 contrast values, 4 keys); returns
    (messages the browser sent meanwhile, from ``sent`` as filled by a websocket listener; the time
    in ms of each frame the viewer drew meanwhile)."""
    frames_before = page.evaluate("() => window.__caseViewer.frames.length")
    box = page.locator(".cv-stage").bounding_box()
    cx, cy = box["x"] + box["width"] / 2, box["y"] + box["height"] / 2
    mark = len(sent)
    page.mouse.move(cx, cy)
    for _ in range(6):
        page.mouse.wheel(0, -200)
        page.wait_for_timeout(60)
    for dx in (80, -60, 40, -90, 70):
        page.mouse.move(cx, cy)
        page.mouse.down()
        page.mouse.move(cx + dx, cy + dx / 3, steps=3)
        page.mouse.up()
        page.wait_for_timeout(40)
    for value in ("1.3", "0.8", "1.5", "1.1", "1.7"):
        page.locator('input[data-control="contrast"]').fill(value)
        page.wait_for_timeout(40)
    for key in ("+", "ArrowLeft", "g", "g"):
        page.keyboard.press(key)
        page.wait_for_timeout(60)
    page.wait_for_timeout(1000)
    return len(sent) - mark, page.evaluate("(n) => window.__caseViewer.frames.slice(n)", frames_before)


# ------------------------------------------------------------------ studies of real-size photographs

REAL_PHOTOS = REPO_ROOT.parent / "shared" / "real" / "idrid"


def real_photos() -> list[Path]:
    """The shared real fundus photographs (IDRiD, 3410 x 2848), or [] where ../shared is absent."""
    return sorted(REAL_PHOTOS.glob("*.jpg")) if REAL_PHOTOS.is_dir() else []


def _heatmap_png(width: int, height: int) -> bytes:
    """A saliency-like overlay (a red blob), as precompute stores one for the saliency arm."""
    yy, xx = np.mgrid[0:height, 0:width]
    blob = np.exp(-(((xx - 0.6 * width) / (0.15 * width)) ** 2 + ((yy - 0.45 * height) / (0.15 * height)) ** 2))
    arr = np.zeros((height, width, 3), dtype=np.uint8)
    arr[..., 0] = (255 * blob).astype(np.uint8)
    arr[..., 1] = (80 * blob).astype(np.uint8)
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, format="PNG")
    return buf.getvalue()


def make_photo_study(tmp_path: Path, photos: list[Path], *, design: str = "multi_arm",
                     arms: list[str] | None = None, n_readers: int = 1, eyes: tuple[str, ...] = ("OD", "OS"),
                     precompute_with=None, saliency: str = "picture",
                     **toml) -> tuple[str, Path, dict[str, int], list[str]]:
    """A SQLite study whose cases are ``photos`` imported through the manifest import into a store under
    ``tmp_path`` (as an investigator imports them), with AI outputs stored directly (``saliency``: ``"maps"``,
    three display-ready maps a case as precompute makes them, else one picture as older studies hold), or with
    ``precompute_with`` (a loaded model) computed by the study's own precompute, maps included.
    Returns (db url, store root, ids, access codes); serve it with REVISION_STORE_ROOT = the store root."""
    import csv

    from study.domain.cases import import_manifest

    url = f"sqlite:///{tmp_path / 'study.sqlite'}"
    db.upgrade(url)
    factory = db.session_factory(db.make_engine(url))
    store = tmp_path / "store"
    manifest = tmp_path / "manifest.csv"
    with manifest.open("w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["case_id", "image_path", "label", "eye"])
        for i, photo in enumerate(photos):
            w.writerow([f"P{i:03d}", str(photo), TRUTH[i % len(TRUTH)], eyes[i % len(eyes)]])
    text = study_toml(design, arms=arms if design == "multi_arm" else None, **toml)
    with Image.open(photos[0]) as im:
        w_, h_ = im.size
    with factory() as s:
        study = committed(create_study, s, parse_text(text), text)
        cases = committed(import_manifest, s, study.id, manifest, store_root=store, paths_outside=True)  # ../shared
        if precompute_with is not None:
            from study.jobs.precompute import precompute

            precompute(s, study.id, loaded=precompute_with, store_root=store)
        for case, photo in zip(cases if precompute_with is None else (), photos):
            if saliency == "maps":  # display-ready maps as precompute makes them (of a reduced copy: same maps)
                with Image.open(photo) as im:
                    maps = map_stack(im.reduce(4).convert("RGB"))
                committed(store_ai_output, s, case.id, model_card=SALIENCY_CARD, probabilities=PROBS,
                                label_set="revision_findings", maps=maps)
            else:
                committed(store_ai_output, s, case.id, model_card=CARD, probabilities=PROBS, label_set="revision_findings",
                                saliency_png=_heatmap_png(w_ // 8, h_ // 8))
        codes = readers_and_design(s, study, n_readers, None if precompute_with is not None else CARD["version"])
        ids = {"study": study.id}
    return url, store, ids, codes


def study_photos(tmp_path: Path, n: int, *, synthetic: bool = False) -> tuple[list[Path], str]:
    """``n`` real IDRiD photographs where ../shared is present (cycled if n > 12), else (or with
    ``synthetic``) ``n`` synthetic 3000 x 2500 JPEGs of about the same weight; and a line saying which."""
    real = [] if synthetic else real_photos()
    if real:
        return [real[i % len(real)] for i in range(n)], f"{n} real IDRiD photographs (3410 x 2848)"
    rng = np.random.default_rng(0)
    out = []
    for i in range(n):
        arr = np.zeros((2500, 3000, 3), dtype=np.uint8)
        arr[..., 0] = 100 + (10 * i) % 120
        arr[..., 1] = rng.integers(30, 90, (2500, 3000), dtype=np.uint8)
        out.append(Path(tmp_path) / f"synthetic{i:03d}.jpg")
        Image.fromarray(arr).save(out[-1], quality=90)
    return out, f"{n} synthetic 3000 x 2500 JPEGs"
