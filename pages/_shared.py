"""Resources loaded once per server process and shared by every page and session."""
import streamlit as st

from revision_core.model import load_model
from revision_core.zeroshot import ZeroShotClassifier


@st.cache_resource(show_spinner="Loading the model ...")
def classifier(spec: str = "demo") -> ZeroShotClassifier:
    """The model and its label-set prompt embeddings, computed once per process."""
    return ZeroShotClassifier(load_model(spec))
