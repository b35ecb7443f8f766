"""Build small study databases for the app tests (no model needed: AI outputs are stored directly)."""
from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import numpy as np
from PIL import Image

from study.storage import db
from study.domain.cases import add_case
from study.domain.config import parse_text
from study.domain.design import build_design
from study.jobs.precompute import store_ai_output
from study.domain.readers import add_reader
from study.domain.studies import create_study
from tests.study.helpers import study_toml, committed

REPO_ROOT = Path(__file__).resolve().parents[1]

APP = str(Path(__file__).resolve().parents[1] / "app.py")
CARD = {"name": "ReVision test model", "architecture": "test", "version": "feedc0de12345678", "input_size": 64,
        "device": "cpu", "precision": "fp32", "source": "test", "is_demo": True}
# distinctive probabilities: these strings must never reach the browser for an unaided item
PROBS = {"diabetic_retinopathy": 0.8731, "amd": 0.1234, "glaucoma": 0.4567, "rvo": 0.0321,
         "pathologic_myopia": 0.2468}
TRUTH = ["amd", "normal", "glaucoma", "diabetic_retinopathy", "rvo", "normal"]


def make_study(tmp_path: Path, design: str = "sequential", n_cases: int = 3, n_readers: int = 2,
               saliency: bool | str = False, **toml) -> tuple[str, dict[str, int], list[str]]:
    """A migrated SQLite study with cases (tiny PNGs), readers and AI outputs; returns (url, study ids, codes).
    ``saliency``: ``"maps"`` stores display-ready maps of the three most probable findings (as precompute does),
    ``True`` one rendered picture (``saliency_png``, as studies precomputed before maps had)."""
    url = f"sqlite:///{tmp_path / 'study.sqlite'}"
    db.upgrade(url)
    factory = db.session_factory(db.make_engine(url))
    text = study_toml(design, **toml)
    rng = np.random.default_rng(0)
    with factory() as s:
        study = committed(create_study, s, parse_text(text), text)
        for i in range(n_cases):
            path = tmp_path / f"case{i}.png"
            Image.fromarray(rng.integers(0, 255, (48, 64, 3), dtype=np.uint8)).save(path)
            truth = TRUTH[i % len(TRUTH)]
            case = committed(add_case, s, study.id, f"C{i:03d}", str(path), {"label": truth, "findings": []})
            maps = map_stack(Image.open(path)) if saliency == "maps" else ()
            committed(store_ai_output, s, case.id, model_card=SALIENCY_CARD if maps else CARD, probabilities=PROBS,
                            label_set="revision_findings", saliency_png=_png(rng) if saliency is True else None,
                            maps=maps)
        codes = _readers_and_design(s, study, n_readers)
        ids = {"study": study.id}
    return url, ids, codes


def _readers_and_design(s, study, n_readers: int, model_version: str | None = CARD["version"]) -> list[str]:
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


def _png(rng) -> bytes:
    import io

    buf = io.BytesIO()
    Image.fromarray(rng.integers(0, 255, (48, 64, 3), dtype=np.uint8)).save(buf, format="PNG")
    return buf.getvalue()


def rendered_text(at) -> str:
    """Every string the app sent to the browser in this run (element protos, serialised)."""
    from google.protobuf.json_format import MessageToJson

    parts = []

    def walk(node):
        proto = getattr(node, "proto", None)
        if proto is not None:
            try:
                parts.append(MessageToJson(proto))
            except Exception:
                parts.append(str(proto))
        for child in getattr(node, "children", {}).values():
            walk(child)

    walk(at._tree)
    return "\n".join(parts)


# ------------------------------------------------------------------ the real app server and browser

def open_reader_session(url: str, reader_id: int) -> int:
    """A live session for a reader (what a sign-in opens), for tests that start a page as that reader: every
    run of a reader's page checks it (pages/_shared.check_reader_session)."""
    from study.domain import reader_sessions
    from study.storage.models import Reader, utcnow

    factory = db.session_factory(db.make_engine(url))
    with factory() as s:
        row, _ticket = reader_sessions.open_session(s, s.get(Reader, reader_id), client="test", now=utcnow(),
                                                    lifetime=reader_sessions.Lifetime())
        s.commit()
        return row.id


def as_signed_in_reader(at, url: str, reader_id: int):
    """Put ``at`` (an AppTest before its first run) in a reader's signed-in browser session."""
    at.session_state["role"], at.session_state["reader_id"] = "reader", reader_id
    at.session_state["reader_session_id"] = open_reader_session(url, reader_id)
    return at


# the reading page's Submit button (a plain button keyed submit_<assignment id>: the form keeps drafts)
SUBMIT_SELECTOR = '[class*="st-key-submit_"] button'


def submit_button(at):
    """The reading page's Submit button in an AppTest run."""
    return next(b for b in at.button if str(b.key or "").startswith("submit_"))


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
    (scripts/serve_app.py); stopped on exit. ``env`` is added to this process's environment."""
    port = free_port()
    log_path = Path(log_dir) / "streamlit.log"
    with open(log_path, "w") as log:
        proc = subprocess.Popen([sys.executable, "scripts/serve_app.py", "--server.headless", "true",
                                 "--server.port", str(port), "--browser.gatherUsageStats", "false"],
                                cwd=REPO_ROOT, env={**os.environ, **env}, stdout=log, stderr=subprocess.STDOUT)
        try:
            deadline = time.time() + 60
            while True:
                try:
                    urllib.request.urlopen(f"http://127.0.0.1:{port}/_stcore/health", timeout=2)
                    break
                except OSError:
                    if time.time() > deadline or proc.poll() is not None:
                        raise RuntimeError("streamlit did not start: " + log_path.read_text()[-2000:])
                    time.sleep(0.3)
            yield f"http://127.0.0.1:{port}", proc
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


# ------------------------------------------------------------------ studies of real-size photographs

REAL_PHOTOS = REPO_ROOT.parent / "shared" / "real" / "idrid"


def real_photos() -> list[Path]:
    """The shared real fundus photographs (IDRiD, 3410 x 2848), or [] where ../shared is absent."""
    return sorted(REAL_PHOTOS.glob("*.jpg")) if REAL_PHOTOS.is_dir() else []


def _heatmap_png(width: int, height: int) -> bytes:
    """A saliency-like overlay (a red blob), as precompute stores one for the saliency arm."""
    import io

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
        codes = _readers_and_design(s, study, n_readers, None if precompute_with is not None else CARD["version"])
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
