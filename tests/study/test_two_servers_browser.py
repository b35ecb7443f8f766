"""Two real app servers behind a real nginx (the shipped deploy/nginx/revision.conf, sticky by cookie) on one
PostgreSQL database and one photograph folder, driven in Chromium (issue 20): a reader signs in and reads on
one server; their photograph links work on the other (one key, in the database; one store); a reload moved to
the other server keeps them signed in on the same case; wrong codes typed on one server slow the next try on
the other, and the right code still gets in; a revocation from the command line ends the session on whichever
server the reader is on, and their photograph links stop working on both. Screenshots go to test-output/.

Needs PostgreSQL (tests/study/conftest.py starts one), nginx (scripts/install_system_deps.sh installs it),
/usr/bin/chromium and the playwright package; skips, saying which, without them.
"""
from __future__ import annotations

import contextlib
import shutil
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from sqlalchemy import func, select

from study.domain import cases, design, readers
from study.domain.config import parse_text
from study.domain.studies import create_study
from study.jobs.precompute import store_ai_output
from study.storage import db
from study.storage.models import Answer, AuditEvent, Case, Study
from tests.app_helpers import SUBMIT_SELECTOR
from testsupport.app import CARD, CHROMIUM, PROBS, answer_default_protocol, launch_chromium
from testsupport.app import free_port, stop, streamlit_server, wait_script_idle
from testsupport.studies import study_toml

ROOT = Path(__file__).resolve().parents[2]
OUT = ROOT / "test-output"
NGINX = shutil.which("nginx") or ("/usr/sbin/nginx" if Path("/usr/sbin/nginx").is_file() else None)
SHIPPED = ROOT / "deploy" / "nginx" / "revision.conf"
AI_MARKERS = ["AI suggestion", "0.8731", CARD["version"]]

pytestmark = [
    pytest.mark.browser,
    pytest.mark.postgresql,
    pytest.mark.skipif(not Path(CHROMIUM).is_file(), reason=f"{CHROMIUM} is absent (scripts/install_system_deps.sh "
                       "installs it)"),
    pytest.mark.skipif(NGINX is None, reason="nginx is absent (apt-get install nginx; scripts/install_system_deps.sh "
                       "does it)"),
]


def nginx_config(folder: Path, listen: int, ports: tuple[int, int]) -> Path:
    """The shipped configuration, with this test's ports and one test-only header naming the server that
    answered, inside a main configuration that runs nginx in the foreground from ``folder``."""
    shipped = SHIPPED.read_text()
    conf = (shipped.replace("listen 80;", f"listen 127.0.0.1:{listen};")
            .replace("server 127.0.0.1:8601", f"server 127.0.0.1:{ports[0]}")
            .replace("server 127.0.0.1:8602", f"server 127.0.0.1:{ports[1]}")
            .replace("add_header X-Content-Type-Options nosniff always;",
                     "add_header X-Content-Type-Options nosniff always;\n"
                     "    add_header X-Test-Upstream $upstream_addr always;"))
    assert conf.count(f"127.0.0.1:{ports[0]}") == conf.count(f"127.0.0.1:{ports[1]}") == 1, "the shipped file changed"
    temp = " ".join(f"{kind}_temp_path {folder / kind};" for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi"))
    main = folder / "nginx.conf"
    main.write_text(f"daemon off;\nmaster_process off;\npid {folder / 'nginx.pid'};\n"
                    f"error_log {folder / 'error.log'} warn;\nevents {{ worker_connections 512; }}\n"
                    f"http {{\n  access_log {folder / 'access.log'};\n  {temp}\n{conf}\n}}\n")
    return main


@contextlib.contextmanager
def nginx(folder: Path, ports: tuple[int, int]):
    folder.mkdir(parents=True, exist_ok=True)
    listen = free_port()
    main = nginx_config(folder, listen, ports)
    check = subprocess.run([NGINX, "-t", "-p", str(folder), "-c", str(main)], capture_output=True, text=True)
    assert check.returncode == 0, check.stderr
    proc = subprocess.Popen([NGINX, "-p", str(folder), "-c", str(main)], stdout=subprocess.DEVNULL,
                            stderr=subprocess.STDOUT)
    try:
        deadline = time.time() + 30
        while True:
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", listen), timeout=1):
                break
            assert time.time() < deadline and proc.poll() is None, (folder / "error.log").read_text()[-2000:]
            time.sleep(0.1)
        yield f"http://127.0.0.1:{listen}"
    finally:
        stop(proc)


def _get(url: str, route: str | None = None) -> tuple[int, dict, bytes]:
    request = urllib.request.Request(url, headers={"Cookie": f"revision_route={route}"} if route else {})
    try:
        with urllib.request.urlopen(request, timeout=30) as resp:
            return resp.status, dict(resp.headers), resp.read()
    except urllib.error.HTTPError as err:
        return err.code, dict(err.headers), err.read()


def route_to(base: str, port: int) -> str:
    """A route cookie value that nginx's consistent hash sends to the server on ``port``."""
    for i in range(500):
        route = f"route-{i:04d}"
        _status, headers, _ = _get(f"{base}/_stcore/health", route)
        if headers.get("X-Test-Upstream", "").endswith(f":{port}"):
            return route
    raise AssertionError(f"no route to port {port}")


@pytest.fixture
def deployment(pg_server, tmp_path):
    """A crossover study on PostgreSQL (4 imported photographs, AI outputs, 2 readers), two app servers on it
    sharing one photograph folder, nginx in front; yields (proxy url, db url, codes, {port: route})."""
    pytest.importorskip("playwright.sync_api", reason="the playwright package is not installed")
    url = pg_server.new_database()
    db.upgrade(url)
    store, photos = tmp_path / "store", tmp_path / "photos"
    rng = np.random.default_rng(20)
    for i, label in enumerate(("amd", "glaucoma", "normal", "amd")):
        (photos / label).mkdir(parents=True, exist_ok=True)
        Image.fromarray(rng.integers(0, 255, (240, 320, 3), dtype=np.uint8)).save(photos / label / f"P{i}.png")
    engine = db.make_engine(url)
    factory = db.session_factory(engine)
    text = study_toml("crossover", washout=0, name="Two servers http://evil.example/x")
    with factory() as s:
        study = create_study(s, parse_text(text), text)
        cases.import_folder(s, study.id, photos, store_root=store)
        for case in s.scalars(select(Case).where(Case.study_id == study.id)):
            store_ai_output(s, case.id, model_card=CARD, probabilities=PROBS, label_set="revision_findings")
        codes = [readers.add_reader(s, study.id, display_name=f"Dr {i}", years_experience=2 + 10 * i)[1]
                 for i in range(2)]
        design.build_design(s, study.id)
        s.get(Study, study.id).model_version = CARD["version"]
        s.commit()
    engine.dispose()
    env = {"REVISION_DB_URL": url, "REVISION_STORE_ROOT": str(store), "REVISION_TRUSTED_PROXIES": "127.0.0.1,::1",
           "REVISION_PUBLIC_DEMO": "off", "REVISION_INVESTIGATOR_PASSWORD": "two-servers-only",
           "STREAMLIT_SERVER_COOKIE_SECRET": "two-servers-test-cookie-secret-0123456789abcdef"}
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    with streamlit_server(tmp_path / "a", env) as (base_a, _pa), streamlit_server(tmp_path / "b", env) as (base_b, _pb):
        ports = (int(base_a.rsplit(":", 1)[1]), int(base_b.rsplit(":", 1)[1]))
        with nginx(tmp_path / "nginx", ports) as proxy:
            yield proxy, url, codes, {port: route_to(proxy, port) for port in ports}


def _idle(page) -> None:
    wait_script_idle(page, 60_000)


def _browser_on(browser, proxy: str, route: str):
    context = browser.new_context(viewport={"width": 1300, "height": 950})
    context.add_cookies([{"name": "revision_route", "value": route, "url": proxy}])
    return context


def _sign_in(page, proxy: str, code: str) -> None:
    from playwright.sync_api import expect

    page.goto(f"{proxy}/reader_signin")
    expect(page.get_by_text("Reader sign-in").first).to_be_visible(timeout=60_000)
    _idle(page)
    page.locator("input[type=password]").fill(code)
    page.get_by_role("button", name="Sign in").click()


def _cookies_once_claimed(context, seconds: float = 30) -> dict:
    """The browser's cookies once the page has handed over the session cookie (its script posts the ticket
    after the signed-in page is drawn)."""
    deadline = time.monotonic() + seconds
    while True:
        cookies = {c["name"]: c for c in context.cookies()}
        if "revision_session" in cookies or time.monotonic() > deadline:
            return cookies
        time.sleep(0.1)


def _upstream(response) -> str:
    return response.headers.get("x-test-upstream", "")


def test_two_servers_behind_nginx_one_study(deployment):
    from playwright.sync_api import expect, sync_playwright

    proxy, url, codes, routes = deployment
    (port_a, route_a), (port_b, route_b) = routes.items()
    OUT.mkdir(exist_ok=True)
    photo_links: list[tuple[str, int]] = []
    with sync_playwright() as p:
        browser = launch_chromium(p)
        # --- sign-in and reading on server A ------------------------------------------------------------------
        reader = _browser_on(browser, proxy, route_a)
        page = reader.new_page()
        page.on("response", lambda r: photo_links.append((r.url, r.status)) if "/case-image/" in r.url else None)
        _sign_in(page, proxy, codes[0])
        expect(page.get_by_text("Instructions and consent")).to_be_visible(timeout=60_000)
        cookies = _cookies_once_claimed(reader)
        assert cookies["revision_session"]["httpOnly"] and cookies["revision_session"]["sameSite"] == "Strict"
        assert cookies["revision_route"]["value"] == route_a
        page.get_by_text("I have read the instructions").click()
        page.get_by_role("button", name="Start reading").click()
        expect(page.get_by_text("Case 1 of 4, session 1 of 2")).to_be_visible(timeout=60_000)
        _idle(page)
        page.wait_for_timeout(1500)  # the viewer fetches the photograph
        dom = page.content()
        assert "Unaided reading" in dom and not any(m in dom for m in AI_MARKERS)  # unaided: no AI, by any route
        assert not page.evaluate("() => [...document.querySelectorAll('a')].some(a => a.href.includes('evil'))")
        page.screenshot(path=OUT / "two_servers_1_reading_on_a.png")
        answer_default_protocol(page)
        page.locator(SUBMIT_SELECTOR).click()
        expect(page.get_by_text("Case 2 of 4, session 1 of 2")).to_be_visible(timeout=60_000)
        _idle(page)
        page.locator('[role="radiogroup"]').nth(0).locator("label").nth(1).click()  # a draft, on server A
        _idle(page)
        page.wait_for_timeout(1500)
        served = [(link, status) for link, status in photo_links if status == 200]
        assert served, photo_links
        link = served[-1][0].removeprefix(proxy)
        # --- its photograph link works on server B: one key (in the database), one photograph folder --------
        for route in (route_a, route_b):
            status, headers, body = _get(proxy + link, route)
            assert status == 200 and body[:2] == b"\xff\xd8", (status, body[:200])
        assert _get(proxy + link, route_b)[1]["X-Test-Upstream"].endswith(f":{port_b}")
        # --- a reload that lands on server B: still signed in, on the same case, with the draft -------------
        reader.add_cookies([{"name": "revision_route", "value": route_b, "url": proxy}])
        response = page.reload()
        assert _upstream(response).endswith(f":{port_b}")
        expect(page.get_by_text("Case 2 of 4, session 1 of 2")).to_be_visible(timeout=60_000)
        expect(page.get_by_text("Your answers to this case so far were kept")).to_be_visible(timeout=30_000)
        _idle(page)
        page.screenshot(path=OUT / "two_servers_2_reloaded_on_b.png")
        # --- throttling across servers: wrong codes on A slow the next try on B, the right code gets in ----
        prefix = readers.normalise_code(codes[1])[:4]
        wrong = [f"{prefix}-{c * 4}-{c * 4}" for c in "ABCD" if f"{prefix}-{c * 4}-{c * 4}" != codes[1]][:4]
        guesser = _browser_on(browser, proxy, route_a).new_page()
        for code in wrong:
            _sign_in(guesser, proxy, code)
            expect(guesser.get_by_text("That code is not valid")).to_be_visible(timeout=60_000)
        other = _browser_on(browser, proxy, route_b).new_page()
        start = time.monotonic()
        _sign_in(other, proxy, codes[1])
        expect(other.get_by_text("Instructions and consent")).to_be_visible(timeout=60_000)
        waited = time.monotonic() - start
        assert waited >= 2.0, waited  # the prefix's 4 failures (3 free): 2 s, counted in the shared database
        other.screenshot(path=OUT / "two_servers_3_slowed_then_in_on_b.png")
        # --- revocation from the command line ends the session on server B at its next interaction ----------
        done = subprocess.run([sys.executable, "-m", "study", "revoke", "R001", "--reason", "left the hospital",
                               "--db", url, "--actor", "investigator:lead"], cwd=ROOT, capture_output=True, text=True)
        assert done.returncode == 0, done.stderr
        answer_default_protocol(page)
        page.locator(SUBMIT_SELECTOR).click()
        expect(page.get_by_text("Your access code was withdrawn by the study team; your answers are saved."))\
            .to_be_visible(timeout=60_000)
        expect(page.get_by_text("Reader sign-in").first).to_be_visible()
        _idle(page)
        assert page.locator('[data-testid="stException"]').count() == 0
        page.screenshot(path=OUT / "two_servers_4_revoked.png")
        for route in (route_a, route_b):  # the photograph links end with the code, on both servers
            status, _headers, body = _get(proxy + link, route)
            assert status == 403 and b"withdrawn" in body and b"Traceback" not in body
        browser.close()
    factory = db.session_factory(db.make_engine(url))
    with factory() as s:
        assert s.scalar(select(func.count()).select_from(Answer)) == 1  # the revoked submit stored nothing
        throttled = s.scalars(select(AuditEvent).where(AuditEvent.action == "reader.sign_in_throttled")).all()
        assert [e.after["delay_seconds"] for e in throttled] == [1.0, 2.0]
        assert {e.entity_id for e in throttled} == {"client:ip:127.0.0.1"}  # the forwarded address, not ::ffff:
