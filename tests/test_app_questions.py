"""The study's own questions on the reading page (AppTest): studies/dr_grading.toml's ordinal ICDR grade,
yes/no oedema and free-text comment, and "Image ungradable", end to end through submit, export and the
analysis table. Form errors name the question as the reader sees it, not its internal id."""
from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from streamlit.testing.v1 import AppTest

from study.storage import db
from study.domain.cases import import_manifest
from study.domain.config import parse_text
from study.domain.design import build_design
from study.domain.answers import answers_table
from study.jobs.precompute import store_ai_output
from study.domain.readers import add_reader
from study.domain.studies import create_study
from testsupport.app import APP, CARD, PROBS, consent, signed_in, submit_button
from testsupport.studies import committed

DR_TOML = Path(__file__).resolve().parents[1] / "studies" / "dr_grading.toml"


@pytest.fixture
def dr_study(tmp_path, monkeypatch):
    url = f"sqlite:///{tmp_path / 'study.sqlite'}"
    db.upgrade(url)
    factory = db.session_factory(db.make_engine(url))
    rng = np.random.default_rng(3)
    with (tmp_path / "manifest.csv").open("w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["case_id", "image_path", "label", "eye", "dr_grade", "dme"])
        for i, (grade, dme) in enumerate([("2", "yes"), ("0", "no"), ("3", "yes"), ("1", "no")]):
            Image.fromarray(rng.integers(0, 255, (60, 80, 3), dtype=np.uint8)).save(tmp_path / f"c{i}.png")
            w.writerow([f"DR{i}", f"c{i}.png", "diabetic_retinopathy" if grade != "0" else "normal", "OD", grade, dme])
    text = DR_TOML.read_text()
    with factory() as s:
        study = committed(create_study, s, parse_text(text), text)
        for case in committed(import_manifest, s, study.id, tmp_path / "manifest.csv", store_root=tmp_path / "store"):
            committed(store_ai_output, s, case.id, model_card=CARD, probabilities=PROBS, label_set="revision_findings")
        _, code = committed(add_reader, s, study.id, display_name="Grader", years_experience=8)
        committed(build_design, s, study.id)
        study.model_version = CARD["version"]
        s.commit()
        sid = study.id
    monkeypatch.setenv("REVISION_DB_URL", url)
    monkeypatch.setenv("REVISION_STORE_ROOT", str(tmp_path / "store"))
    return factory, sid, code


def _submit(at: AppTest) -> AppTest:
    submit_button(at).click()
    return at.run()


def test_ordinal_grade_and_ungradable_through_submit_export_and_analysis(dr_study):
    factory, sid, code = dr_study
    at = consent(signed_in(code))
    assert not at.exception, at.exception
    assert at.subheader[0].value.startswith("Case 1 of 4, session 1 of 2")
    grade = next(r for r in at.radio if r.label == "ICDR diabetic retinopathy grade")
    assert grade.value is None and grade.options[2] == "Moderate NPDR"
    # an empty form is refused, in the reader's words
    at = _submit(at)
    errors = " ".join(e.value for e in at.error)
    assert "answer the 2 required questions marked in red" in errors and "dr_grade" not in errors
    marks = " ".join(h.proto.body for h in at.get("html") if "border-left" in h.proto.body)
    assert "dr_grade" in marks  # the unanswered grade is the question marked on the form
    # case 1: grade 2, oedema yes, a comment
    next(r for r in at.radio if r.label == "ICDR diabetic retinopathy grade").set_value("2")
    next(r for r in at.radio if r.label.startswith("Diabetic macular oedema")).set_value("Yes")
    at.text_area[0].input("hard exudates temporal to the fovea")
    at = _submit(at)
    assert not at.exception and at.subheader[0].value.startswith("Case 2 of 4, session 1 of 2")
    # case 2: ungradable, nothing else
    ungradable = next(c for c in at.checkbox if c.label == "Image ungradable")
    ungradable.check()
    at = _submit(at)
    assert not at.exception and at.subheader[0].value.startswith("Case 3 of 4, session 1 of 2")

    with factory() as s:
        table = answers_table(s, sid)
    first, second = table.sort_values("submitted_at").iloc[0], table.sort_values("submitted_at").iloc[1]
    assert first.q_dr_grade == "2" and first.answer == "2" and first.q_dme == "true"
    assert first.q_comment == "hard exudates temporal to the fovea" and not first.ungradable
    assert first.answer_grade == 2 and first.truth_grade == int(first.ref_dr_grade)
    assert bool(second.ungradable) and pd_isna(second.answer) and pd_isna(second.correct)


def pd_isna(value) -> bool:
    import pandas as pd

    return bool(pd.isna(value))
