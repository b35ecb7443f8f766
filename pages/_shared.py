"""Resources loaded once per server process and shared by every page and session, plus the role checks.

Heavy imports (torch, the model) happen inside :func:`classifier` only, so reader and investigator
pages never load the model. The model is the bundled demo by default; ``REVISION_APP_MODEL`` (an
open_clip architecture) with ``REVISION_APP_CHECKPOINT`` selects another (the tests use a tiny one).
"""
import os

import streamlit as st
from streamlit.runtime.pages_manager import PagesManager

# A ``pages/`` folder next to app.py makes Streamlit treat every file in it as a page (the old
# multipage mode) until app.py's st.navigation runs; if a server's very first request named a page
# URL, app.py would never run and the role-based navigation would be bypassed for the whole process.
# This module is imported by every page, so the first such run switches that mode off for good (each
# page also checks the role itself, so even that first run shows nothing it should not).
PagesManager.uses_pages_directory = False

ROLE = "role"  # session_state key: None (visitor), "reader" or "investigator"


def model_spec() -> tuple[str, str | None]:
    return os.environ.get("REVISION_APP_MODEL", "demo"), os.environ.get("REVISION_APP_CHECKPOINT") or None


@st.cache_resource(show_spinner="Loading the model ...")
def _classifier(spec: str, checkpoint: str | None):
    from revision_core.model import load_model
    from revision_core.zeroshot import ZeroShotClassifier

    return ZeroShotClassifier(load_model(spec, checkpoint))


def classifier(spec: str | None = None):
    """The model and its label-set prompt embeddings, computed once per process."""
    default_spec, checkpoint = model_spec()
    return _classifier(spec or default_spec, checkpoint if spec is None else None)


@st.cache_resource(show_spinner=False)
def _database(url: str):
    from study import db

    return db.open_database(url)[1]


def database():
    """The session factory for the configured database (env, secrets.toml, else embedded SQLite), migrated once."""
    from study import db

    return _database(db.resolve_url(None))


def role() -> str | None:
    return st.session_state.get(ROLE)


def require_role(wanted: str) -> None:
    """Stop the page unless this browser session is signed in as ``wanted`` (defence in depth: the
    navigation already hides other roles' pages)."""
    if role() != wanted:
        st.error(f"This page is for signed-in {wanted}s only.")
        st.stop()


def sign_out() -> None:
    for key in list(st.session_state.keys()):
        if key != "signin_throttle":  # the lockout survives a sign-out in the same browser session
            del st.session_state[key]


def classifier_or_stop():
    """The classifier, or a clear error and a stopped page when the model cannot be loaded."""
    from revision_core.model import ModelLoadError

    try:
        return classifier()
    except ModelLoadError as exc:
        st.error(f"The model is not available: {exc}")
        st.stop()


def model_banner(clf, detail: str = "") -> None:
    """The demo disclaimer (for the demo model) and a one-line model card, shown with every suggestion."""
    card = clf.loaded.card
    if card.is_demo:
        st.warning(f"**Demo model.** {card.disclaimer}", icon=":material/warning:")
    st.caption(f"Model: {card.name} · version {card.version}{detail}")


def probability_chart(names, probabilities, height: int | None = None):
    """Horizontal bars of suggestion probabilities, highest on top, each labelled with its value."""
    import plotly.express as px

    pairs = sorted(zip(names, probabilities), key=lambda kv: kv[1])
    fig = px.bar(x=[p for _, p in pairs], y=[n for n, _ in pairs], orientation="h", range_x=[0, 1.12],
                 text=[f"{p:.0%}" for _, p in pairs], labels={"x": "probability (suggestion)", "y": ""},
                 height=height)
    fig.update_traces(textposition="outside", cliponaxis=False)
    fig.update_xaxes(tickformat=".0%", tickvals=[0, 0.25, 0.5, 0.75, 1])
    return fig


@st.cache_data(show_spinner=False)
def _label_set_names(label_set: str) -> dict[str, str]:
    from revision_core.labels import load_label_set

    return {f.key: f.name for f in load_label_set(label_set).findings}


def finding_names(label_set: str | None, questions=()) -> dict[str, str]:
    """Finding key -> name as the AI panel shows it: the label set's names, else the questions' option labels."""
    names = {k: label for q in questions for k, label in (q.get("options") or ())}
    if label_set:
        try:
            names.update(_label_set_names(label_set))
        except Exception:  # a label set edited or removed since precompute: fall back to the option labels
            pass
    return names


READING_ROOM_CSS = """
<style>
/* the reading page: the photograph gets the room. No header band, slim margins, and the viewer column
   stays in view while the reader scrolls the questions. */
header[data-testid="stHeader"] { display: none; }
.stMainBlockContainer, [data-testid="stMainBlockContainer"] { padding: 0.75rem 1rem 1rem 1rem; max-width: none; }
.st-key-viewer_column { position: sticky; top: 0.5rem; }
/* while the next case is drawn, nothing of the previous one stays on screen: no old AI panel beside a new
   photograph, no old heading above it (the page reruns only on Submit and Pause) */
[data-testid="stElementContainer"][data-stale="true"] { visibility: hidden; }
.stMainBlockContainer h3 { padding: 0 0 0.1rem 0; }
</style>
"""


def reading_room_style() -> None:
    st.html(READING_ROOM_CSS)
