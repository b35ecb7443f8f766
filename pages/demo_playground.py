"""Demo: try the model on a sample synthetic photograph or an uploaded one."""
import plotly.express as px
import streamlit as st
from PIL import Image

from pages._shared import classifier
from revision_core.imageio import ImageLoadError, load_image
from revision_core.synthetic import generate_case

st.title("Model playground")
clf = classifier()
card = clf.loaded.card
if card.is_demo:
    st.warning(f"**Demo model.** {card.disclaimer}", icon="⚠️")
st.caption(f"Model: {card.name} · version {card.version} · {card.architecture} · {card.input_size}px · {card.device}")

source = st.radio("Photograph", ["Sample synthetic photograph", "Upload"], horizontal=True)
image, truth = None, None
if source == "Upload":
    upload = st.file_uploader("Colour fundus photograph (JPEG, PNG, TIFF or DICOM)")
    if upload is not None:
        try:
            image = load_image(upload.getvalue(), name=upload.name)
        except ImageLoadError as exc:
            st.error(str(exc))
else:
    seed = st.number_input("Sample number", min_value=0, max_value=10_000, value=7, step=1)
    case = generate_case(1_000_000_000 + int(seed), size=512)
    image, truth = Image.fromarray(case.image), case

if image is not None:
    probs = clf.predict_images([image])[0]
    left, right = st.columns([3, 2])
    left.image(image, caption="Input photograph", width="stretch")
    names = [clf.label_set.finding(k).name for k in clf.findings]
    fig = px.bar(x=probs, y=names, orientation="h", range_x=[0, 1],
                 labels={"x": "probability (zero-shot suggestion)", "y": ""})
    right.plotly_chart(fig, width="stretch")
    right.caption("Zero-shot suggestions support, and never replace, the reader's judgement.")
    if truth is not None:
        with right.expander("Synthetic ground truth and report"):
            present = [clf.label_set.finding(k).name for k in clf.findings if truth.labels.get(k)]
            st.write("Findings: " + (", ".join(present) or "normal"))
            st.write(truth.report)
