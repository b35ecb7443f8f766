"""Demo: try the model on a gallery photograph (a synthetic one of each finding; real ones where a folder is
configured), any synthetic case or an upload, and see where it looks (saliency).

Why it is built this way: the model, the gallery and each image's suggestions are loaded once per process
(st.cache_resource), so a warm run only draws; an overlay is stored with the SHA-256 of the image it was
computed for and drawn only over that image, so no sequence of widget actions shows a stale one.
"""
import html
import time
from pathlib import Path

import streamlit as st
from PIL import Image

from pages._shared import (
    classifier_or_stop,
    load_upload_reduced,
    model_banner,
    plain,
    probability_chart,
    real_samples_folder,
    require_public_demo,
)
from pages._uploads import drop_upload, playground_upload_mb
from revision_core import samples as gallery_mod
from revision_core.imageio import ImageLoadError, image_sha256
from revision_core.saliency import METHOD_NAMES, METHODS, describe_params, explain
from revision_core.saliency_render import render_overlay

require_public_demo()  # study mode: nothing of the model while a study has unaided readings left (app.py)
st.title("Model playground")
clf = classifier_or_stop()
card = clf.loaded.card
model_banner(clf, f" · {card.architecture} · {card.input_size}px · {card.device}")
names = {k: clf.label_set.finding(k).name for k in clf.findings}
SOURCES = ["Sample gallery", "Synthetic case by number", "Upload"]
SAL_RESULT, SAL_SHOWN = "sal_result", "sal_shown"  # session keys: the last overlay (with its image's hash); the one drawn


@st.cache_resource(show_spinner="Preparing the sample gallery ...")
def _gallery(real_folder: str | None):
    return gallery_mod.synthetic_samples() + gallery_mod.real_samples(Path(real_folder) if real_folder else None)


@st.cache_resource(show_spinner="Reading the real photographs ...")
def _gallery_probabilities(version: str, real_folder: str | None):
    """Every gallery photograph's suggestions: for the measured line on the real ones (once per process)."""
    return clf.predict_images([s.image for s in _gallery(real_folder)])


@st.cache_resource(show_spinner=False)
def _thumbnails(real_folder: str | None):
    return [s.image.resize((160, round(160 * s.image.height / s.image.width))) for s in _gallery(real_folder)]


@st.cache_resource(show_spinner=False, max_entries=32)
def _synthetic(seed: int):
    from revision_core.synthetic import generate_case

    case = generate_case(1_000_000_000 + seed, size=512)
    image = Image.fromarray(case.image)
    return image, image_sha256(image), case


@st.cache_resource(show_spinner=False, max_entries=64)
def _probabilities(version: str, sha: str, _image):
    return clf.predict_images([_image])[0]


folder = real_samples_folder()
real_folder = str(folder) if folder else None
source = st.radio("Photograph", SOURCES, horizontal=True, key="pg_source")
image = sha = probs = None
truth_lines, real = [], False
if source == "Upload":
    turn = st.session_state.setdefault("pg_upload_turn", 0)
    upload = st.file_uploader("Colour fundus photograph (JPEG, PNG, TIFF or DICOM)", key=f"pg_upload_{turn}",
                              max_upload_size=playground_upload_mb())
    if upload is not None:
        try:
            # bounded: header pixel check, a share of the server's decode budget, then reduced decoding to
            # 2048 px at most (the model reads far less)
            with st.spinner("Decoding the photograph ..."):
                st.session_state["pg_uploaded"] = (upload.name, load_upload_reduced(upload.getvalue(), name=upload.name))
            drop_upload(upload)  # its bytes go now, not when the visitor leaves
            st.session_state["pg_upload_turn"] = turn + 1  # a fresh uploader, that points at nothing dropped
            st.rerun()
        except ImageLoadError as exc:
            st.error(plain(exc))  # the message names the uploaded file: plain text
    if "pg_uploaded" in st.session_state:
        uploaded_name, image = st.session_state["pg_uploaded"]
        sha, real = image_sha256(image), True
        st.caption(f"Uploaded: {plain(uploaded_name)} (kept at {image.size[0]} x {image.size[1]} px; "
                   "upload another to replace it)")
elif source == "Synthetic case by number":
    seed = st.number_input("Sample number", min_value=0, max_value=10_000, value=7, step=1, key="pg_seed")
    image, sha, case = _synthetic(int(seed))
    present = [names[k] for k in clf.findings if case.labels.get(k)]
    truth_lines = ["Findings: " + plain(", ".join(present) or "normal"), plain(case.report)]
else:
    items = _gallery(real_folder)
    index = st.selectbox("Sample", range(len(items)), key="pg_sample",
                         format_func=lambda i: f"{'Real' if items[i].kind == 'real' else 'Synthetic'}: {items[i].title}")
    sample = items[index]
    image, sha, real = sample.image, sample.sha256, sample.kind == "real"
    if sample.kind == "synthetic":
        present = [names.get(k, k) for k in sample.findings]
        truth_lines = ["Findings: " + plain(", ".join(present) or "normal"), plain(sample.report)]
    else:
        labelled = "not labelled" if sample.findings is None else (
            ", ".join(names.get(k, k) for k in sample.findings) or "normal")
        truth_lines = [f"Reference: {plain(labelled)}" + (f" · {plain(sample.credit)}" if sample.credit else "")]
    with st.expander(f"Sample gallery ({len(items)} photographs)"):
        thumbs = _thumbnails(real_folder)
        for kind, heading in (("synthetic", "Synthetic"), ("real", "Real")):
            row = [i for i, s in enumerate(items) if s.kind == kind]
            if row:
                st.caption(heading + (f" · {plain(items[row[0]].credit)}" if kind == "real" and items[row[0]].credit else ""))
            for start in range(0, len(row), 6):  # rows of six, aligned
                for col, i in zip(st.columns(6), row[start:start + 6]):
                    col.image(thumbs[i], caption=items[i].caption, width="stretch")
        if real_folder is None:
            st.caption("Real photographs appear here where a folder of them is configured "
                       "(REVISION_REAL_SAMPLES, or `[demo] real_samples` in .streamlit/secrets.toml).")

if image is not None:
    if probs is None:
        probs = _probabilities(card.version, sha, image)
    left, right = st.columns([3, 2])
    left.image(image, caption="Input photograph", width="stretch")
    chart_names = [html.escape(names[k]) for k in clf.findings]  # plotly renders <a>, <b>
    right.plotly_chart(probability_chart(chart_names, probs), width="stretch", key="pg_chart")
    right.caption("Zero-shot suggestions of a demo model: they support, and never replace, the reader's judgement.")
    if real:
        right.info(gallery_mod.REAL_NOTE, icon=":material/info:")
        if source == "Sample gallery":
            items = _gallery(real_folder)
            for line in gallery_mod.real_summary(items, _gallery_probabilities(card.version, real_folder),
                                                 clf.findings, names):
                right.caption(plain(line))
    if truth_lines:
        with right.expander("Reference findings" + ("" if real else " and synthetic report")):
            for line in truth_lines:
                st.markdown(line)

st.session_state[SAL_SHOWN] = None
if image is not None:
    with st.expander("Saliency: where does the model look for a finding?"):
        c1, c2 = st.columns(2)
        finding = c1.selectbox("Finding", clf.findings, format_func=names.get, index=int(probs.argmax()),
                               key="sal_finding")
        # integrated gradients by default: on the demo model it points at the lesion in 82% of cases
        # (Grad-CAM 26%; results/saliency_check_demo_50_seed0.json) and takes well under a second
        method = c2.selectbox("Method", METHODS, index=METHODS.index("integrated_gradients"), key="sal_method",
                              format_func=METHOD_NAMES.get)
        opacity = st.slider("Overlay opacity", 0.0, 1.0, 0.5, 0.05, key="sal_opacity")
        if st.button("Explain", key="sal_run"):
            settings = gallery_mod.saliency_settings(method)
            bar = st.progress(0.0, text=f"Computing {METHOD_NAMES[method]} ...")
            started = time.perf_counter()
            try:
                sal = explain(clf.loaded, clf, image, finding, method,
                              progress=lambda f: bar.progress(f, text=f"Computing {METHOD_NAMES[method]}: {f:.0%}"),
                              **settings)
                st.session_state[SAL_RESULT] = {"image": sha, "map": sal.map, "finding": finding, "method": method,
                                                "settings": describe_params(method, sal.params),
                                                "seconds": time.perf_counter() - started}
            except ValueError as exc:
                st.error(plain(exc))
            bar.empty()
        result = st.session_state.get(SAL_RESULT)
        if result is not None and result["image"] == sha:  # an overlay belongs to the image it was computed for
            st.columns([3, 2])[0].image(
                render_overlay(image, result["map"], opacity=opacity), width="stretch",
                caption=f"{METHOD_NAMES[result['method']]} saliency for {plain(names[result['finding']])} "
                        f"({result['settings'] + '; ' if result['settings'] else ''}{result['seconds']:.1f} s): "
                        "brighter = more influence on the score. Saliency maps can mislead; they are not a "
                        "localisation.")
            st.session_state[SAL_SHOWN] = result["image"]
