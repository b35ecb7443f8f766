"""Readers: levels from the bins; codes typable, shown once, stored only as argon2; revoke and reissue."""

from __future__ import annotations

import re

import pytest
from sqlalchemy import select

from study.domain import readers, studies
from study.domain.config import parse_text
from study.storage.models import AuditEvent, Base, Reader
from testsupport.studies import study_toml, committed

CODE_RE = re.compile(r"^[ABCDEFGHJKMNPQRSTUVWXYZ23456789]{4}(-[ABCDEFGHJKMNPQRSTUVWXYZ23456789]{4}){2}$")


def _study(s):
    t = study_toml()
    return committed(studies.create_study, s, parse_text(t), t)


def _dump(engine) -> str:
    """Every value in every table as one string (bytes decoded leniently)."""
    parts = []
    with engine.connect() as conn:
        for table in Base.metadata.sorted_tables:
            for row in conn.execute(table.select()):
                for v in row:
                    parts.append(v.decode("latin-1") if isinstance(v, (bytes, memoryview)) else str(v))
    return "\n".join(parts)


def test_codes_format_and_alphabet():
    codes = {readers.generate_code() for _ in range(200)}
    assert len(codes) == 200
    assert all(CODE_RE.match(c) for c in codes)
    assert readers.normalise_code(" k7qx-3mnp w9rt ") == "K7QX3MNPW9RT"
    assert readers.normalise_code("K7QX-3MNP-W9R") is None
    assert readers.normalise_code("O0I1-3MNP-W9RT") is None


def test_add_reader_levels_and_audit(Session):
    with Session() as s:
        st = _study(s)
        r1, c1 = committed(readers.add_reader, s, st.id, display_name="Dr A", years_experience=3, specialty="retina", site="X")
        r2, _ = committed(readers.add_reader, s, st.id, display_name="Dr B", years_experience=10)
        r3, _ = committed(readers.add_reader, s, st.id, display_name="Dr C", years_experience=22)
        assert [r.level for r in (r1, r2, r3)] == ["junior", "intermediate", "senior"]
        assert [r.pseudonym for r in (r1, r2, r3)] == ["R001", "R002", "R003"]
        ev = s.scalar(select(AuditEvent).where(AuditEvent.action == "reader.added", AuditEvent.entity_id == str(r1.id)))
        assert ev.after["pseudonym"] == "R001" and "code" not in str(ev.after).lower().replace("code_issued_at", "")
        with pytest.raises(ValueError):
            committed(readers.add_reader, s, st.id, display_name="Dr D", years_experience=-1)


def test_code_stored_only_hashed(Session, engine):
    with Session() as s:
        st = _study(s)
        issued = [committed(readers.add_reader, s, st.id, display_name=f"Dr {i}", years_experience=i)[1] for i in range(3)]
        r = s.scalar(select(Reader).order_by(Reader.id).limit(1))
        issued.append(committed(readers.issue_code, s, r.id))
    dump = _dump(engine)
    for code in issued:
        flat = code.replace("-", "")
        assert code not in dump and flat not in dump and code[5:] not in dump and flat[4:] not in dump
    with Session() as s:
        for reader in s.scalars(select(Reader)):
            assert reader.code_hash.startswith("$argon2id$")


def test_authenticate_revoke_reissue(Session):
    with Session() as s:
        st = _study(s)
        r, code = committed(readers.add_reader, s, st.id, display_name="Dr A", years_experience=3)
        other, other_code = committed(readers.add_reader, s, st.id, display_name="Dr B", years_experience=3)
        assert readers.authenticate(s, code).id == r.id
        assert readers.authenticate(s, code.lower().replace("-", " ")).id == r.id
        assert readers.authenticate(s, other_code).id == other.id
        wrong = code[:-1] + ("A" if code[-1] != "A" else "B")
        assert readers.authenticate(s, wrong) is None
        assert readers.authenticate(s, "") is None
        committed(readers.revoke, s, r.id)
        assert readers.authenticate(s, code) is None
        new = committed(readers.issue_code, s, r.id)
        assert new != code
        assert readers.authenticate(s, new).id == r.id
        assert readers.authenticate(s, code) is None  # the old code stays dead
        actions = [e.action for e in s.scalars(select(AuditEvent).where(AuditEvent.entity == "reader",
                                                                        AuditEvent.entity_id == str(r.id))
                                               .order_by(AuditEvent.id))]
        assert actions == ["reader.added", "reader.revoked", "reader.code_issued"]


def test_authenticate_verifies_only_prefix_matches(Session, monkeypatch):
    with Session() as s:
        st = _study(s)
        codes = [committed(readers.add_reader, s, st.id, display_name=f"Dr {i}", years_experience=1)[1] for i in range(6)]
        calls = []
        real = readers.HASHER

        class Counting:
            def verify(self, h, p):
                calls.append(h)
                return real.verify(h, p)

        monkeypatch.setattr(readers, "HASHER", Counting())
        assert readers.authenticate(s, codes[3]) is not None
        prefixes = [c[:4] for c in codes]
        assert len(calls) == prefixes.count(codes[3][:4]) <= 2
        # the prefix index exists on the column
        assert any(ix.name == "ix_reader_code_lookup" for ix in Reader.__table__.indexes)


def test_readers_from_a_csv_are_added_all_or_none(Session, db_url, monkeypatch, tmp_path):
    """A failure at the third reader (after the CSV was checked) adds nobody, on the app's route and the
    CLI's, and the CLI leaves no codes file behind."""
    from study.cli import main
    from study.services import investigator

    with Session() as s:
        sid = _study(s).id
    real, calls = readers.HASHER, []

    class FailingEveryThird:
        def hash(self, secret):
            calls.append(secret)
            if len(calls) % 3 == 0:
                raise RuntimeError("the database went away")
            return real.hash(secret)

    monkeypatch.setattr(readers, "HASHER", FailingEveryThird())
    text = "display_name,years_experience\nDr A,2\nDr B,8\nDr C,16\n"
    with pytest.raises(RuntimeError, match="went away"):
        investigator.add_readers_csv(Session, sid, text, "lead")
    (tmp_path / "r.csv").write_text(text)
    codes = tmp_path / "codes.csv"
    with pytest.raises(RuntimeError, match="went away"):
        main(["add-readers", str(tmp_path / "r.csv"), "--db", db_url, "--codes-out", str(codes)])
    assert not codes.exists()
    with Session() as s:
        assert s.scalars(select(Reader)).all() == []
        assert s.scalars(select(AuditEvent).where(AuditEvent.action == "reader.added")).all() == []
    monkeypatch.setattr(readers, "HASHER", real)
    rows, problems = investigator.add_readers_csv(Session, sid, text, "lead")
    assert problems == [] and [r["pseudonym"] for r in rows] == ["R001", "R002", "R003"]
