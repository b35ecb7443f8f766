"""The investigator pages' common header: role check and the study picker (sidebar)."""
import streamlit as st

from pages._shared import database, require_role
from study.services.investigator import list_studies


def header(title: str, *, require_study: bool = True):
    """Check the role, draw the title and the study picker; returns (session factory, study id, actor).
    Without any study the page stops with "No study yet." unless ``require_study=False`` (the set-up page,
    where the first study is created), which gets None for the study id."""
    require_role("investigator")

    st.title(title)
    factory = database()
    studies = list_studies(factory)
    actor = f"investigator:{st.session_state.get('investigator_user', '?')}"
    if not studies:
        if require_study:
            st.info("No study yet.")
            st.stop()
        return factory, None, actor
    names = dict(studies)
    ids = list(names)
    pending = st.session_state.pop("study_id_pending", None)  # a study just created: select it
    if pending in ids:
        st.session_state["study_pick"] = pending
    current = st.session_state.get("study_id")
    study_id = st.sidebar.selectbox("Study", ids, index=ids.index(current) if current in ids else len(ids) - 1,
                                    format_func=lambda i: f"{names[i]} (#{i})", key="study_pick")
    st.session_state["study_id"] = study_id
    return factory, study_id, actor
