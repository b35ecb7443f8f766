"""Submit load benchmark: N concurrent reader threads answer every item through the workflow.

Prints submit latency p50/p99, throughput, and the lost / duplicated answer counts (both must be 0)
for SQLite (WAL) and, with ``--pg-url`` or when PostgreSQL binaries are installed, PostgreSQL (a
throwaway server started like the test fixture). Exit status 1 if anything was lost or duplicated.
The pass/fail load test lives in tests/study/test_study_faults.py; this script prints numbers.

    nice -n 10 .venv/bin/python bench/bench_submit.py [--readers 33] [--cases 100] [--think-ms 300] [--pg-url URL | --no-pg]
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from argon2 import PasswordHasher  # noqa: E402
from sqlalchemy import func, select  # noqa: E402

from study import cases, db, design, precompute, readers, studies, workflow  # noqa: E402
from study.config import parse_text  # noqa: E402
from study.models import Answer, Assignment  # noqa: E402
from tests.study.helpers import CARD, LABELS, VALID_ANSWER, study_toml  # noqa: E402


def setup(url: str, n_readers: int, n_cases: int) -> None:
    """A crossover study without washout: every reader reads every case unaided and aided."""
    db.upgrade(url)
    engine = db.make_engine(url)
    text = study_toml("crossover", name="bench", washout=0)
    readers.HASHER = PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1)  # setup speed only
    with db.session_factory(engine)() as s:
        st = studies.create_study(s, parse_text(text), text)
        for i in range(n_cases):
            c = cases.add_case(s, st.id, f"c{i:04d}", f"sha{i}", {"label": LABELS[i % len(LABELS)]}, commit=False)
            s.flush()
            precompute.store_ai_output(s, c.id, model_card=CARD, label_set="revision_findings",
                                       probabilities={k: 0.2 for k in LABELS[:-1]}, commit=False)
        s.commit()
        for r in range(n_readers):
            readers.add_reader(s, st.id, display_name=f"bench {r}", years_experience=(2, 7, 15)[r % 3])
        design.build_design(s, st.id)
    engine.dispose()


def run(url: str, n_readers: int, n_cases: int, label: str, think_ms: float = 0.0) -> bool:
    setup(url, n_readers, n_cases)
    engine = db.make_engine(url)
    factory = db.session_factory(engine)
    with factory() as s:
        reader_ids = list(s.scalars(select(Assignment.reader_id).distinct()))
        expected = s.scalar(select(func.count()).select_from(Assignment))
    latencies: list[float] = []
    acknowledged: list[int] = []
    errors: list[str] = []
    lock = threading.Lock()
    barrier = threading.Barrier(len(reader_ids))

    def reader_loop(rid: int) -> None:
        mine, ids = [], []
        pause = random.Random(rid)
        try:
            barrier.wait()
            with factory() as s:
                while (item := workflow.next_item(s, rid)) is not None:
                    if think_ms:  # the reader looks at the photograph before answering
                        time.sleep(pause.expovariate(1000.0 / think_ms))
                    t0 = time.perf_counter()
                    res = workflow.submit(s, rid, item.assignment_id, VALID_ANSWER, f"bench:{rid}:{item.assignment_id}")
                    mine.append(time.perf_counter() - t0)
                    ids.append(res.answer_id)
        except Exception as exc:  # reported below
            errors.append(f"reader {rid}: {exc!r}")
        with lock:
            latencies.extend(mine)
            acknowledged.extend(ids)

    threads = [threading.Thread(target=reader_loop, args=(rid,)) for rid in reader_ids]
    t0 = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.perf_counter() - t0
    with factory() as s:
        stored = set(s.scalars(select(Answer.id)))
        per_assignment = s.execute(select(Answer.assignment_id, func.count()).group_by(Answer.assignment_id)).all()
    engine.dispose()
    lost = len(set(acknowledged) - stored) + max(0, expected - len(per_assignment))
    duplicated = sum(n - 1 for _, n in per_assignment if n > 1)
    lat = sorted(latencies)
    p50 = statistics.median(lat) * 1000 if lat else float("nan")
    p99 = lat[min(len(lat) - 1, int(round(0.99 * (len(lat) - 1))))] * 1000 if lat else float("nan")
    label = f"{label}, {'no' if not think_ms else f'{think_ms:.0f} ms mean'} reading time"
    print(f"{label}: {len(reader_ids)} readers x {n_cases} cases x 2 conditions = {expected} submits; "
          f"acknowledged {len(acknowledged)}, lost {lost}, duplicated {duplicated}, errors {len(errors)}")
    print(f"{label}: submit latency p50 {p50:.1f} ms, p99 {p99:.1f} ms, max {lat[-1] * 1000 if lat else 0:.1f} ms; "
          f"throughput {len(lat) / wall:.0f} submits/s (incl. next_item) over {wall:.1f} s")
    for e in errors[:5]:
        print(f"{label}: error {e}")
    return lost == 0 and duplicated == 0 and not errors and len(acknowledged) == expected


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--readers", type=int, default=33)
    ap.add_argument("--cases", type=int, default=100)
    ap.add_argument("--pg-url", default=None, help="an empty PostgreSQL database to use")
    ap.add_argument("--no-pg", action="store_true", help="skip PostgreSQL even if its binaries are installed")
    ap.add_argument("--think-ms", type=float, default=300.0,
                    help="mean reading time per item (exponential); real readers take 10-60 s. The SQLite run "
                         "is also repeated with no reading time at all, which measures a saturated queue")
    args = ap.parse_args()
    ok = True
    for think in (0.0, args.think_ms):
        with tempfile.TemporaryDirectory() as tmp:
            ok &= run(f"sqlite:///{Path(tmp) / 'bench.sqlite'}", args.readers, args.cases, "sqlite-wal", think)
    if args.no_pg:
        return 0 if ok else 1
    if args.pg_url:
        ok &= run(args.pg_url, args.readers, args.cases, "postgresql", args.think_ms)
    else:
        from tests.study.conftest import PostgresServer, find_pg_bin

        bin_dir = find_pg_bin()
        if bin_dir is None:
            print("postgresql: skipped (no binaries; pass --pg-url)")
        else:
            server = PostgresServer(bin_dir)
            try:
                server.start()
                ok &= run(server.new_database(), args.readers, args.cases, "postgresql (fsync=off test server)",
                          args.think_ms)
            finally:
                server.cleanup()
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
