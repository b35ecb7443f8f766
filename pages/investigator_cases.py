"""Investigator: the case browser: every case with its reference answer; for one case its photograph, the
AI outputs stored per model version (and which one readers are shown) and every reading's latest answer.
For investigators only: readers never see any of this."""
import pandas as pd
import streamlit as st

from pages._investigator import header
from pages._shared import finding_names, plain

factory, study_id, _ = header("Case browser")
from study.domain import timefmt  # noqa: E402
from study.services import investigator  # noqa: E402

cases = investigator.case_list(factory, study_id)
if not cases:
    st.info("No cases yet: import them on the set-up page.")
    st.stop()
st.dataframe(pd.DataFrame(cases).drop(columns="case_id").fillna(""), hide_index=True, width="stretch",
             column_config={"case": "Case", "eye": "Eye", "reference": "Reference", "readings": "Readings answered",
                            "ai_outputs": "AI outputs stored"})
names = {c["case_id"]: c["case"] for c in cases}
case_id = st.selectbox("Case", list(names), format_func=names.get, key="case_pick")
detail = investigator.case_detail(factory, study_id, case_id)

photo, about = st.columns([3, 2])
with photo:
    if detail.image_path is not None:
        st.image(str(detail.image_path), width="stretch")
    else:
        st.warning(plain(detail.image_problem))
with about:
    st.markdown(f"**Case {plain(detail.case)}** · eye {plain(detail.eye or 'not recorded')}"
                + (f" · patient {plain(detail.patient)}" if detail.patient else "")
                + (f" · split {plain(detail.split)}" if detail.split else ""))
    st.markdown("**Reference**  \n" + ("  \n".join(f"{plain(q)}: **{plain(a)}**" for q, a in detail.reference)
                                       or "none recorded"))
    st.markdown("**AI outputs stored**")
    if not detail.ai_outputs:
        st.caption("None: run the AI precompute.")
    for out in detail.ai_outputs:
        with st.container(border=True):
            shown = " · **shown to readers**" if out["shown_to_readers"] else ""
            st.markdown(f"Model {plain(out['model'] or '?')} · version {plain(out['model_version'])}{shown}  \n"
                        f":gray[{plain(out['label_set'])} · stored {timefmt.minute(out['created_at'])}]")
            names = finding_names(out["label_set"])  # findings in words, not keys
            st.caption(f"AI's call: {plain(names.get(out['ai_call'], out['ai_call']))} "
                       f"({out['ai_call_probability']:.0%})")
            st.dataframe(pd.DataFrame({"finding": [names.get(k, k) for k in out["probabilities"]],
                                       "probability": list(out["probabilities"].values())}),
                         hide_index=True, column_config={"finding": "Finding", "probability": st.column_config
                                                         .NumberColumn("Probability", format="percent")})
            if out["saliency_png"]:
                st.image(out["saliency_png"], caption="Saliency overlay", width=240)
            if out["maps"]:  # as a saliency-arm reader sees them: the retina's strongest attribution, in bands
                for col, (finding, p, png) in zip(st.columns(len(out["maps"])), out["maps"]):
                    col.image(png, width="stretch",
                              caption=f"Where the model looked for {plain(names.get(finding, finding))} ({p:.0%})")

st.subheader("Readings of this case")
if detail.readings:
    st.dataframe(pd.DataFrame([{**r, "submitted_at": timefmt.minute(r["submitted_at"])} for r in detail.readings]),
                 hide_index=True, width="stretch", column_config={
                     "reader": "Reader", "level": "Experience level", "condition": "Condition", "session": "Session",
                     "step": "Step", "version": "Answer version", "answer": "Latest answer", "correct": "Correct",
                     "submitted_at": "Answered"})
else:
    st.caption("Nobody has answered this case yet.")
