"""End to end in a real browser: a reader signs in with a code, consents and completes a short sequential
study; the database holds the answers, and while an unaided case is on screen neither the DOM nor the
websocket traffic carries any AI output. Screenshots go to test-output/ (gitignored).

Needs /usr/bin/chromium (scripts/install_system_deps.sh installs it) and the playwright package; skips
with the reason otherwise.
"""
from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
from sqlalchemy import func, select

from study import db
from study.models import Answer, AuditEvent
from tests.app_helpers import CARD, make_study

CHROMIUM = "/usr/bin/chromium"
ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "test-output"
AI_MARKERS = ["AI suggestion", "It can be wrong", "0.8731", CARD["version"], CARD["name"]]

pytestmark = [
    pytest.mark.skipif(not Path(CHROMIUM).is_file(), reason=f"{CHROMIUM} is absent (apt-get install chromium; "
                       "scripts/install_system_deps.sh does it)"),
]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def server(tmp_path, tiny_cnn_checkpoint):
    pytest.importorskip("playwright.sync_api", reason="the playwright package is not installed")
    url, ids, codes = make_study(tmp_path, design="sequential", n_cases=2, n_readers=1)
    port = _free_port()
    env = {**os.environ, "REVISION_DB_URL": url, "REVISION_APP_MODEL": "revision-tiny-cnn",
           "REVISION_APP_CHECKPOINT": str(tiny_cnn_checkpoint), "REVISION_INVESTIGATOR_PASSWORD": "e2e-only"}
    log = open(tmp_path / "streamlit.log", "w")
    proc = subprocess.Popen([sys.executable, "-m", "streamlit", "run", "app.py", "--server.headless", "true",
                             "--server.port", str(port), "--browser.gatherUsageStats", "false"],
                            cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        deadline = time.time() + 60
        while True:
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}/_stcore/health", timeout=2)
                break
            except OSError:
                if time.time() > deadline or proc.poll() is not None:
                    raise RuntimeError("streamlit did not start: " + (tmp_path / "streamlit.log").read_text()[-2000:])
                time.sleep(0.5)
        yield f"http://127.0.0.1:{port}", url, codes
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()


def _text(frames: list) -> str:
    return "\n".join(f.decode("utf-8", "replace") if isinstance(f, bytes) else str(f) for f in frames)


def test_reader_completes_a_sequential_study_without_ai_leaks(server):
    from playwright.sync_api import expect, sync_playwright

    base, url, codes = server
    OUT.mkdir(exist_ok=True)
    frames: list = []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=[
            "--no-sandbox", "--disable-background-networking", "--disable-component-update", "--disable-sync",
            "--disable-gpu"])
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        page.on("websocket", lambda ws: ws.on("framereceived", lambda payload: frames.append(payload)))
        page.goto(f"{base}/reader_signin")
        expect(page.get_by_text("Reader sign-in").first).to_be_visible(timeout=30_000)
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
            page.wait_for_timeout(800)  # let the rest of this run's deltas arrive
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
            mark = len(frames)
            page.locator('[data-testid="stFormSubmitButton"] button').click()
        expect(page.get_by_text("Study complete")).to_be_visible(timeout=30_000)
        page.screenshot(path=OUT / "e2e_4_complete.png")
        browser.close()
    factory = db.session_factory(db.make_engine(url))
    with factory() as s:
        assert s.scalar(select(func.count()).select_from(Answer)) == 4
        assert s.scalar(select(func.count()).select_from(AuditEvent)
                        .where(AuditEvent.action == "reader.consented")) == 1
