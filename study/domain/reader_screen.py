"""What the reading page shows around a workflow item: the photograph's links (and, in the saliency arm,
the saliency maps' links), the eye, an answer in words, and the study's session plan for the consent page. Kept apart from the workflow because none of
it is a rule of the study: it is how a case is put on a screen.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from study.domain import image_links, overlays
from study.domain.cases import display_files, study_store
from study.domain.studies import study_config
from study.storage import db
from study.storage.models import Assignment, Reader, Study

EYES = {"right": "Right eye (OD)", "left": "Left eye (OS)"}


@dataclass(frozen=True)
class MapLink:
    """A saliency map as the viewer gets it: which finding it explains, its probability, where to fetch it."""

    finding: str
    probability: float
    url: str
    width: int
    height: int


@dataclass(frozen=True)
class CaseDisplay:
    screen_url: str  # longest side 2048 px, shown first
    full_url: str  # native pixels, fetched when the zoom needs them
    width: int  # the upright photograph's size in pixels
    height: int
    prefetch: tuple[str, ...] = ()  # the next case's screen image (and its maps, saliency arm to saliency arm)
    maps: tuple[MapLink, ...] = ()  # saliency arm only: this case's maps, most probable finding first


def case_display(key: bytes, study_id: int, image_ref: str, next_image_ref: str | None = None, *, reader_id: int,
                 code_version: int, maps=(), next_maps=(), store_root=None) -> CaseDisplay:
    """Links to a case photograph's display files in the study store (made on first use for older studies), to
    the next case's screen image for the browser to prefetch, and to the saliency maps the item carries
    (``AIPanel.maps`` and ``next_maps``: given only for a saliency-arm reading); every link signed with ``key``
    for one reader and their code's version (``study.domain.image_links``)."""

    files = display_files(study_id, image_ref, store_root)

    def url(name: str) -> str:
        return image_links.image_url(key, study_id, name, reader_id=reader_id, code_version=code_version)

    prefetch = ()
    if next_image_ref:
        prefetch = (url(display_files(study_id, next_image_ref, store_root).screen.name),)
    store = study_store(study_id, store_root)

    def link(m) -> str:
        return url(overlays.ensure_file(store, m).name)

    return CaseDisplay(url(files.screen.name), url(files.full.name), files.width, files.height,
                       prefetch + tuple(link(m) for m in next_maps),
                       tuple(MapLink(m.finding, m.probability, link(m), m.width, m.height) for m in maps))


def describe_answer(questions, payload: dict) -> list[tuple[str, str]]:
    """(question text, answer in words) for each question answered, in the questions' order: what a
    reader reads back, with option labels instead of keys and yes/no instead of True/False."""
    out = [("Image ungradable", "yes")] if payload.get("ungradable") else []
    for q in questions:
        if q["id"] not in payload:
            continue
        labels, value = dict(q.get("options") or ()), payload[q["id"]]
        if isinstance(value, bool):
            text = "yes" if value else "no"
        elif isinstance(value, (list, tuple)):
            text = ", ".join(labels.get(v, str(v)) for v in value) or "none"
        elif value is None:
            text = "not answered"
        else:
            text = labels.get(value, str(value))
            if q.get("unit") and not labels:
                text = f"{text} {q['unit']}"
        out.append((q["text"], text))
    return out


def eye_label(eye: str | None) -> str:
    return EYES.get(eye or "", "Eye not recorded")


def consent_summary(factory: sessionmaker[Session], reader_id: int) -> str:
    """The reader's session plan in words: how many sessions, how many readings each, the washout."""
    with factory() as session:
        db.begin_read(session)
        reader = session.get(Reader, reader_id)
        config = study_config(session.get(Study, reader.study_id))
        counts = session.execute(select(Assignment.session, func.count()).where(Assignment.reader_id == reader.id)
                                 .group_by(Assignment.session).order_by(Assignment.session)).all()
        session.rollback()
    if not counts:
        return "No readings have been assigned to you yet: please contact the study team."
    return _session_plan(config, counts) + " " + corrections_rule(config)


def corrections_rule(config) -> str:
    """What the reader may correct, in words (the consent page states it; ``study.domain.workflow.correct``
    enforces it)."""
    if not config.corrections_allowed:
        return "Answers cannot be changed once submitted."
    if config.unaided_corrections_after_ai:
        return ("You can correct an answer of your current session, with a reason (each version is kept), "
                "including your unaided answers after the AI-assisted readings begin.")
    return ("You can correct an answer of your current session, with a reason (each version is kept), until the "
            "session's first AI-assisted reading: from then on your unaided answers of that session are locked.")


def _session_plan(config, counts) -> str:
    total = sum(n for _, n in counts)
    if len(counts) == 1:
        text = f"This study has one session of {total} readings."
        if config.design.type == "sequential":
            text += (" Each case is read twice in a row: first without AI (your answer is then locked), "
                     "then with the AI suggestion for your final answer.")
        return text
    parts = ", ".join(f"session {s}: {n} readings" for s, n in counts)
    return (f"This study has {len(counts)} sessions ({parts}). Each case is read once without and once with the "
            f"AI suggestion, in different sessions. After session 1 there is a washout of "
            f"{config.design.washout_days} days before the next session opens, so that you do not remember the "
            "cases; the page tells you the date.")
