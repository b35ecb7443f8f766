"""Demo: try the model on a sample synthetic photograph or an uploaded one."""
import html

import streamlit as st
from PIL import Image

from pages._shared import classifier_or_stop, load_upload_reduced, model_banner, plain, probability_chart
from revision_core.imageio import ImageLoadError
from revision_core.synthetic import generate_case

from pages._shared import require_public_demo

require_public_demo()  # study mode: nothing of the model while a study has unaided readings left (app.py)
st.title("Model playground")
clf = classifier_or_stop()
card = clf.loaded.card
model_banner(clf, f" · {card.architecture} · {card.input_size}px · {card.device}")

source = st.radio("Photograph", ["Sample synthetic photograph", "Upload"], horizontal=True)
image, truth = None, None
if source == "Upload":
    upload = st.file_uploader("Colour fundus photograph (JPEG, PNG, TIFF or DICOM)")
    if upload is not None:
        try:
            # bounded: header pixel check, then reduced decoding to 2048 px at most (the model reads far less)
            image = load_upload_reduced(upload.getvalue(), name=upload.name)
        except ImageLoadError as exc:
            st.error(plain(exc))  # the message names the uploaded file: plain text
else:
    seed = st.number_input("Sample number", min_value=0, max_value=10_000, value=7, step=1)
    case = generate_case(1_000_000_000 + int(seed), size=512)
    image, truth = Image.fromarray(case.image), case

if image is not None:
    probs = clf.predict_images([image])[0]
    left, right = st.columns([3, 2])
    left.image(image, caption="Input photograph", width="stretch")
    names = [html.escape(clf.label_set.finding(k).name) for k in clf.findings]  # plotly renders <a>, <b>
    right.plotly_chart(probability_chart(names, probs), width="stretch")
    right.caption("Zero-shot suggestions support, and never replace, the reader's judgement.")
    if truth is not None:
        with right.expander("Synthetic ground truth and report"):
            present = [clf.label_set.finding(k).name for k in clf.findings if truth.labels.get(k)]
            st.markdown("Findings: " + plain(", ".join(present) or "normal"))
            st.markdown(plain(truth.report))

if image is not None:
    with st.expander("Saliency: where does the model look for a finding?"):
        from revision_core.saliency import METHOD_NAMES, METHODS

        c1, c2 = st.columns(2)
        finding = c1.selectbox("Finding", clf.findings, format_func=lambda k: clf.label_set.finding(k).name,
                               index=int(probs.argmax()), key="sal_finding")
        # integrated gradients by default: on the demo model it points at the lesion in 97% of cases
        # (Grad-CAM 38%; results/saliency_check_demo_300_seed0.json) and takes well under a second
        method = c2.selectbox("Method", METHODS, index=METHODS.index("integrated_gradients"), key="sal_method",
                              format_func=METHOD_NAMES.get)
        opacity = st.slider("Overlay opacity", 0.0, 1.0, 0.5, 0.05, key="sal_opacity")
        if st.button("Explain", key="sal_run"):
            from revision_core.saliency import explain
            from revision_core.saliency_render import render_overlay

            with st.spinner(f"Computing {METHOD_NAMES[method]} ..."):
                try:
                    sal = explain(clf.loaded, clf, image, finding, method)
                    st.session_state["sal_result"] = (sal.map, finding, method)
                except ValueError as exc:
                    st.error(plain(exc))
        result = st.session_state.get("sal_result")
        if result is not None and result[0].shape == (image.height, image.width):
            st.columns([3, 2])[0].image(render_overlay(image, result[0], opacity=opacity), width="stretch",
                     caption=f"{METHOD_NAMES[result[2]]} saliency for {plain(clf.label_set.finding(result[1]).name)}: brighter = more "
                             "influence on the score. Saliency maps can mislead; they are not a localisation.")
