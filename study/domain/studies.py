"""Create a study from its validated configuration, and change it only while reading has not started.

Why a separate module: the study row is where the design lock lives; every change to the config goes
through :func:`update_config`, which refuses once the first answer exists.
"""

from __future__ import annotations

import secrets

from sqlalchemy import exists, select, update
from sqlalchemy.orm import Session

from study.domain import audit
from study.domain.config import StudyConfig
from study.storage.models import Answer, Assignment, Study, utcnow


class DesignLocked(RuntimeError):
    """The study has answers: its design and configuration can no longer change."""


def create_study(session: Session, config: StudyConfig, toml_text: str, *, actor: str = "investigator") -> Study:
    """Store a new study; its seed is the config's, or a fresh random one that is stored for rebuilds."""
    if session.scalar(select(Study).where(Study.name == config.name)) is not None:
        raise ValueError(f"a study named {config.name!r} already exists")
    seed = config.seed if config.seed is not None else secrets.randbelow(2**31)
    study = Study(name=config.name, config_toml=toml_text, config=config.to_dict(), design=config.design.type,
                  seed=seed)
    session.add(study)
    session.flush()
    audit.record(session, actor=actor, action="study.created", entity="study", entity_id=study.id,
                 study_id=study.id, after={"name": study.name, "design": study.design, "seed": seed,
                                           "config": study.config})
    session.flush()
    return study


def get_study(session: Session, study: int | str) -> Study:
    """A study by id or by name; ValueError naming the known studies if absent."""
    found = session.get(Study, study) if isinstance(study, int) else session.scalar(
        select(Study).where(Study.name == study))
    if found is None:
        names = ", ".join(session.scalars(select(Study.name))) or "none"
        raise ValueError(f"no study {study!r} (studies: {names})")
    return found


def study_config(study: Study) -> StudyConfig:
    return StudyConfig.from_dict(study.config)


def has_answers(session: Session, study_id: int) -> bool:
    return bool(session.scalar(select(exists().where(Answer.assignment_id == Assignment.id,
                                                     Assignment.study_id == study_id))))


def ensure_unlocked(session: Session, study: Study) -> None:
    """Raise :class:`DesignLocked` once the study's first answer exists."""
    if study.design_locked_at is not None or has_answers(session, study.id):
        raise DesignLocked(f"study {study.name!r} has answers (locked since {study.design_locked_at}); "
                           "its design and configuration can no longer change")


def lock_design(session: Session, study_id: int, *, actor: str, now=None) -> None:
    """Mark the design locked (first answer); a conditional UPDATE so concurrent first answers audit once."""
    now = now or utcnow()
    result = session.execute(update(Study).where(Study.id == study_id, Study.design_locked_at.is_(None))
                             .values(design_locked_at=now).execution_options(synchronize_session=False))
    if result.rowcount == 1:
        audit.record(session, actor=actor, action="design.locked", entity="study", entity_id=study_id,
                     study_id=study_id, at=now, after={"design_locked_at": now})


def update_config(session: Session, study_id: int, config: StudyConfig, toml_text: str, *,
                  actor: str = "investigator") -> Study:
    """Replace a study's configuration; refused once reading has started."""
    study = get_study(session, study_id)
    ensure_unlocked(session, study)
    before = {"config": study.config, "seed": study.seed}
    study.config, study.config_toml, study.design = config.to_dict(), toml_text, config.design.type
    if config.seed is not None:
        study.seed = config.seed
    audit.record(session, actor=actor, action="study.config_changed", entity="study", entity_id=study.id,
                 study_id=study.id, before=before, after={"config": study.config, "seed": study.seed})
    session.flush()
    return study
