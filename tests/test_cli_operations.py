"""The operations commands (revoke, reissue, override-washout, audit): exit codes, a reissued code that works
while the old one does not, and an audit CSV a spreadsheet cannot run."""
from __future__ import annotations

import csv
import io
import os
import stat
from datetime import datetime, timedelta, timezone

import pytest
from sqlalchemy import select

from study.storage import db
from study.domain import readers, workflow
from study.cli import main
from study.storage.models import Assignment, AuditEvent, Reader
from tests.app_helpers import make_study
from testsupport.studies import committed

ANSWER = {"primary_diagnosis": "amd", "confidence": 60, "referral": False}


@pytest.fixture
def study(tmp_path):
    url, ids, codes = make_study(tmp_path, design="crossover", n_cases=4, n_readers=2, washout=28)
    factory = db.session_factory(db.make_engine(url))
    return url, factory, codes


def who(factory, code) -> str | None:
    with factory() as s:
        reader = readers.authenticate(s, code)
        return reader.pseudonym if reader else None


def test_revoke_and_its_errors(study, capsys):
    url, factory, codes = study
    assert main(["revoke", "R001", "--reason", "left the study", "--db", url, "--actor", "lead"]) == 0
    assert "revoked the access code of R001" in capsys.readouterr().out
    assert who(factory, codes[0]) is None and who(factory, codes[1]) == "R002"
    assert main(["revoke", "R001", "--reason", "again", "--db", url]) == 2
    assert "already revoked" in capsys.readouterr().err
    assert main(["revoke", "R404", "--reason", "x", "--db", url]) == 2
    assert "no reader 'R404' in study" in capsys.readouterr().err
    assert main(["revoke", "R002", "--reason", "  ", "--db", url]) == 2
    assert "reason is required" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exc:  # --reason is required by the parser
        main(["revoke", "R002", "--db", url])
    assert exc.value.code == 2
    with factory() as s:
        rows = list(s.scalars(select(AuditEvent).where(AuditEvent.action.in_(
            ["reader.revoke_requested", "reader.revoked"])).order_by(AuditEvent.id)))
    assert [(e.action, e.actor) for e in rows] == [("reader.revoke_requested", "lead"), ("reader.revoked", "lead")]
    assert rows[0].after["reason"] == "left the study"


def test_reissued_code_works_and_the_old_one_does_not(study, capsys, tmp_path):
    url, factory, codes = study
    assert main(["reissue", "r002", "--reason", "lost the printout", "--db", url]) == 0
    out = capsys.readouterr()
    row = next(csv.DictReader(io.StringIO(out.out)))
    assert row["pseudonym"] == "R002" and "shown only this once" in out.err
    new = row["access_code"]
    assert who(factory, new) == "R002" and who(factory, codes[1]) is None
    with factory() as s:
        assert all(new not in (str(e.before) + str(e.after)) for e in s.scalars(select(AuditEvent)))

    target = tmp_path / "codes.csv"
    assert main(["reissue", "R002", "--reason", "again", "--db", url, "--codes-out", str(target)]) == 0
    assert capsys.readouterr().out == ""  # the code went to the file, not the screen
    assert stat.S_IMODE(os.stat(target).st_mode) == 0o600
    newer = next(csv.DictReader(target.open()))["access_code"]
    assert who(factory, newer) == "R002" and who(factory, new) is None
    assert main(["reissue", "R002", "--reason", "x", "--db", url, "--codes-out", str(target)]) == 2
    assert "never written over" in capsys.readouterr().err
    assert who(factory, newer) == "R002"  # refused before anything changed


def test_override_washout_opens_the_next_session(study, capsys):
    url, factory, codes = study
    now = datetime.now(timezone.utc) - timedelta(hours=1)
    with factory() as s:
        rid = s.scalar(select(Reader.id).where(Reader.pseudonym == "R001"))
        n1 = len(list(s.scalars(select(Assignment.id).where(Assignment.reader_id == rid, Assignment.session == 1))))
        for k in range(n1):
            item = committed(workflow.next_item, s, rid, now=now)
            committed(workflow.submit, s, rid, item.assignment_id, ANSWER, f"k{k}", now=now + timedelta(seconds=20))
        with pytest.raises(workflow.WashoutPending):
            committed(workflow.next_item, s, rid)
    with pytest.raises(SystemExit) as exc:  # --reason is required
        main(["override-washout", "R001", "--db", url])
    assert exc.value.code == 2 and "--reason" in capsys.readouterr().err
    assert main(["override-washout", "R001", "--reason", "moves abroad", "--session", "1", "--db", url]) == 2
    assert "no session 1" in capsys.readouterr().err
    assert main(["override-washout", "R001", "--reason", "moves abroad", "--db", url]) == 0
    assert "session 2 of R001 is open now" in capsys.readouterr().out
    with factory() as s:
        assert committed(workflow.next_item, s, rid).session == 2
        event = s.scalar(select(AuditEvent).where(AuditEvent.action == "washout.overridden"))
        assert (event.actor, event.after) == ("investigator", {"session": 2, "reason": "moves abroad"})
    assert main(["override-washout", "R001", "--reason", "again", "--db", url]) == 2
    assert "already opened early" in capsys.readouterr().err


def test_audit_export_is_filtered_and_formula_safe(study, capsys, tmp_path):
    url, factory, codes = study
    hostile = "=HYPERLINK(\"http://evil.example\",\"x\")"
    assert main(["revoke", "R001", "--reason", "@SUM(A1)", "--actor", hostile, "--db", url]) == 0
    out = tmp_path / "audit.csv"
    assert main(["audit", "--out", str(out), "--db", url]) == 0
    assert "audit event(s)" in capsys.readouterr().err
    rows = list(csv.DictReader(out.open(encoding="utf-8")))
    assert {"reader.added", "reader.revoked", "reader.revoke_requested"} <= {r["action"] for r in rows}
    cells = [c for r in rows for c in r.values()]
    assert not any(c[:1] in ("=", "+", "-", "@") for c in cells)
    assert ("'" + hostile) in {r["actor"] for r in rows}
    revoked = next(r for r in rows if r["action"] == "reader.revoke_requested")
    assert '"reason": "@SUM(A1)"' in revoked["after"]

    assert main(["audit", "--out", str(out), "--db", url]) == 2
    assert "--force" in capsys.readouterr().err
    assert main(["audit", "--out", str(out), "--force", "--action", "reader.revoke*", "--db", url]) == 0
    assert {r["action"] for r in csv.DictReader(out.open())} == {"reader.revoked", "reader.revoke_requested"}
    assert main(["audit", "--out", str(out), "--force", "--reader", "R002", "--db", url]) == 0
    only = list(csv.DictReader(out.open()))
    assert only and all("R001" not in r["after"] for r in only)
    assert {r["action"] for r in only} == {"reader.added"}
    assert main(["audit", "--out", str(out), "--force", "--since", "2999-01-01", "--db", url]) == 0
    assert list(csv.DictReader(out.open())) == []
    assert main(["audit", "--out", str(out), "--force", "--since", "soon", "--db", url]) == 2
    assert "not a date" in capsys.readouterr().err
    with factory() as s:
        exports = list(s.scalars(select(AuditEvent).where(AuditEvent.action == "audit.exported")))
    assert len(exports) == 4 and all(e.actor == "investigator" for e in exports)
