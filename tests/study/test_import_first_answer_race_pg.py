"""An import that coincides with a study's very first answer (PostgreSQL, two connections at once).

The first answer locks the study (``studies.lock_design`` updates the study row); an import stores its cases
after checking, under a lock on the same row (``FOR NO KEY UPDATE``: SQLAlchemy's
``with_for_update(key_share=True)``), that no answer exists. That lock conflicts with the first answer's
update, so one waits for the other: either the cases come first and the answer after, or the import sees the
answer and is refused. Without the row lock the import passes its check beside the uncommitted first answer
and its cases slip in (this test then fails).
"""
from __future__ import annotations

import threading

import numpy as np
import pytest
from PIL import Image
from sqlalchemy import func, select

from study.domain import cases, design, workflow
from study.storage.models import Answer, Case
from testsupport.studies import VALID_ANSWER
from testsupport.studies import committed


@pytest.fixture
def db_url(pg_server):
    """This module's database is always PostgreSQL: SQLite serialises writers, so the race cannot occur there."""
    from study.storage import db

    url = pg_server.new_database()
    db.upgrade(url)
    return url


def _manifest(root):
    root.mkdir()
    rng = np.random.default_rng(3)
    for i in range(2):
        Image.fromarray(rng.integers(0, 255, (20, 24, 3), dtype=np.uint8)).save(root / f"n{i}.png")
    (root / "manifest.csv").write_text("case_id,image_path,label\n" + "".join(f"n{i},n{i}.png,amd\n" for i in range(2)))
    return root / "manifest.csv"


def test_an_import_waits_for_the_first_answer_and_is_then_refused(Session, make_study, monkeypatch, tmp_path):
    sid, _cases, codes = make_study("crossover", n_cases=8, n_readers=2)
    reader_id = next(iter(codes))
    manifest = _manifest(tmp_path / "new")
    with Session() as s:
        item = committed(workflow.next_item, s, reader_id)

    held, release = threading.Event(), threading.Event()
    real_record = workflow.audit.record

    def record_then_hold(session, **kw):   # the first answer's transaction: locked, answered, not yet committed
        real_record(session, **kw)
        if kw.get("action") == "answer.submitted":
            held.set()
            release.wait(30)

    monkeypatch.setattr(workflow.audit, "record", record_then_hold)
    outcome = {}

    def answer():
        with Session() as s:
            outcome["answer"] = committed(workflow.submit, s, reader_id, item.assignment_id, VALID_ANSWER, "race-key")

    def import_cases():
        with Session() as s:
            try:
                outcome["import"] = committed(cases.import_manifest, s, sid, manifest, store_root=tmp_path / "store")
            except design.StudyLocked as exc:
                outcome["import"] = exc

    a = threading.Thread(target=answer)
    a.start()
    assert held.wait(30), "the first answer never reached its commit"
    b = threading.Thread(target=import_cases)
    b.start()
    b.join(3)
    waited = b.is_alive()    # the import must wait on the first answer's lock of the study row
    release.set()
    a.join(30)
    b.join(60)
    assert not a.is_alive() and not b.is_alive()
    assert waited, "the import did not wait for the first answer's transaction"
    assert isinstance(outcome["import"], design.StudyLocked), outcome["import"]
    with Session() as s:
        assert s.scalar(select(func.count()).select_from(Case).where(Case.study_id == sid)) == 8
        assert s.scalar(select(func.count()).select_from(Answer)) == 1
