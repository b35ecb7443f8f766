"""Reading page, server side: time from a submitted answer to the next case being rendered.

A sequential study (every case read unaided, then aided with the AI panel) of ``--cases`` cases with
precomputed AI output (stored the way study/jobs/precompute.py stores it; no model runs) and one reader.
``streamlit.testing.v1.AppTest`` drives app.py: sign in, consent, then ``--answers`` answers; each
timing is the ``at.run()`` after the submit click (the callback stores the answer, the script run draws
the next case). Separately, the pure workflow part (``workflow.submit`` + ``workflow.next_item``) and
the reader service's part the page calls (``study.services.reader``: ``submit_answer`` + ``reader_state``)
on a second and a third reader of the same study, so the page overhead is visible. The same is measured on a small baseline study
(``--baseline-cases``) in the same run; the ratio shows how the cost grows with the study size.

    nice -n 10 .venv/bin/python bench/bench_reader_server.py [--cases 1000] [--answers 20] [--baseline-cases 20]

Target: median <= 100 ms for the page run at 1,000 cases.
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _app_server import load_note, make_big_study, pct  # noqa: E402

from testsupport.app import submit_button  # noqa: E402
from testsupport.studies import VALID_ANSWER  # noqa: E402
from testsupport.studies import committed

WARMUP = 2  # one unaided and one aided answer, not counted (first imports of the viewer etc.)
TARGET_MS = 100.0


def page_latencies(url: str, code: str, n: int) -> tuple[list[float], list[str]]:
    from testsupport.app import consent, signed_in

    os.environ["REVISION_DB_URL"] = url
    at = signed_in(code)
    assert at.session_state["role"] == "reader", "sign-in failed"
    consent(at)
    times, kinds = [], []
    for i in range(n + WARMUP):
        assert not at.exception, at.exception
        at.radio[0].set_value("amd")
        at.radio[-1].set_value("No")
        at.number_input[0].set_value(70)  # confidence: no default
        submit_button(at).click()
        t0 = time.perf_counter()
        at.run()
        dt = time.perf_counter() - t0
        assert not at.exception, at.exception
        assert any(s.value.startswith("Case ") for s in at.subheader), "no next case rendered"
        kind = "aided" if any("AI-assisted" in m.value for m in at.markdown) else "unaided"
        if i >= WARMUP:
            times.append(dt)
            kinds.append(kind)
    return times, kinds


def workflow_latencies(url: str, n: int) -> tuple[list[float], list[float]]:
    """(workflow.submit + workflow.next_item, reader service submit_answer + reader_state): readers 2 and 3."""
    from sqlalchemy import select

    from study.storage import db
    from study.domain import workflow
    from study.storage.models import Reader
    from study.services import reader as reader_service

    engine = db.make_engine(url)
    factory = db.session_factory(engine)
    with factory() as s:
        rid, rid_web = s.scalars(select(Reader.id).order_by(Reader.id)).all()[1:3]
    reader_service.record_consent(factory, rid_web, "bench")
    wf, wb = [], []
    with factory() as s:
        item = committed(workflow.next_item, s, rid)
        for i in range(n + WARMUP):
            t0 = time.perf_counter()
            committed(workflow.submit, s, rid, item.assignment_id, VALID_ANSWER, f"bench-wf:{item.assignment_id}")
            item = committed(workflow.next_item, s, rid)
            dt = time.perf_counter() - t0
            if i >= WARMUP:
                wf.append(dt)
    rid = rid_web
    for i in range(n + WARMUP):
        state = reader_service.reader_state(factory, rid)
        t0 = time.perf_counter()
        reader_service.submit_answer(factory, rid, state.item.assignment_id, VALID_ANSWER,
                                     f"bench-web:{state.item.assignment_id}")
        state = reader_service.reader_state(factory, rid)
        dt = time.perf_counter() - t0
        assert state.item is not None
        if i >= WARMUP:
            wb.append(dt)
    engine.dispose()
    return wf, wb


def measure(tmp: Path, n_cases: int, n: int) -> dict:
    t0 = time.perf_counter()
    url, codes = make_big_study(tmp / f"s{n_cases}", n_cases, n_readers=3)
    setup_s = time.perf_counter() - t0
    page, kinds = page_latencies(url, codes[0], n)
    wf, wb = workflow_latencies(url, n)
    ms = lambda xs: [x * 1000 for x in xs]  # noqa: E731
    page, wf, wb = ms(page), ms(wf), ms(wb)
    by_kind = {k: statistics.median([t for t, kk in zip(page, kinds) if kk == k]) for k in set(kinds)}
    return {"cases": n_cases, "setup_s": setup_s, "page": page, "wf": wf, "web": wb, "by_kind": by_kind}


def report(r: dict) -> None:
    page = r["page"]
    print(f"  study of {r['cases']} cases ({2 * r['cases']} readings; built in {r['setup_s']:.1f} s), {len(page)} answers")
    print(f"    page (AppTest at.run after submit): median {statistics.median(page):7.1f} ms   "
          f"p95 {pct(page, 95):7.1f} ms   min {min(page):6.1f}   max {max(page):6.1f}")
    print("    page median by the next item rendered: "
          + ", ".join(f"{k} {v:.1f} ms" for k, v in sorted(r["by_kind"].items())))
    print(f"    workflow only (submit + next_item):  median {statistics.median(r['wf']):7.1f} ms   p95 {pct(r['wf'], 95):7.1f} ms")
    print(f"    web layer (submit_answer + reader_state): median {statistics.median(r['web']):7.1f} ms   "
          f"p95 {pct(r['web'], 95):7.1f} ms")
    print(f"    page overhead over the web layer (medians): {statistics.median(page) - statistics.median(r['web']):.1f} ms")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--cases", type=int, default=1000)
    ap.add_argument("--answers", type=int, default=20)
    ap.add_argument("--baseline-cases", type=int, default=20, help="0: no baseline")
    args = ap.parse_args()
    print(f"bench_reader_server: {load_note()} (at start)")
    with tempfile.TemporaryDirectory(prefix="bench-reader-") as tmp:
        results = []
        if args.baseline_cases:
            results.append(measure(Path(tmp), args.baseline_cases, min(args.answers, 2 * args.baseline_cases - WARMUP - 1)))
        results.append(measure(Path(tmp), args.cases, args.answers))
    print(f"bench_reader_server: {load_note()} (at end)")
    for r in results:
        report(r)
    big = results[-1]
    med = statistics.median(big["page"])
    if len(results) == 2:
        base = results[0]
        print(f"  ratio {big['cases']} / {base['cases']} cases: page median x{med / statistics.median(base['page']):.2f}, "
              f"workflow median x{statistics.median(big['wf']) / statistics.median(base['wf']):.2f}")
    ok = med <= TARGET_MS
    print(f"  target: page median <= {TARGET_MS:.0f} ms at {big['cases']} cases: {'MET' if ok else 'NOT MET'} "
          f"({med:.1f} ms)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
