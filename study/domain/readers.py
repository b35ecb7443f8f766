"""Readers and their access codes.

Why a lookup prefix: argon2 is deliberately slow (tens of ms), so verifying a typed code against every
reader would make sign-in O(readers). A code is three groups of four characters; the first group is
stored in clear as ``code_lookup`` (it is not secret on its own: the remaining eight characters, ~40
bits, are what the argon2 hash protects), sign-in verifies only the few readers sharing that prefix.
A prefix nobody has costs one argon2 verify of a dummy hash, so the response time does not tell which
prefixes exist; failed tries are counted per prefix in the database (``study.domain.lockout``).
The plain code is returned once by :func:`add_reader` / :func:`issue_code` and stored nowhere.

A reader added after the study's first answer is appended to the locked design in the same transaction
(``study.domain.design.extend_design``): they read every case, in the reader group with the fewest readers, so
they never meet an empty "Study complete" and ``design --verify`` stays clean. Before the first answer a
new reader waits for the design to be (re)built, as the set-up page and ``status`` say.
"""

from __future__ import annotations

import csv
import io
import math
import re
import secrets
from dataclasses import dataclass

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from study.domain import audit
from study.domain.design import extend_design, is_locked
from study.domain.studies import get_study, study_config
from study.storage import text as stored_text
from study.storage.models import Reader, Study, utcnow

ALPHABET = "ABCDEFGHJKMNPQRSTUVWXYZ23456789"  # no 0/O, 1/I/L: typable from a printout
GROUPS, GROUP_LEN = 3, 4
HASHER = PasswordHasher()  # module-level so tests can use cheaper parameters


READER_COLUMNS = ("display_name", "years_experience", "specialty", "site", "pseudonym")
REQUIRED_READER_COLUMNS = READER_COLUMNS[:2]
# a reader's texts, in the words a message uses, with their column's length (study.storage.text: the same on
# SQLite and PostgreSQL, checked before any SQL; a refused value is never echoed)
READER_TEXTS = {column: (words, Reader.__table__.c[column].type.length) for column, words in
                (("display_name", "reader name"), ("specialty", "specialty"), ("site", "site"),
                 ("pseudonym", "pseudonym"))}


@dataclass(frozen=True)
class ReaderRow:
    """One reader from a readers CSV, checked."""
    display_name: str
    years_experience: float
    specialty: str | None = None
    site: str | None = None
    pseudonym: str | None = None


def parse_readers_csv(text: str, config=None) -> tuple[list[ReaderRow], list[str]]:
    """(readers, problems) of a readers CSV (columns display_name, years_experience[, specialty, site,
    pseudonym]): the one check the app's upload and ``python -m study add-readers`` share. Problems name the
    row and column; with ``config`` the years are also placed in the study's experience levels."""
    table = csv.DictReader(io.StringIO(text.lstrip("\ufeff")))
    missing = [c for c in REQUIRED_READER_COLUMNS if c not in (table.fieldnames or [])]
    if missing:
        return [], [f"missing column(s) {', '.join(missing)} (the columns are {', '.join(READER_COLUMNS)})"]
    rows, problems = [], []
    for i, row in enumerate(table, start=2):
        name = (row.get("display_name") or "").strip()
        if not name:
            problems.append(f"row {i}, column display_name: empty")
        for column, (_words, length) in READER_TEXTS.items():
            if (why := stored_text.problem((row.get(column) or "").strip(), length)) is not None:
                problems.append(f"row {i}, column {column}: {why}")
        raw = (row.get("years_experience") or "").strip()
        try:
            years = float(raw)
            if not math.isfinite(years) or years < 0:
                raise ValueError
            if config is not None:
                config.level_for(years)
        except ValueError:
            problems.append(f"row {i}, column years_experience: not a number >= 0 ({raw[:40]!r})")
            continue
        rows.append(ReaderRow(name, years, (row.get("specialty") or "").strip() or None,
                              (row.get("site") or "").strip() or None, (row.get("pseudonym") or "").strip() or None))
    if not rows and not problems:
        problems.append("the CSV has no readers")
    return rows, problems


def generate_code() -> str:
    """A fresh access code like ``K7QX-3MNP-W9RT``."""
    return "-".join("".join(secrets.choice(ALPHABET) for _ in range(GROUP_LEN)) for _ in range(GROUPS))


def normalise_code(code: str) -> str | None:
    """Uppercase without separators/spaces; None if it cannot be a code (wrong length or characters)."""
    if not isinstance(code, str):
        return None
    flat = re.sub(r"[\s\-_.]", "", code).upper()
    if len(flat) != GROUPS * GROUP_LEN or any(c not in ALPHABET for c in flat):
        return None
    return flat


def _snapshot(reader: Reader) -> dict:
    return {"pseudonym": reader.pseudonym, "display_name": reader.display_name,
            "years_experience": reader.years_experience, "level": reader.level, "specialty": reader.specialty,
            "site": reader.site, "code_issued_at": reader.code_issued_at, "revoked_at": reader.revoked_at}


def _next_pseudonym(session: Session, study_id: int) -> str:
    count = session.scalar(select(func.count()).select_from(Reader).where(Reader.study_id == study_id)) or 0
    taken = set(session.scalars(select(Reader.pseudonym).where(Reader.study_id == study_id)))
    n = count + 1
    while f"R{n:03d}" in taken:
        n += 1
    return f"R{n:03d}"


def _set_code(reader: Reader, now) -> str:
    code = generate_code()
    flat = normalise_code(code)
    reader.code_lookup = flat[:GROUP_LEN]
    reader.code_hash = HASHER.hash(flat)
    reader.code_issued_at = now
    reader.revoked_at = None
    return code


def add_reader(session: Session, study_id: int, *, display_name: str, years_experience: float,
               specialty: str | None = None, site: str | None = None, pseudonym: str | None = None,
               actor: str = "investigator") -> tuple[Reader, str]:
    """Add a reader with a level from the study's bins; returns the reader and the plain code (shown once).
    In a locked study (answers exist) the reader's assignments are appended in the same transaction (the
    caller's: several readers added in one are all or none)."""

    study = get_study(session, study_id)
    if not isinstance(display_name, str) or not display_name.strip():
        raise ValueError("display_name must be a non-empty string")
    display_name, specialty, site, pseudonym = (  # TextInvalid (a ValueError) names the field
        stored_text.check(value, READER_TEXTS[column][0], READER_TEXTS[column][1], required=column == "display_name")
        for column, value in (("display_name", display_name), ("specialty", specialty), ("site", site),
                              ("pseudonym", pseudonym)))
    level = study_config(study).level_for(years_experience)
    # one reader added at a time per study (PostgreSQL; SQLite's write lock does it there): the next pseudonym
    # and, once the study is locked, the reader group are then chosen from what the others committed
    session.execute(select(Study.id).where(Study.id == study.id).with_for_update(key_share=True))
    now = utcnow()
    reader = Reader(study_id=study.id, pseudonym=pseudonym or _next_pseudonym(session, study.id),
                    display_name=display_name.strip(), years_experience=float(years_experience), level=level,
                    specialty=specialty, site=site)
    code = _set_code(reader, now)
    session.add(reader)
    session.flush()
    audit.record(session, actor=actor, action="reader.added", entity="reader", entity_id=reader.id,
                 study_id=study.id, at=now, after=_snapshot(reader))
    if is_locked(session, study):
        extend_design(session, study, [reader.pseudonym], actor=actor)
    session.flush()
    return reader, code


def issue_code(session: Session, reader_id: int, *, actor: str = "investigator") -> str:
    """Replace a reader's code (the old one stops working; also lifts a revocation); returns the new code."""
    reader = _get(session, reader_id)
    before, now = _snapshot(reader), utcnow()
    code = _set_code(reader, now)
    audit.record(session, actor=actor, action="reader.code_issued", entity="reader", entity_id=reader.id,
                 study_id=reader.study_id, at=now, before=before, after=_snapshot(reader))
    session.flush()
    return code


def revoke(session: Session, reader_id: int, *, actor: str = "investigator") -> None:
    """Disable a reader's access code; their answers stay."""
    reader = _get(session, reader_id)
    before, now = _snapshot(reader), utcnow()
    reader.revoked_at, reader.code_hash, reader.code_lookup = now, None, None
    audit.record(session, actor=actor, action="reader.revoked", entity="reader", entity_id=reader.id,
                 study_id=reader.study_id, at=now, before=before, after=_snapshot(reader))
    session.flush()


def authenticate(session: Session, code: str, *, study_id: int | None = None) -> Reader | None:
    """The active reader whose code this is, or None; verifies argon2 only for readers sharing the prefix."""
    flat = normalise_code(code)
    if flat is None:
        return None
    query = select(Reader).where(Reader.code_lookup == flat[:GROUP_LEN], Reader.revoked_at.is_(None),
                                 Reader.code_hash.is_not(None))
    if study_id is not None:
        query = query.where(Reader.study_id == study_id)
    candidates = list(session.scalars(query))
    if not candidates:  # an unknown prefix costs the same argon2 verify as a known one
        try:
            HASHER.verify(_dummy_hash(), flat)
        except (VerificationError, InvalidHashError):
            pass
        return None
    for reader in candidates:
        try:
            if HASHER.verify(reader.code_hash, flat):
                return reader
        except (VerificationError, InvalidHashError):
            continue
    return None


_DUMMY: tuple[PasswordHasher, str] | None = None


def _dummy_hash() -> str:
    """A hash of a random code with the current :data:`HASHER`'s parameters (so verifying it costs what
    verifying a reader's code costs); made once per hasher."""
    global _DUMMY
    if _DUMMY is None or _DUMMY[0] is not HASHER:
        _DUMMY = (HASHER, HASHER.hash(normalise_code(generate_code())))
    return _DUMMY[1]


def _get(session: Session, reader_id: int) -> Reader:
    reader = session.get(Reader, reader_id)
    if reader is None:
        raise ValueError(f"no reader with id {reader_id}")
    return reader
