"""Simulated reads tables shaped like the study export (labels, AI suggestions, confidence, steps).

Why: the report, CLI and AI-interaction analyses need realistic inputs before real data exist,
and tests need known truths. Correctness comes from :func:`simulate_reader_study` (so the GLMM's
truth is known); answers, AI outputs and confidence are layered on top of it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd
from scipy.special import expit

from study.analysis.stats.simulated_study import simulate_reader_study

__all__ = ["simulate_reads"]


def simulate_reads(
    n_readers: int = 12,
    n_cases: int = 80,
    effect_log_odds: float | Mapping[str, float] = 0.5,
    levels: Sequence[str] = ("resident", "fellow", "consultant"),
    labels: Sequence[str] = ("normal", "dr", "amd", "glaucoma"),
    sequential: bool = True,
    ai_accuracy: float = 0.8,
    seed: int = 0,
    **kwargs,
) -> pd.DataFrame:
    """Reads with columns reader, level, years, case, reference, truth, condition, session, step,
    answer, correct, confidence, ai_label, ai_prob (aided rows only), version, is_latest, seconds.

    ``sequential``: unaided is step 1 and aided step 2 of the same reading; otherwise both are
    step 1 in sessions 1 and 2. A few superseded answers (version 1, is_latest False) are added
    so that filtering is exercised. Extra keyword arguments go to ``simulate_reader_study``.
    """
    rng = np.random.default_rng(seed + 10_000)
    base = simulate_reader_study(n_readers, n_cases, effect_log_odds=effect_log_odds, levels=levels, seed=seed, **kwargs)
    df = base.rename(columns={"experience": "level"})
    labels = list(labels)
    cases = pd.Index(sorted(pd.unique(df["case"])))
    ref = rng.choice(labels, size=len(cases), p=[0.4] + [0.6 / (len(labels) - 1)] * (len(labels) - 1))
    ai_ok = rng.random(len(cases)) < ai_accuracy
    other = lambda lab: rng.choice([x for x in labels if x != lab])  # noqa: E731
    ai_label = np.array([r if ok else other(r) for r, ok in zip(ref, ai_ok)])
    truth = (ref != labels[0]).astype(int)
    ai_prob = expit(1.8 * (2 * truth - 1) + rng.normal(0, 1.2, len(cases)))
    ci = cases.get_indexer(df["case"])
    df["reference"] = ref[ci]
    df["truth"] = truth[ci]
    aided = (df["condition"] == "aided").to_numpy()
    wrong = df["correct"].to_numpy() == 0
    answer = df["reference"].to_numpy().astype(object)
    follow_ai = aided & wrong & ~ai_ok[ci] & (rng.random(len(df)) < 0.6)
    for i in np.flatnonzero(wrong):
        answer[i] = ai_label[ci[i]] if follow_ai[i] else other(answer[i])
    df["answer"] = answer
    df["ai_label"] = np.where(aided, ai_label[ci], None)
    df["ai_prob"] = np.where(aided, np.round(ai_prob[ci], 4), np.nan)
    df["confidence"] = np.clip(np.round(55 + 20 * df["correct"] + rng.normal(0, 15, len(df))), 0, 100)
    lev_years = {lev: 2 + 6 * i for i, lev in enumerate(levels)}
    yrs = {r: lev_years[lev] + rng.integers(0, 5) for r, lev in df.drop_duplicates("reader")[["reader", "level"]].itertuples(index=False)}
    df["years"] = df["reader"].map(yrs).astype(float)
    df["step"] = np.where(aided, 2, 1) if sequential else 1
    df["session"] = 1 if sequential else np.where(aided, 2, 1)
    df["version"] = 1
    df["is_latest"] = True
    old = df.sample(n=max(1, len(df) // 200), random_state=seed).copy()
    old["correct"] = 1 - old["correct"]
    old["answer"] = "superseded"
    old["is_latest"] = False
    df.loc[old.index, "version"] = 2
    df = pd.concat([df, old], ignore_index=True)
    return df[
        ["reader", "level", "years", "case", "reference", "truth", "condition", "session", "step", "answer",
         "correct", "confidence", "ai_label", "ai_prob", "version", "is_latest", "seconds"]
    ]
