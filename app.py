"""ReVision Reader Study: the Streamlit entry point. Navigation only; pages draw widgets and call
``revision_core`` and ``study``."""
import streamlit as st

st.set_page_config(page_title="ReVision Reader Study", page_icon="👁", layout="wide")

pages = {
    "Demo": [
        st.Page("pages/demo_playground.py", title="Model playground", icon="🔬", default=True),
    ],
}
st.navigation(pages).run()
