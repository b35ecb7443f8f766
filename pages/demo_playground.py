"""Demo: try the model on a gallery photograph (a synthetic one of each finding; real ones where a folder is
configured), any synthetic case or an upload, and see where it looks (saliency).

Why it is built this way: the model, the gallery and each image's suggestions are loaded once per process
(st.cache_resource), so a warm run only draws; the gallery's caches are keyed by the demo settings' [gallery]
table as well as the real-photograph folder, so a process never shows a gallery built from other settings than
the ones in force; the photograph is in the reading station's viewer, and a map
is drawn there exactly as a saliency-arm reader sees it (named finding, bands, legend, outline mode, the
findings explained so far to switch among); a map is stored with the SHA-256 of the image it was computed for
and drawn only over that image, so no sequence of widget actions shows a stale one.
"""
import json
import time
from pathlib import Path

import streamlit as st
from PIL import Image

from components.case_viewer import case_viewer, image_data_url, png_data_url
from pages._shared import (
    classifier_or_stop,
    load_upload_reduced,
    model_banner,
    plain,
    real_samples_folder,
    require_public_demo,
    suggestion_bars,
)
from pages._uploads import drop_upload, playground_upload_mb
from revision_core import samples as gallery_mod
from revision_core.imageio import ImageLoadError, image_sha256
from revision_core.saliency import METHOD_NAMES, METHODS, describe_params, explain
from revision_core.saliency_render import display_png, display_size

require_public_demo()  # study mode: nothing of the model while a study has unaided readings left (app.py)
st.title("Model playground")
clf = classifier_or_stop()
card = clf.loaded.card
model_banner(clf, f" · {card.architecture} · {card.input_size}px · {card.device}")
names = {k: clf.label_set.finding(k).name for k in clf.findings}
SOURCES = ["Sample gallery", "Synthetic case by number", "Upload"]
SAL_RESULT, SAL_SHOWN = "sal_result", "sal_shown"  # session keys: the last maps (with their image's hash); the one drawn


@st.cache_resource(show_spinner="Preparing the sample gallery ...")
def _gallery(real_folder: str | None, gallery_settings: str):
    """The gallery that ``gallery_settings`` (the demo settings' [gallery] table as JSON, part of the cache key)
    describes, with the real photographs in ``real_folder``."""
    settings = {"gallery": json.loads(gallery_settings)}
    return (gallery_mod.synthetic_samples(settings)
            + gallery_mod.real_samples(Path(real_folder) if real_folder else None, settings))


@st.cache_resource(show_spinner="Reading the real photographs ...")
def _gallery_probabilities(version: str, real_folder: str | None, gallery_settings: str):
    """Every gallery photograph's suggestions: for the measured line on the real ones (once per process)."""
    return clf.predict_images([s.image for s in _gallery(real_folder, gallery_settings)])


@st.cache_resource(show_spinner=False)
def _thumbnails(real_folder: str | None, gallery_settings: str):
    return [s.image.resize((160, round(160 * s.image.height / s.image.width)))
            for s in _gallery(real_folder, gallery_settings)]


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
# the photograph on the left from the top of the page, everything that chooses or explains it on the right
gallery_settings = json.dumps(gallery_mod.demo_settings().get("gallery", {}), sort_keys=True)  # read on every run
left, right = st.columns([3, 2], gap="small")
source = right.radio("Photograph", SOURCES, horizontal=True, key="pg_source")
image = sha = probs = items = None
truth_lines, real = [], False
if source == "Upload":
    turn = st.session_state.setdefault("pg_upload_turn", 0)
    upload = right.file_uploader("Colour fundus photograph (JPEG, PNG, TIFF or DICOM)", key=f"pg_upload_{turn}",
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
            right.error(plain(exc))  # the message names the uploaded file: plain text
    if "pg_uploaded" in st.session_state:
        uploaded_name, image = st.session_state["pg_uploaded"]
        sha, real = image_sha256(image), True
        right.caption(f"Uploaded: {plain(uploaded_name)} (kept at {image.size[0]} x {image.size[1]} px; "
                      "upload another to replace it)")
elif source == "Synthetic case by number":
    seed = right.number_input("Sample number", min_value=0, max_value=10_000, value=7, step=1, key="pg_seed")
    image, sha, case = _synthetic(int(seed))
    present = [names[k] for k in clf.findings if case.labels.get(k)]
    truth_lines = ["Findings: " + plain(", ".join(present) or "normal"), plain(case.report)]
else:
    items = _gallery(real_folder, gallery_settings)
    index = right.selectbox("Sample", range(len(items)), key="pg_sample",
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
if items is not None:  # below both columns: the whole gallery at a glance
    with st.expander(f"Sample gallery ({len(items)} photographs)"):
        thumbs = _thumbnails(real_folder, gallery_settings)
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

if image is None:
    st.session_state[SAL_SHOWN] = None
    st.stop()
if probs is None:
    probs = _probabilities(card.version, sha, image)
prob = dict(zip(clf.findings, map(float, probs)))
with right:
    suggestion_bars(names, prob)
    st.caption("Zero-shot suggestions of a demo model: they support, and never replace, the reader's judgement.")
    if real:
        st.info(gallery_mod.REAL_NOTE, icon=":material/info:")
        if source == "Sample gallery":
            items = _gallery(real_folder, gallery_settings)
            probabilities = _gallery_probabilities(card.version, real_folder, gallery_settings)
            for line in gallery_mod.real_summary(items, probabilities, clf.findings, names):
                st.caption(plain(line))
    if truth_lines:
        with st.expander("Reference findings" + ("" if real else " and synthetic report")):
            for line in truth_lines:
                st.markdown(line)
    with st.expander("Saliency: where does the model look for a finding?", expanded=True):
        c1, c2 = st.columns(2)
        finding = c1.selectbox("Finding", clf.findings, format_func=names.get, index=int(probs.argmax()),
                               key="sal_finding")
        # integrated gradients by default, as a study's precompute: on the demo model it points at the lesion in
        # 82% of synthetic cases (Grad-CAM 26%; results/saliency_check_demo_50_seed0.json)
        method = c2.selectbox("Method", METHODS, index=METHODS.index("integrated_gradients"), key="sal_method",
                              format_func=METHOD_NAMES.get)
        if st.button("Explain", key="sal_run"):
            settings = gallery_mod.saliency_settings(method)
            bar = st.progress(0.0, text=f"Computing {METHOD_NAMES[method]} ...")
            started = time.perf_counter()
            try:
                sal = explain(clf.loaded, clf, image, finding, method, size=display_size(*image.size),
                              progress=lambda f: bar.progress(f, text=f"Computing {METHOD_NAMES[method]}: {f:.0%}"),
                              **settings)
                png, _w, _h = display_png(image, sal.map, seen=sal.seen)
                kept = st.session_state.get(SAL_RESULT) or {}
                maps = kept.get("maps", {}) if (kept.get("image"), kept.get("method")) == (sha, method) else {}
                maps[finding] = png  # the maps of this photograph by this method: the viewer switches among them
                st.session_state[SAL_RESULT] = {"image": sha, "map": sal.map, "finding": finding, "method": method,
                                                "settings": describe_params(method, sal.params), "maps": maps,
                                                "seconds": time.perf_counter() - started}
            except ValueError as exc:
                st.error(plain(exc))
            bar.empty()

result = st.session_state.get(SAL_RESULT)
shown = result if result is not None and result["image"] == sha else None  # a map belongs to its photograph
st.session_state[SAL_SHOWN] = shown["image"] if shown else None
with left, st.container(key="viewer_column"):
    order = sorted(shown["maps"], key=lambda f: -prob[f]) if shown else []
    maps = [{"finding": f, "name": names[f], "probability": prob[f], "url": png_data_url(shown["maps"][f])}
            for f in order]
    case_viewer(key=f"pg_viewer_{sha[:16]}_{shown['method'] + '_' + '_'.join(order) if shown else 'plain'}",
                screen_url=image_data_url(image), full_url=image_data_url(image), width=image.width,
                height=image.height, maps=maps, map_method=METHOD_NAMES[shown["method"]].lower() if shown else None,
                show_map=order.index(shown["finding"]) if shown else None)
    if shown:
        st.caption(f"{METHOD_NAMES[shown['method']]} saliency for {plain(names[shown['finding']])} "
                   f"({shown['settings'] + '; ' if shown['settings'] else ''}{shown['seconds']:.1f} s): drawn as the "
                   "reading station draws it: the bands of the retina's strongest attribution. Saliency maps can "
                   "mislead; they are not a localisation of lesions.")
    else:
        st.caption("Input photograph: zoom with the wheel or a pinch, drag to pan.")
