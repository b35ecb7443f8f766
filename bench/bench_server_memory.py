"""Memory of the Streamlit server process: resident set size (RSS) after start, after the model is loaded
(a visitor opens the model playground, which loads the configured model — the bundled demo model by
default — and predicts one sample photograph), and per additional reader session (``--sessions``
browser contexts, kept open, that each sign in with their own code, consent and show a case).
The cases are real 8-megapixel photographs (the IDRiD set in ../shared/real, 3410 x 2848; synthetic
3000 x 2500 JPEGs where it is absent), imported through the manifest import: the server only hands out
links to them (the browser fetches the files), so a reader session should not hold a photograph.

RSS comes from psutil when installed, else /proc/PID/status VmRSS, of the ``streamlit run`` process
(started as tests/test_e2e_browser.py starts it, on a sequential study of ``--cases`` photographs with
stored AI output). The first reader session also pays one-off costs (the reading page's imports,
the viewer component), so the per-session figure is given both with and without it.

    nice -n 10 .venv/bin/python bench/bench_server_memory.py [--sessions 5] [--cases 12]

Skips (exit 0) with the reason when Chromium or playwright is absent.
"""
from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _app_server import (browser_missing, launch_chromium, load_note, reader_consent, reader_sign_in,  # noqa: E402
                         rss_mb, streamlit_server)

from testsupport.app import make_photo_study, study_photos  # noqa: E402

SETTLE_S = 1.5


def settled_rss(pid: int) -> float:
    time.sleep(SETTLE_S)
    return rss_mb(pid)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--sessions", type=int, default=5)
    ap.add_argument("--cases", type=int, default=12)
    args = ap.parse_args()
    why = browser_missing()
    if why:
        print(f"bench_server_memory: SKIPPED: {why}")
        return 0
    from playwright.sync_api import expect, sync_playwright

    print(f"bench_server_memory: {load_note()} (at start)")
    rows: list[tuple[str, float]] = []
    with tempfile.TemporaryDirectory(prefix="bench-memory-") as tmp:
        tmp = Path(tmp)
        photos, what = study_photos(tmp, args.cases)
        url, store, _ids, codes = make_photo_study(tmp, photos, design="sequential", n_readers=args.sessions)
        print(f"  cases: {what}")
        with streamlit_server(tmp, url, REVISION_STORE_ROOT=str(store)) as (base, proc), sync_playwright() as p:
            rows.append(("after start (health check answered)", settled_rss(proc.pid)))
            browser = launch_chromium(p)
            visitor = browser.new_context(viewport={"width": 1400, "height": 1000})
            page = visitor.new_page()
            page.goto(f"{base}/reader_signin")
            expect(page.get_by_text("Reader sign-in").first).to_be_visible(timeout=60_000)
            rows.append(("after a first page (reader sign-in: app imports, no model)", settled_rss(proc.pid)))
            t0 = time.perf_counter()
            page.goto(base)
            expect(page.get_by_text("Model playground").first).to_be_visible(timeout=60_000)
            expect(page.get_by_text("Model:").first).to_be_visible(timeout=180_000)
            expect(page.locator('[data-testid="stPlotlyChart"]').first).to_be_visible(timeout=180_000)
            load_s = time.perf_counter() - t0
            rows.append((f"after the model is loaded (playground shown in {load_s:.1f} s)", settled_rss(proc.pid)))
            visitor.close()
            rows.append(("after the visitor's browser context is closed", settled_rss(proc.pid)))
            contexts = []
            for i in range(args.sessions):
                ctx = browser.new_context(viewport={"width": 1400, "height": 1000})
                contexts.append(ctx)
                rpage = ctx.new_page()
                reader_sign_in(rpage, base, codes[i])
                reader_consent(rpage)
                rpage.wait_for_function("() => window.__caseViewer && window.__caseViewer.painted", timeout=60_000)
                rows.append((f"reader session {i + 1} open, showing case 1", settled_rss(proc.pid)))
            for ctx in contexts:
                ctx.close()
            browser.close()
    print(f"bench_server_memory: {load_note()} (at end)")
    for label, mb in rows:
        print(f"  RSS {mb:8.1f} MiB  {label}")
    start, first, model, closed = (mb for _, mb in rows[:4])
    readers = [mb for _, mb in rows[4:]]
    steps = [b - a for a, b in zip([closed] + readers[:-1], readers)]
    print(f"  first page (app imports): +{first - start:.1f} MiB; model load on top: +{model - first:.1f} MiB")
    print("  per reader session (increments): " + ", ".join(f"{d:+.1f}" for d in steps) + " MiB")
    print(f"  per reader session: mean {statistics.mean(steps):.1f} MiB over {len(steps)} sessions "
          f"(incl. one-off imports of the first); "
          + (f"mean {statistics.mean(steps[1:]):.1f} MiB over sessions 2..{len(steps)}" if len(steps) > 1 else ""))
    return 0


if __name__ == "__main__":
    sys.exit(main())
