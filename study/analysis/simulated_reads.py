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

__all__ = ["ARMS", "shaped_reads", "simulate_reads"]


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


ARMS = ("ai", "ai_saliency", "ai_second_opinion")
LABELS = ("normal", "dr", "amd", "glaucoma")


def shaped_reads(
    readers_per_level: Sequence[int] = (2, 2),
    n_cases: int = 20,
    n_arms: int = 1,
    design: str = "crossed",
    partway: int = 0,
    split: bool = False,
    cells: Mapping[tuple[str, int], str] | None = None,
    all_normal: bool = False,
    ungradable: float = 0.0,
    p_correct: float = 0.7,
    seed: int = 0,
) -> pd.DataFrame:
    """A reads table of any shape a real study takes, shaped like the study export, for tests and benches.

    ``readers_per_level`` readers in each level (level ``L0`` first; 0 = a level without readers); ``n_arms``
    aided arms (:data:`ARMS`) besides unaided. ``design``: "crossed" (every reader reads every case in every
    condition), "multi_arm" (reader g reads case c once, in condition (g + c) mod k) or "sequential" (each case
    unaided at step 1, then re-read aided at step 2, in arm (g + c) mod n_arms). ``partway`` readers (the last
    ones) stop half-way through their readings (unaided first); ``split`` gives the first half of the readers
    the first half of the cases and the others the rest; ``cells`` makes a (condition, level index) cell
    "perfect" (all correct) or "hopeless" (all wrong); ``all_normal`` makes every reference 'normal';
    ``ungradable`` marks that share of readings 'Image ungradable' (1.0: all). Correctness has crossed reader and
    case effects around ``p_correct`` (0 and 1 are exact: everyone always wrong or right).
    """
    rng = np.random.default_rng(seed)
    conditions = ["unaided", *ARMS[:n_arms]]
    levels = [f"L{lv}" for lv, n in enumerate(readers_per_level) for _ in range(n)]
    readers = [(f"R{i:02d}", level) for i, level in enumerate(levels)]
    cases = [f"C{c:03d}" for c in range(n_cases)]
    reference = np.array(["normal"] * n_cases if all_normal else rng.choice(LABELS, n_cases))
    ai_label = np.where(rng.random(n_cases) < 0.8, reference, rng.choice(LABELS, n_cases))
    rows = []
    for g, (reader, level) in enumerate(readers):
        mine = range(n_cases) if not split else (range(n_cases // 2) if g < len(readers) / 2
                                                  else range(n_cases // 2, n_cases))
        for c in mine:
            if design == "multi_arm":
                reads = [(conditions[(g + c) % len(conditions)], 1)]
            elif design == "sequential":
                reads = [("unaided", 1), (conditions[1 + (g + c) % n_arms], 2)]
            else:
                reads = [(cond, 1) for cond in conditions]
            rows += [(reader, level, cases[c], cond, step, c) for cond, step in reads]
    df = pd.DataFrame(rows, columns=["reader", "level", "case", "condition", "step", "_c"])
    df = df.sort_values(["reader", "step", "condition"], key=lambda s: s.map(conditions.index) if s.name ==
                        "condition" else s, kind="stable").reset_index(drop=True)
    if partway and len(readers):
        for reader, _ in readers[-partway:]:
            mine = df.index[df["reader"] == reader]
            df = df.drop(mine[len(mine) // 2:])
    if 0 < p_correct < 1:  # crossed reader (SD 0.6) and case (SD 1.0) effects, each arm +0.4 on the logit scale
        reader_effect = dict(zip([r for r, _ in readers], rng.normal(0, 0.6, len(readers))))
        eta = (np.log(p_correct / (1 - p_correct)) + 0.4 * df["condition"].map(conditions.index).to_numpy(float)
               + df["reader"].map(reader_effect).to_numpy(float) + rng.normal(0, 1.0, n_cases)[df["_c"].to_numpy(int)])
        correct = (rng.random(len(df)) < expit(eta)).astype(int)
    else:
        correct = np.full(len(df), int(p_correct))
    for (cond, lv), kind in (cells or {}).items():
        hit = ((df["condition"] == cond) & (df["level"] == f"L{lv}")).to_numpy()
        correct[hit] = 1 if kind == "perfect" else 0
    ref = reference[df["_c"]]
    others = {lab: [x for x in LABELS if x != lab] for lab in LABELS}
    df["reference"] = ref
    df["answer"] = [r if ok else others[r][i % 3] for i, (r, ok) in enumerate(zip(ref, correct))]
    df["correct"] = correct
    aided = (df["condition"] != "unaided").to_numpy()
    df["ai_label"] = np.where(aided, ai_label[df["_c"]], None)
    df["ai_prob"] = np.where(aided, np.round(rng.uniform(0, 1, len(df)), 3), np.nan)
    df["confidence"] = np.round(rng.uniform(0, 100, len(df)))
    df["seconds"] = np.round(rng.lognormal(3, 0.6, len(df)), 1)
    df["session"] = 1
    df["version"], df["is_latest"] = 1, True
    df["ungradable"] = rng.random(len(df)) < ungradable
    if design != "sequential":
        df = df.drop(columns="step")
    return df.drop(columns="_c").reset_index(drop=True)
