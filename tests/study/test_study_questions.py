"""The study's own questions: [[question]] tables parse and validate, answers of every kind are checked,
"Image ungradable" works, and a DR-grading study runs end to end (import, design, simulate, export,
analyze) to a quadratic-weighted kappa."""

from __future__ import annotations

import json
import random
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from study.domain import cases, studies
from study.jobs import precompute
from study.domain.config import AnswerInvalid, StudyConfig, StudyConfigError, load_config, parse_text, validate_answer
from study.outputs.export import answers_table, export, imrmc_text
from study.outputs.report import analyze_reads, render_html
from study.jobs.simulate_readers import simulate
from testsupport.studies import CARD, LABELS, study_toml, committed

ROOT = Path(__file__).resolve().parents[2]
HEAD = '[study]\nname = "Q"\nmodel = "demo"\nseed = 3\n\n[design]\ntype = "crossover"\n\n'


def questions(body: str, study_extra: str = "") -> StudyConfig:
    return parse_text(HEAD.replace('seed = 3\n', f"seed = 3\n{study_extra}") + body)


GRADE = '''[[question]]
id = "dr_grade"
text = "DR grade"
kind = "ordinal"
options = [["0", "none"], ["1", "mild"], ["2", "moderate"]]
truth = "dr_grade"
'''


def test_dr_grading_example_parses():
    cfg, _ = load_config(ROOT / "studies" / "dr_grading.toml")
    assert cfg.custom_questions and cfg.allow_ungradable and cfg.design.type == "crossover"
    assert [q.id for q in cfg.questions] == ["dr_grade", "dme", "comment"]
    assert cfg.primary_question.id == "dr_grade" and cfg.primary_question.kind == "ordinal"
    assert [k for k, _ in cfg.primary_question.options] == ["0", "1", "2", "3", "4"]
    assert cfg.truth_columns == ("dr_grade", "dme")
    assert cfg.question("comment").required is False and cfg.question("dme").required is True
    assert StudyConfig.from_dict(json.loads(json.dumps(cfg.to_dict()))) == cfg


def test_legacy_protocol_unchanged_and_old_stored_configs_load():
    cfg = parse_text(study_toml())
    assert not cfg.custom_questions and cfg.truth_columns == ()
    assert cfg.primary_question.id == "primary_diagnosis" and cfg.primary_question.truth == "label"
    assert cfg.question("confidence").kind == "integer"
    old = cfg.to_dict()
    for key in ("allow_ungradable", "saliency", "saliency_steps", "custom_questions"):
        old.pop(key)
    for q in old["questions"]:
        for key in ("step", "unit", "max_length", "truth", "primary"):
            q.pop(key)
    back = StudyConfig.from_dict(old)
    assert back.primary_question.id == "primary_diagnosis" and back.primary_question.truth == "label"
    assert back.saliency == "gradcam"  # what precompute used for studies stored before [ai] existed
    assert cfg.saliency == "integrated_gradients"
    assert back.questions[0].primary is False and back.allow_ungradable is False


def test_primary_defaults_to_first_choice_and_options_from_label_set():
    cfg = questions('[[question]]\nid = "note"\ntext = "Note"\nkind = "text"\n'
                    '[[question]]\nid = "dx"\ntext = "Diagnosis"\nkind = "single_choice"\noptions = "label_set"\n'
                    'truth = "label"\n')
    assert cfg.primary_question.id == "dx"
    keys = [k for k, _ in cfg.primary_question.options]
    assert keys[-1] == "normal" and "glaucoma" in keys
    assert cfg.truth_columns == ()  # label is a built-in manifest column


def test_bad_question_tables_listed_all_at_once():
    bad = HEAD + '''[questions]
confidence = true

[[question]]
id = "dr_grade"
text = "Grade"
kind = "grade"

[[question]]
id = "dme"
text = "DME"
kind = "boolean"
truth = "dme"
primary = true
colour = "red"

[[question]]
id = "dme"
text = "Again"
kind = "single_choice"
options = [["a", "A"], ["a", "B"]]
primary = true

[[question]]
id = "size"
text = "Size"
kind = "number"
minimum = 10
maximum = 1
step = 0

[[question]]
id = "c"
text = "Comment"
kind = "text"
truth = "x"

[[question]]
id = "opts"
text = "Options"
kind = "multi_choice"
options = ["a", "b"]
'''
    with pytest.raises(StudyConfigError) as err:
        parse_text(bad, "bad.toml")
    text = str(err.value)
    for needle in ("[[question]] #1 (dr_grade) kind: must be one of", "got 'grade'",
                   "[questions] and [[question]]", "#2 (dme): unknown key(s) ['colour']",
                   "duplicate question id(s) ['dme']", "#3 (dme) options: duplicate option key(s) ['a']",
                   "only one question may be primary", "#4 (size) minimum/maximum", "#4 (size) step: must be > 0",
                   "#5 (c) truth", "#6 (opts) options: must be a non-empty list of [key, label] pairs",
                   "#3 (dme) truth: the primary question needs"):
        assert needle in text, needle
    assert len(err.value.problems) >= 11


def test_primary_must_be_scorable():
    with pytest.raises(StudyConfigError, match="primary question must be one of"):
        questions('[[question]]\nid = "n"\ntext = "N"\nkind = "number"\nprimary = true\n')
    with pytest.raises(StudyConfigError, match="needs 'truth'"):
        questions('[[question]]\nid = "b"\ntext = "B"\nkind = "boolean"\n')
    with pytest.raises(StudyConfigError, match=r"\[ai\] saliency"):
        parse_text(study_toml() + '[ai]\nsaliency = "magic"\n')
    assert parse_text(study_toml() + '[ai]\nsaliency = "gradcam"\nsaliency_steps = 4\n').saliency == "gradcam"


ALL_KINDS = GRADE + '''
[[question]]
id = "dme"
text = "Macular oedema?"
kind = "boolean"
truth = "dme"

[[question]]
id = "lesions"
text = "Lesions seen"
kind = "multi_choice"
options = [["ma", "Microaneurysms"], ["he", "Haemorrhages"], ["ex", "Exudates"]]

[[question]]
id = "cdr"
text = "Cup-to-disc ratio"
kind = "number"
minimum = 0.1
maximum = 0.9
step = 0.05
unit = "ratio"

[[question]]
id = "note"
text = "Comment"
kind = "text"
max_length = 10
'''


def test_validate_every_kind():
    cfg = questions(ALL_KINDS, "allow_ungradable = true\n")
    qs = cfg.questions
    ok = validate_answer(qs, {"dr_grade": "2", "dme": False, "lesions": ["ex", "ma"], "cdr": 0.35,
                              "note": "  fine\tok \n"}, allow_ungradable=True)
    assert ok == {"dr_grade": "2", "dme": False, "lesions": ["ma", "ex"], "cdr": 0.35, "note": "fine\tok"}
    assert "note" not in validate_answer(qs, {"dr_grade": "0", "dme": True, "lesions": ["he"], "cdr": 0.9,
                                              "note": "   "})
    with pytest.raises(AnswerInvalid) as err:
        validate_answer(qs, {"dr_grade": 2, "dme": "no", "lesions": [], "cdr": 0.37, "note": "x\x07"})
    problems = err.value.problems
    assert any(p.startswith("DR grade: must be one of 0, 1, 2") for p in problems)
    assert any(p.startswith("Macular oedema?: must be true or false") for p in problems)
    assert "Lesions seen: an answer is required" in problems
    assert any(p.startswith("Cup-to-disc ratio: must be a multiple of 0.05 from 0.1") for p in problems)
    assert any(p.startswith("Comment: contains a control character (U+0007") for p in problems)
    assert len(problems) == 5
    with pytest.raises(AnswerInvalid, match="between 0.1 and 0.9"):
        validate_answer(qs, {"dr_grade": "1", "dme": True, "lesions": ["ma"], "cdr": 0.95})
    with pytest.raises(AnswerInvalid, match="at most 10 characters"):
        validate_answer(qs, {"dr_grade": "1", "dme": True, "lesions": ["ma"], "cdr": 0.5, "note": "x" * 11})
    assert validate_answer(qs, {"dr_grade": "1", "dme": True, "lesions": ["ma"], "cdr": 0.1 + 3 * 0.05})["cdr"] \
        == pytest.approx(0.25)


def test_error_messages_name_the_question_text_in_the_legacy_protocol_too():
    qs = parse_text(study_toml()).questions
    with pytest.raises(AnswerInvalid) as err:
        validate_answer(qs, {"referral": True})
    assert "Primary diagnosis: an answer is required" in err.value.problems
    assert any(p.startswith("Confidence in the primary diagnosis (0-100): an answer is required")
               for p in err.value.problems)
    assert not any(p.startswith("primary_diagnosis") for p in err.value.problems)


def test_ungradable_skips_required_questions_only_where_allowed():
    cfg = questions(ALL_KINDS, "allow_ungradable = true\n")
    assert validate_answer(cfg.questions, {"ungradable": True, "note": "blurred"}, allow_ungradable=True) == \
        {"ungradable": True, "note": "blurred"}
    gradable = validate_answer(cfg.questions, {"ungradable": False, "dr_grade": "1", "dme": True, "lesions": ["ma"],
                                               "cdr": 0.5}, allow_ungradable=True)
    assert "ungradable" not in gradable
    with pytest.raises(AnswerInvalid, match="takes no answer"):
        validate_answer(cfg.questions, {"ungradable": True, "dr_grade": "1"}, allow_ungradable=True)
    with pytest.raises(AnswerInvalid, match="does not offer"):
        validate_answer(cfg.questions, {"ungradable": True})
    with pytest.raises(AnswerInvalid, match="an answer is required"):
        validate_answer(cfg.questions, {"ungradable": False}, allow_ungradable=True)


# --- end to end ------------------------------------------------------------------------------------------

def dr_study(Session, tmp_path, n_cases: int = 12, two_eyes: bool = False) -> int:
    """The DR-grading example (ordinal primary question); ``two_eyes``: cases in pairs, the two eyes of one
    patient (patient_pseudonym, eye columns)."""
    text = (ROOT / "studies" / "dr_grading.toml").read_text()
    rng = random.Random(0)
    lines = ["case_id,image_path,label,dr_grade,dme" + (",patient_pseudonym,eye" if two_eyes else "")]
    for i in range(n_cases):
        Image.fromarray(np.full((16, 16, 3), i * 9 % 255, dtype=np.uint8)).save(tmp_path / f"{i}.png")
        grade = i % 5
        lines.append(f"c{i:02d},{tmp_path / f'{i}.png'},{'normal' if grade == 0 else 'diabetic_retinopathy'},"
                     f"{grade},{'yes' if rng.random() < 0.3 else 'no'}"
                     + (f",P{i // 2:02d},{'left' if i % 2 else 'right'}" if two_eyes else ""))
    (tmp_path / "manifest.csv").write_text("\n".join(lines) + "\n")
    with Session() as s:
        st = committed(studies.create_study, s, parse_text(text), text)
        imported = committed(cases.import_manifest, s, st.id, tmp_path / "manifest.csv", store_root=tmp_path / "store")
        for c in imported:
            probs = {k: rng.uniform(0.05, 0.95) for k in LABELS[:-1]}
            committed(precompute.store_ai_output, s, c.id, model_card=CARD, probabilities=probs, label_set="revision_findings")
        s.commit()
        return st.id


def test_dr_grading_study_end_to_end(Session, tmp_path):
    sid = dr_study(Session, tmp_path)
    report = simulate(Session, sid, 6, seed=2)
    assert report.answers == 6 * 12 * 2
    out = tmp_path / "reads.csv"
    with Session() as s:
        table = answers_table(s, sid)
        export(s, sid, "csv", out)
        imrmc = imrmc_text(table, study="DR")
    for col in ("answer", "truth", "correct", "ungradable", "q_dr_grade", "q_dme", "q_comment", "ref_dr_grade",
                "ref_dme", "answer_grade", "truth_grade", "grade_distance", "primary_kind"):
        assert col in table.columns, col
    assert "confidence" not in table.columns  # this study asks no confidence
    assert (table.primary_kind == "ordinal").all()
    gradable = table[~table.ungradable]
    assert (gradable.answer == gradable.q_dr_grade).all() and (gradable.truth == gradable.ref_dr_grade).all()
    assert (gradable.correct == (gradable.answer == gradable.truth).astype(int)).all()
    assert (gradable.grade_distance == (gradable.answer_grade - gradable.truth_grade).abs()).all()
    assert gradable.correct.nunique() == 2 and (gradable.grade_distance > 0).any()
    assert set(gradable.q_dme.dropna()) <= {"true", "false"}
    assert set(gradable.truth) <= {"0", "1", "2", "3", "4"}
    ung = table[table.ungradable]
    assert 0 < len(ung) < len(table) / 5  # the simulator's low ungradable rate
    assert ung.correct.isna().all() and ung.answer.isna().all()
    assert "BEGIN DATA:" in imrmc and "reader's grade" in imrmc

    results = analyze_reads(out, n_boot=50)
    agr = results["agreement"]
    assert agr is not None and results["primary"]["kind"] == "ordinal"
    overall = {r["condition"]: r for r in agr["vs_reference"] if r["level"] == "all"}
    assert set(overall) == {"unaided", "ai"}
    from sklearn.metrics import cohen_kappa_score

    latest = pd.read_csv(out)
    latest = latest[latest.is_latest & ~latest.ungradable]
    for cond, row in overall.items():
        part = latest[latest.condition == cond]
        expected = cohen_kappa_score(part.answer_grade.astype(int), part.truth_grade.astype(int),
                                     weights="quadratic", labels=list(range(5)))
        assert row["qwk"] == pytest.approx(expected, abs=1e-9)
        assert row["ci_low"] <= row["qwk"] <= row["ci_high"]
    assert results["primary"]["excluded"]["ungradable"] == {
        c: int(n) for c, n in table[table.is_latest & table.ungradable].groupby("condition").size().items()}
    overall = [r for r in agr["between_readers"] if r.get("level", "all") == "all"]
    assert len(overall) == 2  # one row per condition over every pair of readers; per-level rows follow
    html = render_html(results)
    assert "id='qwk'" in html and "Quadratic-weighted kappa" in html


def test_legacy_export_gains_answer_and_ungradable_but_keeps_its_numbers(Session):
    from tests.study.test_study_simulate import seed_study

    sid = seed_study(Session, n_cases=6, ai_accuracy=0.9)
    simulate(Session, sid, 3, seed=5)
    with Session() as s:
        table = answers_table(s, sid)
    assert (table.answer == table.primary_diagnosis).all() and not table.ungradable.any()
    assert (table.correct == (table.primary_diagnosis == table.truth).astype(int)).all()
    assert (table.primary_question == "primary_diagnosis").all()


def test_simulated_answers_fit_every_kind():
    from study.jobs.simulate_readers import custom_answer, make_case, make_reader

    cfg = questions(ALL_KINDS)
    rng = random.Random(4)
    grades, right = [], 0
    for i in range(300):
        truth = str(i % 3)
        ans = custom_answer(cfg, rng, make_reader(1, f"r{i % 7}", 0.5), make_case(1, f"c{i}"),
                            {"dr_grade": truth, "dme": "yes"}, aided=i % 2 == 0)
        assert validate_answer(cfg.questions, ans) is not None  # raises if implausible
        grades.append(abs(int(ans["dr_grade"]) - int(truth)))
        right += ans["dme"] is True
    assert 0.4 < grades.count(0) / 300 < 0.98 and max(grades) <= 2
    assert right > 150  # the yes/no reference is read right more often than not
