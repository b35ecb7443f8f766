"""Investigator: study set-up from TOML, case import with its validation report, readers and their codes
(shown once), the design, and the AI precompute with a progress bar."""
from datetime import datetime

import pandas as pd
import streamlit as st

from pages._investigator import header
from pages._shared import plain

factory, study_id, actor = header("Study set-up", require_study=False)
from study.services import investigator  # noqa: E402
from study.domain.timefmt import minute  # noqa: E402

with st.expander("1. New study from a TOML file", expanded=study_id is None):
    upload = st.file_uploader("Study configuration (.toml)", type=["toml"], key="toml_upload")
    if upload is not None and st.button("Create the study", key="create_study"):
        new_id, problems = investigator.create_study_from_toml(factory, upload.getvalue().decode("utf-8", "replace"), actor)
        if problems:
            st.error(f"The configuration has {len(problems)} problem(s); nothing was created.")
            st.dataframe(pd.DataFrame({"problem": problems}), hide_index=True)
        else:
            st.session_state["study_id_pending"] = new_id
            st.success(f"Study #{new_id} created.")
            st.rerun()
if study_id is None:
    st.info("No study yet: create one from a TOML file (see studies/demo.toml).")
    st.stop()

summary = investigator.setup_summary(factory, study_id)
if st.session_state.get("setup_flash"):
    st.success(st.session_state.pop("setup_flash"))
cols = st.columns(5)
for col, (label, key) in zip(cols, [("Cases", "cases"), ("AI outputs", "ai_outputs"), ("Readers", "readers"),
                                    ("Assignments", "assignments"), ("Answers", "answers")]):
    value = summary[key]
    col.metric(label, len(value) if isinstance(value, list) else value)
locked = bool(summary["locked_at"])
since = minute(datetime.fromisoformat(summary["locked_at"])) if locked else ""
waiting = [r["pseudonym"] for r in summary["readers"] if not r["total"]]
st.caption(f"Design {summary['design']}, seed {summary['seed']}; "
           + (f"locked since {since} (the first answer)" if locked else "not locked (no answers yet)"))

with st.expander("2. Import cases (a ZIP with manifest.csv and the images)"):
    st.caption("Columns: case_id, image_path (relative to the manifest's folder), label (+ findings, eye, "
               "patient_pseudonym, split). All or nothing: any problem rejects the whole file and the problems "
               "are listed.")
    if locked:
        st.info(f"The study is locked since {since}: every reader's assignments were built from its cases, so no "
                "case can be added. Import new cases into a new study.")
    cases = None if locked else st.file_uploader("Manifest", type=["csv", "zip"], key="manifest_upload")
    if cases is not None and st.button("Validate and import", key="import_cases"):
        with st.spinner("Checking every row and image ..."):
            n, problems = investigator.import_cases_upload(factory, study_id, cases.name, cases.getvalue(), actor)
        if problems:
            st.error("Rejected, nothing imported: fix the problems listed and upload again.")
            st.dataframe(pd.DataFrame({"problem": problems}), hide_index=True, width="stretch")
        else:  # drawn again from the top, so that the counters above say what was just imported
            st.session_state["setup_flash"] = f"{n} cases imported."
            st.rerun()

with st.expander("3. Readers and access codes"):
    st.caption("CSV columns: display_name, years_experience (+ specialty, site). Codes are shown once, here, "
               "and can be downloaded once; they are stored only as argon2 hashes.")
    if locked:
        st.caption("The design is locked: a reader added now gets a full set of readings at once, in the reader "
                   "group with the fewest readers (the others' assignments do not change).")
    readers = st.file_uploader("Readers CSV", type=["csv"], key="readers_upload")
    if readers is not None and st.button("Add readers", key="add_readers"):
        rows, problems = investigator.add_readers_csv(factory, study_id, readers.getvalue().decode("utf-8-sig"), actor)
        if problems:
            st.error("Nothing added: " + plain("; ".join(problems)))
        else:
            st.session_state["new_codes"] = investigator.ReaderCodes(rows)
    codes = st.session_state.get("new_codes")
    if codes is not None and codes.rows:
        st.warning("Copy or download these codes now: they will not be shown again.", icon=":material/key:")
        st.dataframe(pd.DataFrame(codes.rows), hide_index=True)

        def _forget():
            st.session_state["new_codes"] = investigator.ReaderCodes([], downloaded=True)

        st.download_button("Download the codes as CSV (once)", investigator.codes_csv(codes.rows), "reader_codes.csv",
                           "text/csv", on_click=_forget, key="codes_download")
        if st.button("I have saved the codes: hide them", key="codes_hide"):
            _forget()
            st.rerun()
    if summary["readers"]:
        st.dataframe(pd.DataFrame(summary["readers"]).fillna(""), hide_index=True, column_config={
            "pseudonym": "Reader", "level": "Experience level", "site": "Site", "revoked": "Code revoked",
            "done": "Done", "total": "Of"})

with st.expander("4. Design and AI precompute"):
    existing = summary["assignments"]
    if locked:
        st.caption(f"The design is locked since {since}: readers have started answering, so it is never rebuilt.")
        if waiting and st.button(f"Give the {len(waiting)} reader(s) without assignments their readings",
                                 key="append_readers"):
            try:
                st.success(f"{investigator.build_design(factory, study_id, actor)} assignments appended.")
            except (ValueError, investigator.DesignLocked) as exc:
                st.error(plain(str(exc)))
    else:
        if existing and summary["design_check"]:
            st.warning(f"The stored design differs from the seed's plan in {summary['design_check']} place(s) "
                       "(cases or readers added since it was built): rebuild it before reading starts.")
        confirmed = not existing or st.checkbox(
            f"Replace the {existing} existing assignments (new case orders; nobody has answered yet)",
            key="rebuild_ok")
        if st.button("Build the design" if not existing else "Rebuild the design", key="build_design",
                     disabled=not confirmed):
            try:
                st.success(f"{investigator.build_design(factory, study_id, actor)} assignments stored.")
            except (ValueError, investigator.DesignLocked) as exc:
                st.error(plain(str(exc)))
    st.caption("Precompute stores the model's suggestion for every case (and, for an ai_saliency arm, saliency maps "
               "of its most probable findings, computed on every CPU core); it resumes where it stopped.")
    if st.button("Run the AI precompute", key="precompute"):
        bar = st.progress(0.0, text="Loading the model ...")

        def _progress(done: int, todo: int) -> None:
            bar.progress(done / todo if todo else 1.0, text=f"{done} of {todo} cases")

        try:
            report, total = investigator.run_precompute(factory, study_id, actor=actor, on_progress=_progress)
        except Exception as exc:  # a missing model or a locked design: say so, do not crash the page
            st.error(f"Precompute failed: {plain(exc)}")
        else:
            bar.progress(1.0, text="done")
            st.success(f"Model {report.model_version}: {report.stored} stored, {report.already_done} already done.")
            if report.failed or report.saliency_failed:
                st.dataframe(pd.DataFrame([{"case": k, "problem": v} for k, v in
                                           {**report.failed, **report.saliency_failed}.items()]), hide_index=True)
