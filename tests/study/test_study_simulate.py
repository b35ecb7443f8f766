"""Simulated readers: answers go through the workflow, are reproducible, and show a sizeable AI effect."""

from __future__ import annotations

import random

import pandas as pd
import pytest
from sqlalchemy import func, select

from study.domain import cases, studies
from study.jobs import precompute
from study.analysis.stats.glmm import fit_glmm
from study.domain.config import parse_text
from study.domain.answers import answers_table
from study.storage.models import Answer, Assignment, AuditEvent, Reader, utcnow
from study.jobs.simulate_readers import expected_accuracy, simulate
from testsupport.studies import CARD, LABELS, study_toml, committed


def seed_study(Session, *, n_cases: int, ai_accuracy: float, design: str = "crossover", name: str = "Sim",
               rng_seed: int = 0, **toml_kw) -> int:
    """A study whose AI top suggestion is right with probability ``ai_accuracy``."""
    rng = random.Random(rng_seed)
    text = study_toml(design, name=name, **toml_kw)
    with Session() as s:
        st = committed(studies.create_study, s, parse_text(text), text)
        for i in range(n_cases):
            truth = LABELS[i % len(LABELS)]
            c = committed(cases.add_case, s, st.id, f"c{i:03d}", f"sha{i}",
                               {"label": truth, "findings": [] if truth == "normal" else [truth]})
            s.flush()
            top = truth if rng.random() < ai_accuracy else rng.choice([x for x in LABELS if x != truth])
            probs = {k: (0.85 if k == top else 0.1) for k in LABELS[:-1]}
            committed(precompute.store_ai_output, s, c.id, model_card=CARD, probabilities=probs, label_set="revision_findings")
        s.commit()
        return st.id


@pytest.mark.parametrize("design", ["crossover", "sequential"])
def test_simulation_answers_everything_through_the_workflow(Session, design):
    sid = seed_study(Session, n_cases=6, ai_accuracy=0.9, design=design)
    report = simulate(Session, sid, 3, seed=5)
    with Session() as s:
        n_assign = s.scalar(select(func.count()).select_from(Assignment).where(Assignment.study_id == sid))
        n_answers = s.scalar(select(func.count()).select_from(Answer))
        submitted = s.scalar(select(func.count()).select_from(AuditEvent)
                             .where(AuditEvent.action == "answer.submitted"))
        readers = list(s.scalars(select(Reader).where(Reader.study_id == sid)))
        table = answers_table(s, sid)
    assert report.answers == n_answers == n_assign == submitted == 3 * 6 * 2
    assert sorted(r.level for r in readers) == ["intermediate", "junior", "senior"]
    assert all(r.code_hash and r.code_hash.startswith("$argon2") for r in readers)
    assert set(report.codes) == {r.pseudonym for r in readers}
    # times come from the simulated server clock: positive, plausible, never a wall-clock zero
    assert table["seconds"].between(4, 1200).all()
    # simulated activity lies in the past: a run of a fresh study ends before the moment it was made
    with Session() as s:
        latest = s.scalar(select(func.max(Answer.submitted_at)))
    assert latest is not None and latest <= utcnow()
    if design == "crossover":  # session 2 only after the 28-day washout
        s1 = table[table.session == 1].groupby("reader")["submitted_at"].max()
        s2 = table[table.session == 2].groupby("reader")["shown_at"].min()
        gap = pd.to_datetime(s2) - pd.to_datetime(s1)
        assert (gap.dt.days >= 28).all()
    else:  # step 2 starts from the reader's own step-1 answer: it keeps it or switches to the AI
        merged = table.pivot_table(index=["reader", "case"], columns="condition", values="primary_diagnosis",
                                   aggfunc="first")
        ai_top = table[table.condition == "ai"].set_index(["reader", "case"])["ai_top_suggestion"]
        assert ((merged["ai"] == merged["unaided"]) | (merged["ai"] == ai_top.reindex(merged.index))).all()


def test_same_seed_same_answers_different_seed_different(Session):
    cols = ["reader", "level", "years", "case", "condition", "primary_diagnosis", "findings", "confidence",
            "seconds"]
    tables = []
    for name, seed in (("A", 11), ("B", 11), ("C", 12)):
        sid = seed_study(Session, n_cases=6, ai_accuracy=0.9, name=name)
        simulate(Session, sid, 3, seed=seed)
        with Session() as s:
            tables.append(answers_table(s, sid)[cols].sort_values(["reader", "case", "condition"])
                          .reset_index(drop=True))
    assert tables[0].equals(tables[1])
    assert not tables[0].equals(tables[2])


def test_refuses_a_study_with_answers(Session):
    sid = seed_study(Session, n_cases=4, ai_accuracy=0.9)
    simulate(Session, sid, 2, seed=0)
    with pytest.raises(ValueError, match="already has answers"):
        simulate(Session, sid, 2, seed=1)


def test_model_calibration_good_ai_helps_about_15_points_bad_ai_hurts():
    for rank in (0.0, 0.5, 1.0):
        unaided, aided = expected_accuracy(rank, ai_accuracy=0.9, n=6000)
        assert 0.10 <= aided - unaided <= 0.20, (rank, unaided, aided)
        unaided_bad, aided_bad = expected_accuracy(rank, ai_accuracy=0.3, n=6000)
        assert aided_bad < unaided_bad  # automation bias: a wrong AI drags readers along
    assert expected_accuracy(0.0)[0] < expected_accuracy(0.5)[0] < expected_accuracy(1.0)[0]


@pytest.mark.heavy
@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_glmm_finds_a_positive_sizeable_ai_effect(Session):
    sid = seed_study(Session, n_cases=40, ai_accuracy=0.9, name="Big")
    simulate(Session, sid, 12, seed=3)
    with Session() as s:
        table = answers_table(s, sid)
    data = table[table.is_latest].rename(columns={"level": "experience"})
    data["condition"] = data["condition"].map({"unaided": "unaided", "ai": "aided"})
    fit = fit_glmm("correct ~ condition + experience + (1|reader) + (1|case)", data,
                   reference_levels={"experience": "junior"})
    fe = fit.fixed_effects.set_index("term")
    term = next(t for t in fe.index if t.startswith("condition"))
    assert fe.at[term, "estimate"] > 0.4 and fe.at[term, "ci_low"] > 0, fe
    by = data.groupby("condition")["correct"].mean()
    assert by["aided"] - by["unaided"] >= 0.08, by
