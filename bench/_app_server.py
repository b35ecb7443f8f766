"""Shared helpers for the app benchmarks: a large study database built fast, a headless Streamlit server
on a free port (started like tests/test_e2e_browser.py's fixture), Chromium via Playwright, and the RSS
of a process. Not a benchmark itself.

The study is built with the ``study`` functions (create_study, add_case, store_ai_output exactly as
precompute stores it, add_reader, build_design), in one transaction, with one small shared PNG and fake
but valid AI outputs (tests/app_helpers.py's CARD and PROBS), so no model runs at set-up.
"""
from __future__ import annotations

import contextlib
import os
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from testsupport.app import CARD, PROBS, TRUTH  # noqa: E402
from testsupport.studies import committed, study_toml  # noqa: E402
from testsupport.app import CHROMIUM, launch_chromium  # noqa: E402,F401  (launch_chromium: re-exported for the bench scripts)
from testsupport.app import streamlit_server as app_server  # noqa: E402



def make_big_study(tmp: Path, n_cases: int, *, design: str = "sequential", n_readers: int = 1,
                   image_size: tuple[int, int] = (256, 256), distinct_images: bool = False) -> tuple[str, list[str]]:
    """A migrated SQLite study of ``n_cases`` cases with precomputed AI output; returns (url, reader codes).

    One small noise PNG shared by every case, or with ``distinct_images`` one PNG per case (a colour
    gradient that differs per case, so that consecutive cases really show different photographs)."""
    import numpy as np
    from argon2 import PasswordHasher
    from PIL import Image

    from study.storage import db
    from study.domain import readers
    from study.domain.cases import add_case
    from study.domain.config import parse_text
    from study.domain.design import build_design
    from study.jobs.precompute import store_ai_output
    from study.domain.readers import add_reader
    from study.domain.studies import create_study

    readers.HASHER = PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1)  # set-up speed only
    tmp.mkdir(parents=True, exist_ok=True)
    url = f"sqlite:///{tmp / 'study.sqlite'}"
    db.upgrade(url)
    engine = db.make_engine(url)
    factory = db.session_factory(engine)
    rng = np.random.default_rng(0)
    image = tmp / "case.png"  # one small photograph shared by every case (the image is not what we time)
    w, h = image_size
    Image.fromarray(rng.integers(0, 255, (h, w, 3), dtype=np.uint8)).save(image)
    ramp = np.linspace(0, 255, w, dtype=np.float32)[None, :, None]

    def case_image(i: int) -> str:
        if not distinct_images:
            return str(image)
        path = tmp / f"case{i:05d}.png"
        tint = np.array([(i * 37) % 256, (i * 91) % 256, (i * 53) % 256], dtype=np.float32)
        Image.fromarray(((ramp + tint) % 256).repeat(h, axis=0).astype(np.uint8)).save(path)
        return str(path)
    text = study_toml(design, name=f"bench {n_cases} cases")
    codes = []
    with factory() as s:
        study = committed(create_study, s, parse_text(text), text)
        for i in range(n_cases):
            case = committed(add_case, s, study.id, f"C{i:05d}", case_image(i), {"label": TRUTH[i % len(TRUTH)], "findings": []})
            committed(store_ai_output, s, case.id, model_card=CARD, probabilities=PROBS, label_set="revision_findings")
        s.commit()
        for i in range(n_readers):
            _, code = committed(add_reader, s, study.id, display_name=f"Reader {i}", years_experience=2 + 5 * (i % 3))
            codes.append(code)
        committed(build_design, s, study.id)
        study.model_version = CARD["version"]
        s.commit()
    engine.dispose()
    return url, codes


@contextlib.contextmanager
def streamlit_server(tmp: Path, db_url: str, **env_extra: str):
    """Yield (base url, Popen) of the app on a free port with this database; the tests' server helper."""
    env = {"REVISION_DB_URL": db_url, "REVISION_INVESTIGATOR_PASSWORD": "bench-only",
           "REVISION_STORE_ROOT": str(tmp / "store"), **env_extra}
    with app_server(tmp, env) as started:
        yield started


def browser_missing() -> str | None:
    """Why the browser benchmarks cannot run here, or None."""
    if not Path(CHROMIUM).is_file():
        return f"{CHROMIUM} is absent (scripts/install_system_deps.sh installs it)"
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return "the playwright package is not installed"
    return None


def reader_sign_in(page, base: str, code: str, timeout: int = 60_000) -> None:
    """Sign in on /reader_signin and wait for the consent page (as the e2e test does)."""
    from playwright.sync_api import expect

    page.goto(f"{base}/reader_signin")
    expect(page.get_by_text("Reader sign-in").first).to_be_visible(timeout=timeout)
    page.locator("input[type=password]").fill(code)
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_text("Instructions and consent")).to_be_visible(timeout=timeout)


def reader_consent(page, timeout: int = 60_000) -> None:
    from playwright.sync_api import expect

    box = page.get_by_text("I have read the instructions")
    box.click()
    expect(page.get_by_role("button", name="Start reading")).to_be_enabled(timeout=timeout)
    page.get_by_role("button", name="Start reading").click()
    expect(page.get_by_text("Case 1 of")).to_be_visible(timeout=timeout)


def rss_mb(pid: int) -> float:
    """Resident set size of ``pid`` in MiB (psutil when installed, else /proc/PID/status VmRSS)."""
    try:
        import psutil

        return psutil.Process(pid).memory_info().rss / 2**20
    except ImportError:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    raise RuntimeError(f"no VmRSS for pid {pid}")


def load_note() -> str:
    la = os.getloadavg()
    return f"load average {la[0]:.2f} {la[1]:.2f} {la[2]:.2f} on {os.cpu_count()} CPUs"


def pct(values: list[float], q: float) -> float:
    """Nearest-rank percentile (q in 0..100)."""
    s = sorted(values)
    k = max(0, min(len(s) - 1, int(round(q / 100 * len(s) + 0.5)) - 1))
    return s[k]
