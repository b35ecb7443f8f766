"""Two oracles the study tests read the database and the store with. (The study data the tests share with the
benchmarks, study_toml, LABELS, CARD, SALIENCY, VALID_ANSWER and committed, are in ``testsupport.studies``.)"""

from __future__ import annotations

from sqlalchemy import select

from study.domain.cases import case_source, study_store
from study.storage.models import Answer


def answer_history(session, assignment_id: int) -> list[Answer]:
    """Every version of the answer to one assignment, oldest first."""
    return list(session.scalars(select(Answer).where(Answer.assignment_id == assignment_id).order_by(Answer.version)))


def load_case_image(study_id: int, image_ref: str, store_root=None):
    """The case photograph, upright, exactly as ``load_image`` returned it from the source at import."""
    from revision_core.imageio import load_image

    return load_image(case_source(study_store(study_id, store_root), image_ref))
