"""Submit load benchmark: N concurrent reader threads answer every item through the workflow.

Prints submit latency p50/p99, throughput, and the lost / duplicated answer counts (both must be 0)
for SQLite (WAL) and, with ``--pg-url`` or when PostgreSQL binaries are installed, PostgreSQL (a
throwaway server started like the test fixture). Exit status 1 if anything was lost or duplicated.
The pass/fail load test lives in tests/study/test_study_faults.py; this script prints numbers.

Why repeats and a baseline: on a shared 2-core VM one run's p99 moves by 2-3x from run to run, so the
SQLite run is repeated (``--repeats``) and the median p99 is what is compared with the target. Each
repeat is paired with a baseline measured right before it: the same threads and reading times doing
the bare minimum a durable answer costs (BEGIN IMMEDIATE, two inserts of answer and audit size,
COMMIT with ``synchronous=FULL``, raw ``sqlite3``). The ratio says how much of the latency is ours
(ORM, workflow checks) rather than the machine's.

    nice -n 10 .venv/bin/python bench/bench_submit.py [--readers 33] [--cases 100] [--think-ms 300] [--repeats 3] [--pg-url URL | --no-pg]
"""

from __future__ import annotations

import argparse
import random
import sqlite3
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

from study.domain import cases, design, readers, studies, workflow
from study.storage import db
from study.jobs import precompute  # noqa: E402
from study.domain.config import parse_text  # noqa: E402
from study.storage.models import Answer, Assignment  # noqa: E402
from testsupport.studies import CARD, LABELS, VALID_ANSWER, study_toml  # noqa: E402
from testsupport.studies import committed


def setup(url: str, n_readers: int, n_cases: int) -> None:
    """A crossover study without washout: every reader reads every case unaided and aided."""
    db.upgrade(url)
    engine = db.make_engine(url)
    text = study_toml("crossover", name="bench", washout=0)
    readers.HASHER = PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1)  # setup speed only
    with db.session_factory(engine)() as s:
        st = committed(studies.create_study, s, parse_text(text), text)
        for i in range(n_cases):
            c = committed(cases.add_case, s, st.id, f"c{i:04d}", f"sha{i}", {"label": LABELS[i % len(LABELS)]})
            s.flush()
            committed(precompute.store_ai_output, s, c.id, model_card=CARD, label_set="revision_findings",
                                       probabilities={k: 0.2 for k in LABELS[:-1]})
        s.commit()
        for r in range(n_readers):
            committed(readers.add_reader, s, st.id, display_name=f"bench {r}", years_experience=(2, 7, 15)[r % 3])
        committed(design.build_design, s, st.id)
    engine.dispose()


def percentile(sorted_values: list[float], q: float) -> float:
    return sorted_values[min(len(sorted_values) - 1, int(round(q * (len(sorted_values) - 1))))]


def raw_baseline(path: Path, n_readers: int, n_items: int, think_ms: float) -> list[float]:
    """Latencies of the bare durable write (see the module docstring), same threads and reading times."""
    con = sqlite3.connect(path)
    con.execute("PRAGMA journal_mode = WAL")
    con.execute("CREATE TABLE answer (id INTEGER PRIMARY KEY, k TEXT UNIQUE, payload TEXT)")
    con.execute("CREATE TABLE audit (id INTEGER PRIMARY KEY, payload TEXT)")
    con.commit()
    con.close()
    lock, barrier, latencies = threading.Lock(), threading.Barrier(n_readers), []

    def reader_loop(rid: int) -> None:
        c = sqlite3.connect(path, isolation_level=None, check_same_thread=False, timeout=30)
        c.execute("PRAGMA synchronous = FULL")
        pause, mine = random.Random(rid), []
        barrier.wait()
        for i in range(n_items):
            c.execute("SELECT count(*) FROM answer WHERE k >= ? AND k < ?", (f"{rid}:", f"{rid};")).fetchone()
            if think_ms:
                time.sleep(pause.expovariate(1000.0 / think_ms))
            t0 = time.perf_counter()
            with lock:
                c.execute("BEGIN IMMEDIATE")
                c.execute("INSERT INTO answer (k, payload) VALUES (?, ?)", (f"{rid}:{i}", "a" * 400))
                c.execute("INSERT INTO audit (payload) VALUES (?)", ("b" * 700,))
                c.execute("COMMIT")
            mine.append(time.perf_counter() - t0)
        c.close()
        with lock:
            latencies.extend(mine)

    threads = [threading.Thread(target=reader_loop, args=(rid,)) for rid in range(n_readers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return sorted(latencies)


def run(url: str, n_readers: int, n_cases: int, label: str, think_ms: float = 0.0) -> tuple[bool, float]:
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
                while (item := committed(workflow.next_item, s, rid)) is not None:
                    if think_ms:  # the reader looks at the photograph before answering
                        time.sleep(pause.expovariate(1000.0 / think_ms))
                    t0 = time.perf_counter()
                    res = committed(workflow.submit, s, rid, item.assignment_id, VALID_ANSWER, f"bench:{rid}:{item.assignment_id}")
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
    p99 = percentile(lat, 0.99) * 1000 if lat else float("nan")
    label = f"{label}, {'no' if not think_ms else f'{think_ms:.0f} ms mean'} reading time"
    print(f"{label}: {len(reader_ids)} readers x {n_cases} cases x 2 conditions = {expected} submits; "
          f"acknowledged {len(acknowledged)}, lost {lost}, duplicated {duplicated}, errors {len(errors)}")
    print(f"{label}: submit latency p50 {p50:.1f} ms, p99 {p99:.1f} ms, max {lat[-1] * 1000 if lat else 0:.1f} ms; "
          f"throughput {len(lat) / wall:.0f} submits/s (incl. next_item) over {wall:.1f} s")
    for e in errors[:5]:
        print(f"{label}: error {e}")
    return lost == 0 and duplicated == 0 and not errors and len(acknowledged) == expected, p99


def sqlite_repeats(args) -> bool:
    """The SQLite run at ``--think-ms``, ``--repeats`` times, each after its raw baseline."""
    ok, p99s, base99s = True, [], []
    for k in range(1, args.repeats + 1):
        with tempfile.TemporaryDirectory() as tmp:
            base = raw_baseline(Path(tmp) / "raw.sqlite", args.readers, 2 * args.cases, args.think_ms)
        base99s.append(percentile(base, 0.99) * 1000)
        print(f"baseline {k}/{args.repeats} (raw sqlite3, durable BEGIN IMMEDIATE + 2 inserts + COMMIT): "
              f"p50 {statistics.median(base) * 1000:.2f} ms, p99 {base99s[-1]:.2f} ms")
        with tempfile.TemporaryDirectory() as tmp:
            good, p99 = run(f"sqlite:///{Path(tmp) / 'bench.sqlite'}", args.readers, args.cases,
                            f"sqlite-wal {k}/{args.repeats}", args.think_ms)
        ok &= good
        p99s.append(p99)
    med, med_base = statistics.median(p99s), statistics.median(base99s)
    print(f"sqlite-wal, {args.think_ms:.0f} ms mean reading time: p99 per repeat "
          f"{', '.join(f'{v:.1f}' for v in p99s)} ms; median {med:.1f} ms (target <= 50 ms: "
          f"{'met' if med <= 50 else 'missed'}); baseline median p99 {med_base:.2f} ms, "
          f"ratio workflow/baseline {med / med_base:.1f}x")
    return ok


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--readers", type=int, default=33)
    ap.add_argument("--cases", type=int, default=100)
    ap.add_argument("--repeats", type=int, default=3, help="SQLite runs at --think-ms (the median p99 is reported)")
    ap.add_argument("--pg-url", default=None, help="an empty PostgreSQL database to use")
    ap.add_argument("--no-pg", action="store_true", help="skip PostgreSQL even if its binaries are installed")
    ap.add_argument("--no-saturated", action="store_true", help="skip the run with no reading time")
    ap.add_argument("--think-ms", type=float, default=300.0,
                    help="mean reading time per item (exponential); real readers take 10-60 s. The SQLite run "
                         "is also made once with no reading time at all, which measures a saturated queue")
    args = ap.parse_args()
    ok = True
    if not args.no_saturated:
        with tempfile.TemporaryDirectory() as tmp:
            ok &= run(f"sqlite:///{Path(tmp) / 'bench.sqlite'}", args.readers, args.cases, "sqlite-wal", 0.0)[0]
    ok &= sqlite_repeats(args)
    if args.no_pg:
        return 0 if ok else 1
    if args.pg_url:
        ok &= run(args.pg_url, args.readers, args.cases, "postgresql", args.think_ms)[0]
    else:
        from testsupport.postgres import PostgresServer, find_pg_bin

        bin_dir = find_pg_bin()
        if bin_dir is None:
            print("postgresql: skipped (no binaries; pass --pg-url)")
        else:
            server = PostgresServer(bin_dir)
            try:
                server.start()
                ok &= run(server.new_database(), args.readers, args.cases, "postgresql (fsync=off test server)",
                          args.think_ms)[0]
            finally:
                server.cleanup()
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
