"""Build small study databases for the app tests (no model needed: AI outputs are stored directly), read what
the app rendered, and start a page as a signed-in reader. What the benchmarks share with the tests (the app's
path, the served app, Chromium, studies of photographs, the reader's AppTest steps) is in ``testsupport.app``."""
from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from study.domain.cases import add_case
from study.domain.config import parse_text
from study.domain.studies import create_study
from study.jobs.precompute import store_ai_output
from study.storage import db
from testsupport.app import CARD, PROBS, SALIENCY_CARD, TRUTH, map_stack, readers_and_design
from testsupport.studies import committed, study_toml


def make_study(tmp_path: Path, design: str = "sequential", n_cases: int = 3, n_readers: int = 2,
               saliency: bool | str = False, **toml) -> tuple[str, dict[str, int], list[str]]:
    """A migrated SQLite study with cases (tiny PNGs), readers and AI outputs; returns (url, study ids, codes).
    ``saliency``: ``"maps"`` stores display-ready maps of the three most probable findings (as precompute does),
    ``True`` one rendered picture (``saliency_png``, as studies precomputed before maps had)."""
    url = f"sqlite:///{tmp_path / 'study.sqlite'}"
    db.upgrade(url)
    factory = db.session_factory(db.make_engine(url))
    text = study_toml(design, **toml)
    rng = np.random.default_rng(0)
    with factory() as s:
        study = committed(create_study, s, parse_text(text), text)
        for i in range(n_cases):
            path = tmp_path / f"case{i}.png"
            Image.fromarray(rng.integers(0, 255, (48, 64, 3), dtype=np.uint8)).save(path)
            truth = TRUTH[i % len(TRUTH)]
            case = committed(add_case, s, study.id, f"C{i:03d}", str(path), {"label": truth, "findings": []})
            maps = map_stack(Image.open(path)) if saliency == "maps" else ()
            committed(store_ai_output, s, case.id, model_card=SALIENCY_CARD if maps else CARD, probabilities=PROBS,
                            label_set="revision_findings", saliency_png=_png(rng) if saliency is True else None,
                            maps=maps)
        codes = readers_and_design(s, study, n_readers)
        ids = {"study": study.id}
    return url, ids, codes


def _png(rng) -> bytes:
    import io

    buf = io.BytesIO()
    Image.fromarray(rng.integers(0, 255, (48, 64, 3), dtype=np.uint8)).save(buf, format="PNG")
    return buf.getvalue()


def rendered_text(at) -> str:
    """Every string the app sent to the browser in this run (element protos, serialised)."""
    from google.protobuf.json_format import MessageToJson

    parts = []

    def walk(node):
        proto = getattr(node, "proto", None)
        if proto is not None:
            try:
                parts.append(MessageToJson(proto))
            except Exception:
                parts.append(str(proto))
        for child in getattr(node, "children", {}).values():
            walk(child)

    walk(at._tree)
    return "\n".join(parts)


def open_reader_session(url: str, reader_id: int) -> int:
    """A live session for a reader (what a sign-in opens), for tests that start a page as that reader: every
    run of a reader's page checks it (pages/_shared.check_reader_session)."""
    from study.domain import reader_sessions
    from study.storage.models import Reader, utcnow

    factory = db.session_factory(db.make_engine(url))
    with factory() as s:
        row, _ticket = reader_sessions.open_session(s, s.get(Reader, reader_id), client="test", now=utcnow(),
                                                    lifetime=reader_sessions.Lifetime())
        s.commit()
        return row.id


def as_signed_in_reader(at, url: str, reader_id: int):
    """Put ``at`` (an AppTest before its first run) in a reader's signed-in browser session."""
    at.session_state["role"], at.session_state["reader_id"] = "reader", reader_id
    at.session_state["reader_session_id"] = open_reader_session(url, reader_id)
    return at


# the reading page's Submit button in a browser (a plain button keyed submit_<assignment id>: the form keeps
# drafts); testsupport.app.submit_button finds it in an AppTest run
SUBMIT_SELECTOR = '[class*="st-key-submit_"] button'
