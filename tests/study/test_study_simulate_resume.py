"""``simulate`` is atomic and resumable (issue 11, item 9).

A kill is simulated by an exception raised from inside the run (a monkeypatched ``add_reader``,
``build_design`` or ``workflow.submit``): like a killed process, it leaves whatever had been committed
before it. The same call again must then finish the job: no reader or answer twice, every simulated
reader with assignments, and, with the same seed and start, the very rows one uninterrupted run stores
(answers, reading times, shown and submitted times).
"""

from __future__ import annotations

from datetime import datetime, timezone

import pytest
from sqlalchemy import func, select

from study.domain import readers, workflow
from study.jobs import simulate_readers as sim_mod
from study.cli import main
from study.domain.design import build_design, verify_design
from study.domain.answers import answers_table
from study.storage.models import Answer, Assignment, AuditEvent, Reader
from testsupport.studies import committed
from study.jobs.simulate_readers import simulate
from tests.study.test_study_simulate import seed_study

START = datetime(2026, 3, 2, 8, 0, tzinfo=timezone.utc)
N_READERS, N_CASES = 3, 4  # 3 readers x 4 cases x 2 readings = 24 answers


class Killed(RuntimeError):
    """Stands for a killed process."""


def _table(Session, sid):
    with Session() as s:
        t = answers_table(s, sid)
    drop = [c for c in t.columns if c == "study" or c.endswith("_id") or c == "idempotency_key"]
    return t.drop(columns=drop).sort_values(["reader", "case", "condition"]).reset_index(drop=True)


def _counts(Session, sid):
    with Session() as s:
        n_readers = s.scalar(select(func.count()).select_from(Reader).where(Reader.study_id == sid))
        pseudonyms = list(s.scalars(select(Reader.pseudonym).where(Reader.study_id == sid)))
        per_reader = dict(s.execute(select(Assignment.reader_id, func.count()).where(Assignment.study_id == sid)
                                    .group_by(Assignment.reader_id)).all())
        reader_ids = list(s.scalars(select(Reader.id).where(Reader.study_id == sid)))
        n_answers = s.scalar(select(func.count()).select_from(Answer).join(Assignment)
                             .where(Assignment.study_id == sid))
        per = (select(func.count().label("n")).select_from(Answer).join(Assignment)
               .where(Assignment.study_id == sid).group_by(Answer.assignment_id).subquery())
        per_assignment = s.scalar(select(func.max(per.c.n)))
        design_problems = verify_design(s, sid)
    return {"readers": n_readers, "unique_pseudonyms": len(set(pseudonyms)),
            "readers_without_assignments": sum(1 for r in reader_ids if not per_reader.get(r)),
            "answers": n_answers, "max_answers_per_assignment": per_assignment or 0,
            "design_problems": design_problems}


@pytest.fixture
def reference(Session):
    """One uninterrupted run per design, to compare with (same seed, same start)."""
    made = {}

    def get(design):
        if design not in made:
            sid = seed_study(Session, n_cases=N_CASES, ai_accuracy=0.9, design=design, name=f"Ref {design}")
            report = simulate(Session, sid, N_READERS, seed=4, start=START)
            assert report.answers == N_READERS * N_CASES * 2 and not report.resumed
            made[design] = _table(Session, sid)
        return made[design]

    return get


def _kill_submit_after(monkeypatch, n: int, *, after_commit: bool):
    """``workflow.submit`` raises at its ``n + 1``-th call (before storing) or after the ``n``-th stored one."""
    real, calls = workflow.submit, {"n": 0}

    def submit(*args, **kwargs):
        calls["n"] += 1
        if not after_commit and calls["n"] > n:
            raise Killed("killed before storing an answer")
        result = real(*args, **kwargs)
        if after_commit and calls["n"] >= n:
            args[0].commit()  # the simulator's commit of this answer happened; the kill comes right after it
            raise Killed("killed after an answer was stored")
        return result

    monkeypatch.setattr(sim_mod.workflow, "submit", submit)


@pytest.mark.parametrize("design", ["crossover", "sequential"])
@pytest.mark.parametrize("kills", [[0], [1], [5, 3], [13], [23]], ids=str)
def test_killed_while_answering_resumes_to_the_uninterrupted_result(Session, monkeypatch, reference, design, kills):
    total = N_READERS * N_CASES * 2
    sid = seed_study(Session, n_cases=N_CASES, ai_accuracy=0.9, design=design, name="Killed")
    stored = 0
    for i, n in enumerate(kills):  # one or two kills, alternately before and after a commit
        with monkeypatch.context() as m:
            _kill_submit_after(m, n, after_commit=bool(i % 2) or n == 13)
            with pytest.raises(Killed):
                simulate(Session, sid, N_READERS, seed=4, start=START)
        stored = _counts(Session, sid)["answers"]
        assert stored >= min(n, total) and stored < total
    report = simulate(Session, sid, N_READERS, seed=4)  # no start: the first run's, from its audit row
    assert report.resumed and report.answers == total - stored
    per_reader = N_CASES * 2
    assert report.readers_left == N_READERS - stored // per_reader  # readers done before the kill had none left
    c = _counts(Session, sid)
    assert c == {"readers": N_READERS, "unique_pseudonyms": N_READERS, "readers_without_assignments": 0,
                 "answers": total, "max_answers_per_assignment": 1, "design_problems": []}
    got, want = _table(Session, sid), reference(design)
    assert list(got.columns) == list(want.columns)
    assert got.equals(want), got.compare(want)
    # the same call once more: nothing left, nothing added
    again = simulate(Session, sid, N_READERS, seed=4, start=START)
    assert again.resumed and again.answers == 0 and again.readers_left == 0
    assert _counts(Session, sid)["answers"] == total
    with Session() as s:
        actions = list(s.scalars(select(AuditEvent.action).where(AuditEvent.study_id == sid,
                                                                 AuditEvent.action.like("simulation.%"))))
    assert actions == ["simulation.started"] + ["simulation.resumed"] * (len(kills) + 1)


@pytest.mark.parametrize("where", ["after 0 readers", "after 2 readers", "in build_design", "before commit"])
def test_killed_while_creating_readers_leaves_nothing_and_reruns_cleanly(Session, monkeypatch, reference, where):
    sid = seed_study(Session, n_cases=N_CASES, ai_accuracy=0.9, name="Creating")
    # a real reader and a built design already there: a failed run must leave both exactly as they were
    with Session() as s:
        committed(readers.add_reader, s, sid, display_name="Dr Real", years_experience=12, actor="investigator")
        n_before = committed(build_design, s, sid)
    with Session() as s:
        before = sorted(s.execute(select(Assignment.reader_id, Assignment.case_id, Assignment.condition,
                                         Assignment.id).where(Assignment.study_id == sid)).all())
    with monkeypatch.context() as m:
        if where.startswith("after"):
            n, real, calls = int(where.split()[1]), readers.add_reader, {"n": 0}

            def add_reader(*args, **kwargs):
                calls["n"] += 1
                if calls["n"] > n:
                    raise Killed("killed while adding readers")
                return real(*args, **kwargs)

            m.setattr(sim_mod.readers_mod, "add_reader", add_reader)
        elif where == "in build_design":
            def build(*args, **kwargs):
                raise Killed("killed while building the design")

            m.setattr(sim_mod, "build_design", build)
        else:
            real_record = sim_mod.audit.record

            def record(session, **kwargs):  # the last write before the one commit
                if kwargs.get("action") == "simulation.started":
                    raise Killed("killed just before the commit")
                return real_record(session, **kwargs)

            m.setattr(sim_mod.audit, "record", record)
        with pytest.raises(Killed):
            simulate(Session, sid, N_READERS, seed=4, start=START)
    with Session() as s:
        assert [r.display_name for r in s.scalars(select(Reader).where(Reader.study_id == sid))] == ["Dr Real"]
        after = sorted(s.execute(select(Assignment.reader_id, Assignment.case_id, Assignment.condition,
                                        Assignment.id).where(Assignment.study_id == sid)).all())
        assert after == before and len(after) == n_before
        assert s.scalar(select(func.count()).select_from(AuditEvent).where(
            AuditEvent.study_id == sid, AuditEvent.action.in_(["reader.added", "simulation.started"]),
            AuditEvent.actor == "simulator")) == 0
    report = simulate(Session, sid, N_READERS, seed=4, start=START)
    assert not report.resumed and len(report.codes) == N_READERS
    c = _counts(Session, sid)
    assert c["readers"] == N_READERS + 1 and c["readers_without_assignments"] == 0 and c["design_problems"] == []
    assert c["answers"] == report.answers == N_READERS * N_CASES * 2


def test_readers_left_by_an_older_non_atomic_run_are_completed(Session, reference):
    """The state the issue found (readers created, no assignments, no answers) is finished, not refused."""
    sid = seed_study(Session, n_cases=N_CASES, ai_accuracy=0.9, name="Legacy")
    with Session() as s:  # what the old code left after a kill at its second reader
        sim_mod._create_readers(s, sid, N_READERS, seed=4, actor="simulator", skip={3})
        s.commit()
    report = simulate(Session, sid, N_READERS, seed=4, start=START)
    assert report.resumed and report.readers_left == N_READERS and len(report.codes) == 1
    c = _counts(Session, sid)
    assert c == {"readers": N_READERS, "unique_pseudonyms": N_READERS, "readers_without_assignments": 0,
                 "answers": N_READERS * N_CASES * 2, "max_answers_per_assignment": 1, "design_problems": []}
    assert _table(Session, sid).equals(reference("crossover"))


def test_a_different_seed_or_reader_count_is_refused(Session):
    sid = seed_study(Session, n_cases=N_CASES, ai_accuracy=0.9, name="Other")
    with pytest.MonkeyPatch.context() as m:
        _kill_submit_after(m, 3, after_commit=True)
        with pytest.raises(Killed):
            simulate(Session, sid, N_READERS, seed=4)
    for n, seed in ((N_READERS, 5), (N_READERS + 1, 4), (N_READERS - 1, 4)):
        with pytest.raises(ValueError, match=r"already has answers from 3 simulated readers made with seed 4"):
            simulate(Session, sid, n, seed=seed)
    assert _counts(Session, sid)["answers"] == 3


def test_cli_says_what_it_resumed(tmp_path, monkeypatch, capsys):
    from study.storage import db

    url = f"sqlite:///{tmp_path / 'sim.sqlite'}"
    engine, Session = db.open_database(url)
    try:
        seed_study(Session, n_cases=N_CASES, ai_accuracy=0.9, name="CLI")
        with monkeypatch.context() as m:
            _kill_submit_after(m, N_CASES * 2 + 1, after_commit=True)  # one reader done, the second begun
            with pytest.raises(Killed):
                main(["simulate", "--db", url, "--readers", "3", "--seed", "4", "--quiet"])
        capsys.readouterr()
        assert main(["simulate", "--db", url, "--readers", "3", "--seed", "4", "--quiet", "--show-codes"]) == 0
        out = capsys.readouterr().out
        assert "resumed: 2 of 3 simulated readers had answers left" in out
        assert "answered 15 more of 24 assignment(s)" in out
        assert "shown only by the run that created the readers" in out
        assert main(["simulate", "--db", url, "--readers", "3", "--seed", "4", "--quiet"]) == 0
        assert "resumed: 0 of 3 simulated readers had answers left" in capsys.readouterr().out
    finally:
        engine.dispose()


def test_a_study_with_real_answers_and_no_simulated_readers_is_refused(Session):
    sid = seed_study(Session, n_cases=N_CASES, ai_accuracy=0.9, name="Live")
    with Session() as s:
        reader, _code = committed(readers.add_reader, s, sid, display_name="Dr Real", years_experience=3)
        committed(build_design, s, sid)
        item = committed(workflow.next_item, s, reader.id, now=START)
        committed(workflow.submit, s, reader.id, item.assignment_id,
                        {"primary_diagnosis": "normal", "findings": [], "confidence": 50, "referral": False},
                        "real-1", now=START)
    with pytest.raises(ValueError, match="already has answers; simulated readers can only be added"):
        simulate(Session, sid, N_READERS, seed=4)
    assert _counts(Session, sid)["readers"] == 1


_DRIVER = r"""
import json, sys, time
from pathlib import Path
from argon2 import PasswordHasher
from study.storage import db
from study.domain import readers
from study.jobs.simulate_readers import SimulationRunning, simulate
readers.HASHER = PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1)
url, sid, n, ready, go = sys.argv[1:6]
factory = db.session_factory(db.make_engine(url))
Path(ready).touch()
while not Path(go).exists():
    time.sleep(0.002)
called = time.time()
try:
    report = simulate(factory, int(sid), int(n), seed=3)
    print(json.dumps({"outcome": "resumed" if report.resumed else "created", "answers": report.answers,
                      "called": called, "done": time.time()}))
except SimulationRunning as exc:
    print(json.dumps({"outcome": "running", "message": str(exc), "called": called, "done": time.time()}))
"""


def test_two_simulate_runs_started_at_once_one_wins_never_duplicate_readers(Session, db_url, tmp_path):
    """Issue 11: two real OS processes start ``simulate`` on one study at the same instant (a go file);
    one creates the readers, the other says a run is going (or, if it came second, resumes with nothing
    to do): never two sets of readers, never an answer twice, the design as the seed makes it."""
    import json
    import os
    import subprocess
    import sys
    import time
    from pathlib import Path

    n_readers, n_cases = 4, 6
    sid = seed_study(Session, n_cases=n_cases, ai_accuracy=0.9, name="Race")
    root = Path(__file__).resolve().parents[2]
    env = {**os.environ, "PYTHONPATH": str(root)}
    go = tmp_path / "go"
    procs, ready = [], []
    for i in range(2):
        ready.append(tmp_path / f"ready{i}")
        procs.append(subprocess.Popen([sys.executable, "-c", _DRIVER, db_url, str(sid), str(n_readers),
                                       str(ready[-1]), str(go)], cwd=root, env=env, stdout=subprocess.PIPE,
                                      stderr=subprocess.PIPE, text=True))
    deadline = time.monotonic() + 120
    while not all(r.exists() for r in ready):
        assert time.monotonic() < deadline and all(p.poll() is None for p in procs), \
            [p.communicate() for p in procs if p.poll() is not None]
        time.sleep(0.01)
    go.touch()
    results = []
    for p in procs:
        out, err = p.communicate(timeout=300)
        assert p.returncode == 0, err
        results.append(json.loads(out.strip().splitlines()[-1]))
    outcomes = sorted(r["outcome"] for r in results)
    assert outcomes in (["created", "running"], ["created", "resumed"]), results
    winner = next(r for r in results if r["outcome"] == "created")
    other = next(r for r in results if r is not winner)
    if other["called"] < winner["done"]:  # it started while the winner was running: refused, not run twice
        assert other["outcome"] == "running", results
    running = [r for r in results if r["outcome"] == "running"]
    if running:
        assert "is already running" in running[0]["message"] and "resumes" in running[0]["message"]
    got = _counts(Session, sid)
    assert got["readers"] == got["unique_pseudonyms"] == n_readers
    assert got["readers_without_assignments"] == 0 and got["design_problems"] == []
    assert got["answers"] == n_readers * n_cases * 2 and got["max_answers_per_assignment"] == 1
    with Session() as s:
        started = s.scalar(select(func.count()).select_from(AuditEvent).where(
            AuditEvent.study_id == sid, AuditEvent.action == "simulation.started"))
    assert started == 1
