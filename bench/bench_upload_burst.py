"""Server memory of a burst of concurrent playground uploads (issue 20): 16 browser sessions upload a 7000 x 7000
16-bit PNG at once to one real server; its RSS is sampled every 50 ms. Run twice in the same invocation: with the
server's decode limits as shipped (a 500 MB budget, two decodes at once) and with them opened wide (the baseline:
every upload decodes at once, as before issue 20). Target: the burst keeps the server's growth under 1 GB.

    .venv/bin/python bench/bench_upload_burst.py [--uploads 16] [--no-baseline]

Needs Chromium (scripts/install_system_deps.sh) and the playwright package. The PNG (a smooth synthetic fundus,
about 25 MB, under the playground's 30 MB cap) is made once into the temporary folder (about 40 s).
"""
from __future__ import annotations

import argparse
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _app_server import browser_missing, launch_chromium, load_note, rss_mb, streamlit_server  # noqa: E402

TARGET_MB = 1000.0
PNG = Path(tempfile.gettempdir()) / "revision-bench-7000px-16bit.png"


def make_png() -> Path:
    """A 7000 x 7000 16-bit grey PNG of a smooth fundus-like disc (made once, reused)."""
    if PNG.is_file():
        return PNG
    import numpy as np
    from PIL import Image

    n = 7000
    y, x = np.mgrid[0:n, 0:n].astype(np.float32)
    r = np.hypot(x - n / 2, y - n / 2) / (n / 2)
    disc = np.clip(1 - r ** 2, 0, 1) * (0.85 + 0.1 * np.sin(x / 37.0) * np.cos(y / 53.0))
    part = PNG.with_suffix(".part.png")
    Image.fromarray((np.clip(disc, 0, 1) * 65535).astype(np.uint16)).save(part, compress_level=6)
    part.replace(PNG)
    return PNG


def burst(tmp: Path, uploads: int, env: dict[str, str]) -> dict:
    """One server, ``uploads`` sessions on the playground, then every upload at once; the server's RSS."""
    from playwright.sync_api import expect, sync_playwright

    tmp.mkdir(parents=True, exist_ok=True)
    env = {"REVISION_PUBLIC_DEMO": "on", **env}
    with streamlit_server(tmp, f"sqlite:///{tmp / 'study.sqlite'}", **env) as (base, proc):
        with sync_playwright() as p:
            browser = launch_chromium(p)
            pages = []
            for _ in range(uploads):
                page = browser.new_context(viewport={"width": 1200, "height": 900}).new_page()
                page.set_default_timeout(180_000)  # a busy machine
                page.goto(f"{base}/demo_playground")
                expect(page.get_by_text("Model playground").first).to_be_visible(timeout=120_000)
                page.get_by_text("Upload", exact=True).click()
                expect(page.locator("input[type=file]")).to_have_count(1, timeout=60_000)
                pages.append(page)
            time.sleep(2)
            before = rss_mb(proc.pid)
            samples, done = [before], threading.Event()

            def sample():
                while not done.is_set():
                    samples.append(rss_mb(proc.pid))
                    time.sleep(0.05)

            sampler = threading.Thread(target=sample, daemon=True)
            sampler.start()
            t0 = time.perf_counter()
            for page in pages:  # as fast as the browser takes them: the uploads overlap
                page.locator("input[type=file]").set_input_files(str(PNG))
            for page in pages:
                expect(page.get_by_text("Input photograph")).to_be_visible(timeout=600_000)
            seconds = time.perf_counter() - t0
            time.sleep(1)
            done.set()
            sampler.join()
            after = rss_mb(proc.pid)
            browser.close()
    return {"before": before, "peak": max(samples), "after": after, "seconds": seconds}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--uploads", type=int, default=16)
    ap.add_argument("--no-baseline", action="store_true", help="skip the run with the decode limits opened wide")
    ap.add_argument("--env", action="append", default=[], metavar="NAME=VALUE", help="extra server environment")
    args = ap.parse_args()
    extra = dict(item.split("=", 1) for item in args.env)
    if (why := browser_missing()) is not None:
        print(f"skipped: {why}")
        return 0
    path = make_png()
    print(f"{args.uploads} concurrent uploads of {path.name} ({path.stat().st_size / 1e6:.1f} MB, 7000 x 7000, "
          f"16-bit) to one server; {load_note()}")
    runs = {"shipped limits (500 MB, 2 at once)": {**extra}}
    if not args.no_baseline:
        runs["baseline: limits opened wide"] = {**extra, "REVISION_DECODE_BUDGET": "1000 GB",
                                                "REVISION_DECODE_CONCURRENCY": str(args.uploads)}
    results = {}
    with tempfile.TemporaryDirectory(prefix="revision-bench-burst-") as tmp:
        for i, (label, env) in enumerate(runs.items()):
            results[label] = r = burst(Path(tmp) / f"run{i}", args.uploads, env)
            print(f"  {label:<38} server RSS {r['before']:7.0f} MB before, peak {r['peak']:7.0f} MB "
                  f"(growth {r['peak'] - r['before']:6.0f} MB), {r['after']:7.0f} MB after; all decoded in "
                  f"{r['seconds']:.1f} s")
    shipped = next(iter(results.values()))
    growth = shipped["peak"] - shipped["before"]
    if len(results) > 1:
        base = list(results.values())[1]
        base_growth = base["peak"] - base["before"]
        print(f"  growth with the shipped limits: {growth / max(base_growth, 1):.2f} x the baseline's")
    print(f"  target: growth under {TARGET_MB:.0f} MB: {'met' if growth < TARGET_MB else 'MISSED'}")
    return 0 if growth < TARGET_MB else 1


if __name__ == "__main__":
    sys.exit(main())
