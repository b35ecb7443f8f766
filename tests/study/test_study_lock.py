"""The locked design (issue 12, item 6): once the first answer exists, cases are refused with what to do
instead, readers are appended with a full, balanced set of readings, and ``design --verify`` stays clean,
on every route (domain functions, CLI, the app's wrappers) and on SQLite and PostgreSQL."""

from __future__ import annotations

import io
import zipfile
from collections import Counter

import numpy as np
import pytest
from PIL import Image
from sqlalchemy import func, select

from study.domain import cases, design, readers, workflow
from study.cli import main
from study.storage.models import Assignment, AuditEvent, Case, Reader
from study.services import investigator
from study.domain.studies import DesignLocked
from testsupport.studies import VALID_ANSWER
from testsupport.studies import committed


def _answer_first_item(Session, reader_id):
    with Session() as s:
        item = committed(workflow.next_item, s, reader_id)
        committed(workflow.submit, s, reader_id, item.assignment_id, VALID_ANSWER, f"k-{reader_id}-{item.assignment_id}")


def _png_folder(root, n=2):
    rng = np.random.default_rng(7)
    (root / "amd").mkdir(parents=True)
    for i in range(n):
        Image.fromarray(rng.integers(0, 255, (20, 24, 3), dtype=np.uint8)).save(root / "amd" / f"new{i}.png")
    (root / "manifest.csv").write_text("case_id,image_path,label\n"
                                       + "".join(f"new{i},amd/new{i}.png,amd\n" for i in range(n)))
    return root


def _counts(Session, sid):
    with Session() as s:
        n_cases = s.scalar(select(func.count()).select_from(Case).where(Case.study_id == sid))
        per_reader = dict(s.execute(select(Reader.pseudonym, func.count(Assignment.id))
                                    .outerjoin(Assignment, Assignment.reader_id == Reader.id)
                                    .where(Reader.study_id == sid).group_by(Reader.pseudonym)).all())
        return n_cases, per_reader, design.verify_design(s, sid)


@pytest.fixture
def locked_study(Session, make_study):
    sid, _cases, codes = make_study("crossover", n_cases=8, n_readers=4)
    _answer_first_item(Session, next(iter(codes)))
    return sid


def test_cases_are_refused_on_every_import_route_with_what_to_do(Session, locked_study, tmp_path):
    sid = locked_study
    folder = _png_folder(tmp_path / "new")
    store = tmp_path / "store"
    zipped = io.BytesIO()
    with zipfile.ZipFile(zipped, "w") as zf:
        for f in folder.rglob("*"):
            if f.is_file():
                zf.write(f, f.relative_to(folder).as_posix())
    with Session() as s:
        calls = [lambda: committed(cases.import_manifest, s, sid, folder / "manifest.csv", store_root=store),
                 lambda: committed(cases.import_zip, s, sid, zipped.getvalue(), store_root=store),
                 lambda: committed(cases.import_folder, s, sid, folder / "amd", store_root=store),
                 lambda: committed(cases.add_case, s, sid, "late", "sha-late", {"label": "amd"})]
        for call in calls:
            with pytest.raises(design.StudyLocked) as err:
                call()
            message = str(err.value)
            assert isinstance(err.value, ValueError) and isinstance(err.value, DesignLocked)
            assert "'Test study' is locked: readers have been answering since 20" in message
            assert "Cases can no longer be added" in message and "new study" in message
            assert ":" in message.split("since ", 1)[1][:17] and "." not in message.split("since ", 1)[1][:17]
    n_cases, _, problems = _counts(Session, sid)
    assert n_cases == 8 and problems == [] and not store.exists()  # nothing written, no file left

    # the app's wrapper lists it as the problem; the CLI exits 2 with it
    n, listed = investigator.import_cases_upload(Session, sid, "new.zip", zipped.getvalue(), "lead")
    assert n == 0 and len(listed) == 1 and "Cases can no longer be added" in listed[0]


def test_cli_refuses_cases_and_appends_readers_after_the_first_answer(Session, db_url, locked_study, tmp_path, capsys):
    sid = locked_study
    folder = _png_folder(tmp_path / "new")
    assert main(["import-cases", str(folder / "manifest.csv"), "--db", db_url, "--store", str(tmp_path / "st")]) == 2
    assert "Cases can no longer be added" in capsys.readouterr().err
    (tmp_path / "r.csv").write_text("display_name,years_experience\nDr Late,4\nDr Later,12\n")
    assert main(["add-readers", str(tmp_path / "r.csv"), "--db", db_url]) == 0
    err = capsys.readouterr().err
    assert "design is locked: each new reader was given a full set of readings" in err
    assert main(["design", "--verify", "--db", db_url]) == 0
    assert "0 difference(s)" in capsys.readouterr().out
    assert main(["design", "--db", db_url]) == 2  # nothing to append: a rebuild is refused, saying why
    assert "can no longer be rebuilt" in capsys.readouterr().err
    _, per_reader, problems = _counts(Session, sid)
    assert problems == [] and set(per_reader.values()) == {16}  # 8 cases x 2 conditions for everyone


@pytest.mark.parametrize("kind, per_reader", [("crossover", 16), ("multi_arm", 8), ("sequential", 16)])
def test_late_readers_get_complete_balanced_readings_and_verify_stays_clean(Session, make_study, kind, per_reader):
    extra = {"arms": ["unaided", "ai"]} if kind == "multi_arm" else {}
    sid, _cases, codes = make_study(kind, n_cases=8, n_readers=3, **extra)
    _answer_first_item(Session, next(iter(codes)))
    with Session() as s:
        before = {(a.reader_id, a.case_id, a.condition, a.session, a.position)
                  for a in s.scalars(select(Assignment).where(Assignment.study_id == sid))}
        late = [committed(readers.add_reader, s, sid, display_name=f"Late {i}", years_experience=y)[0].id
                for i, y in enumerate((3, 3, 20, 8))]
        after = {(a.reader_id, a.case_id, a.condition, a.session, a.position)
                 for a in s.scalars(select(Assignment).where(Assignment.study_id == sid))}
        assert before <= after  # nobody else's assignments moved
        groups = Counter(g for (g,) in s.execute(select(Assignment.reader_group).where(Assignment.study_id == sid,
                                                                                    Assignment.step == 1)
                                                 .group_by(Assignment.reader_id, Assignment.reader_group)))
        events = list(s.scalars(select(AuditEvent).where(AuditEvent.action == "design.extended")))
        assert [e.after["readers"] for e in events] == [[r] for r in ("R004", "R005", "R006", "R007")]
        assert design.verify_design(s, sid) == []
        for rid in late:  # each late reader reads every case under every condition
            rows = list(s.scalars(select(Assignment).where(Assignment.reader_id == rid)))
            assert len(rows) == per_reader
            assert Counter(a.condition for a in rows) == Counter({c: per_reader // 2 for c in {a.condition for a in rows}})
    if kind != "sequential":
        assert max(groups.values()) - min(groups.values()) <= 1  # 7 readers in 2 groups: 4 and 3
    n_cases, counts, _ = _counts(Session, sid)
    assert set(counts.values()) == {per_reader}
    with Session() as s:  # a late reader is served a real case, never "Study complete" with 0 readings
        item = committed(workflow.next_item, s, late[0])
        prog = workflow.progress(s, late[0])
    assert item is not None and prog.total == per_reader and prog.done == 0


def test_readers_added_before_the_lock_without_a_rebuild_are_appended_by_design(Session, make_study):
    sid, _cases, codes = make_study("crossover", n_cases=6, n_readers=2)
    with Session() as s:
        stranded, _ = committed(readers.add_reader, s, sid, display_name="Dr Forgotten", years_experience=5)
        stranded_id = stranded.id
    _answer_first_item(Session, next(iter(codes)))  # the lock comes before anyone rebuilt the design
    with Session() as s:
        assert design.readers_without_assignments(s, sid) == ["R003"]
        assert committed(design.build_design, s, sid) == 12
        assert design.readers_without_assignments(s, sid) == [] and design.verify_design(s, sid) == []
        with pytest.raises(design.StudyLocked, match="can no longer be rebuilt"):
            committed(design.build_design, s, sid)
    with Session() as s:
        assert committed(workflow.next_item, s, stranded_id) is not None


def test_app_wrappers_append_readers_after_the_lock(Session, locked_study):
    rows, problems = investigator.add_readers_csv(Session, locked_study, "display_name,years_experience\nDr A,2\nDr B,16\n",
                                         "lead")
    assert problems == [] and len(rows) == 2
    _, per_reader, verify = _counts(Session, locked_study)
    assert verify == [] and set(per_reader.values()) == {16}


def test_the_setup_page_tells_the_truth_about_the_lock(tmp_path, monkeypatch):
    from streamlit.testing.v1 import AppTest

    from study.storage import db
    from tests.app_helpers import make_study as make_app_study, rendered_text
    from testsupport.app import APP

    url, ids, codes = make_app_study(tmp_path, design="crossover", n_cases=4, n_readers=2)
    monkeypatch.setenv("REVISION_DB_URL", url)
    monkeypatch.setenv("REVISION_TIMEZONE", "Europe/Paris")
    Session = db.session_factory(db.make_engine(url))
    with Session() as s:
        rid = s.scalar(select(Reader.id).where(Reader.study_id == ids["study"]).limit(1))
        committed(readers.add_reader, s, ids["study"], display_name="Dr Forgotten", years_experience=9)  # no rebuild
    _answer_first_item(Session, rid)
    at = AppTest.from_file(APP, default_timeout=60)
    at.session_state["role"], at.session_state["investigator_user"] = "investigator", "lead"
    at.switch_page("pages/investigator_setup.py").run()
    assert not at.exception, at.exception
    text = rendered_text(at)
    assert "Replace the" not in text and "nobody has answered yet" not in text
    assert not [b for b in at.button if b.key == "build_design"]
    assert not [u for u in at.file_uploader if u.key == "manifest_upload"]
    caption = next(c.value for c in at.caption if c.value.startswith("Design crossover"))
    assert "locked since 20" in caption and ("CET" in caption or "CEST" in caption)
    stamp = caption.split("locked since ", 1)[1].split(" (", 1)[0]
    assert len(stamp.split(" ")[1]) == 5  # HH:MM, no seconds or microseconds
    assert "so no case can be added" in text
    # the reader added before the lock without a rebuild is offered their readings, appended
    at.button(key="append_readers").click().run()
    assert not at.exception, at.exception
    assert any(m.value == "8 assignments appended." for m in at.success)
    with Session() as s:
        assert design.readers_without_assignments(s, ids["study"]) == [] and design.verify_design(s, ids["study"]) == []


def test_two_readers_appended_at_the_same_moment_queue_and_verify_stays_clean(Session, locked_study):
    """Two investigators add a reader at once (PostgreSQL row locks, SQLite's write lock): neither fails or
    deadlocks, the two appends take turns, and the replayed audit order matches the stored groups."""
    import threading

    barrier, errors = threading.Barrier(2), []

    def add(i):
        try:
            with Session() as s:
                barrier.wait(timeout=30)
                committed(readers.add_reader, s, locked_study, display_name=f"Dr Race {i}", years_experience=4)
        except Exception as exc:  # noqa: BLE001 (reported below)
            errors.append(repr(exc))

    threads = [threading.Thread(target=add, args=(i,)) for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert errors == []
    _, per_reader, problems = _counts(Session, locked_study)
    assert problems == [] and len(per_reader) == 6 and set(per_reader.values()) == {16}
