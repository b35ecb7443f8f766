"""Agreement, switching table, Fleiss' kappa (vs statsmodels), AI ROC and reader operating points."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from statsmodels.stats.inter_rater import aggregate_raters
from statsmodels.stats.inter_rater import fleiss_kappa as sm_fleiss

from study.analysis import ai_interaction as ai
from study.analysis.stats.mrmc import empirical_auc
from study.analysis.reads import load_reads
from study.analysis.simulated_reads import simulate_reads


def _sequential(rows):
    """rows: (reader, level, case, reference, ai_label, answer_step1, answer_step2)."""
    out = []
    for r, lev, c, ref, ai_lab, a1, a2 in rows:
        out.append(dict(reader=r, level=lev, case=c, reference=ref, condition="unaided", step=1, answer=a1,
                        ai_label=None, correct=int(a1 == ref)))
        out.append(dict(reader=r, level=lev, case=c, reference=ref, condition="ai", step=2, answer=a2,
                        ai_label=ai_lab, correct=int(a2 == ref)))
    return load_reads(pd.DataFrame(out))


HAND = [
    # reader, level, case, reference, AI, before, after
    ("r1", "junior", "c1", "dr", "dr", "normal", "dr"),      # wrong -> right, AI correct
    ("r1", "junior", "c2", "normal", "amd", "normal", "amd"),  # right -> wrong, AI wrong (automation bias)
    ("r1", "junior", "c3", "amd", "amd", "amd", "amd"),      # right -> right, AI correct
    ("r2", "senior", "c1", "dr", "dr", "normal", "normal"),   # wrong -> wrong, AI correct
    ("r2", "senior", "c2", "normal", "amd", "normal", "normal"),  # right -> right, AI wrong
    ("r2", "senior", "c3", "amd", "amd", "dr", "amd"),       # wrong -> right, AI correct
]


def test_switching_table_hand_example():
    table = ai.switching_table(_sequential(HAND))
    s = ai.switching_summary(table).set_index("level")
    assert s.loc["junior", ["n_pairs", "right_to_right", "wrong_to_wrong", "wrong_to_right", "right_to_wrong"]].tolist() == [3, 1, 0, 1, 1]
    assert s.loc["junior", "wrong_to_right_after_correct_ai"] == 1
    assert s.loc["junior", "right_to_wrong_after_wrong_ai"] == 1
    assert s.loc["junior", "automation_bias_rate"] == 1.0
    assert s.loc["senior", ["right_to_right", "wrong_to_wrong", "wrong_to_right", "right_to_wrong"]].tolist() == [1, 1, 1, 0]
    assert s.loc["senior", "correction_rate"] == 0.5  # of 2 initially wrong with a correct AI, 1 corrected
    assert s.loc["senior", "automation_bias_rate"] == 0.0
    assert s.loc["all", "n_pairs"] == 6 and s.loc["all", "wrong_to_right_after_correct_ai"] == 2
    assert table["n"][table["level"] == "all"].sum() == 6


def test_agreement_uses_would_have_ai_for_unaided():
    df = _sequential(HAND)
    a = ai.agreement_with_ai(df).set_index(["condition", "level"])
    # unaided answers vs the AI label of the case: c1 dr (r1 normal, r2 normal), c2 amd (normal, normal),
    # c3 amd (amd, dr) -> 1 of 6
    assert a.loc[("unaided", "all"), "agree"] == 1 and a.loc[("unaided", "all"), "n"] == 6
    assert a.loc[("ai", "all"), "agree"] == 4  # dr, amd, amd, amd
    # without a label for every case, unaided rows are left out
    partial = df[~((df["case"] == "c3") & (df["condition"] == "ai"))]
    assert "unaided" not in set(ai.agreement_with_ai(partial)["condition"])


def test_fleiss_kappa_matches_statsmodels():
    rng = np.random.default_rng(0)
    ratings = rng.integers(0, 4, size=(50, 7))
    ratings[:20, :] = ratings[:20, [0]]  # some agreement
    table, _ = aggregate_raters(ratings)
    assert ai.fleiss_kappa(table) == pytest.approx(sm_fleiss(table, method="fleiss"), abs=1e-12)
    df = load_reads(simulate_reads(n_readers=6, n_cases=40, seed=2))
    k = ai.kappa_by_condition(df).set_index(["condition", "level"])
    for cond in ("unaided", "aided"):
        sub = df[df["condition"] == cond]
        wide = sub.pivot(index="case", columns="reader", values="answer")
        t, _ = aggregate_raters(wide.to_numpy())
        assert k.loc[(cond, "all"), "kappa"] == pytest.approx(sm_fleiss(t), abs=1e-12)
        assert k.loc[(cond, "all"), "n_cases"] == 40
    with pytest.raises(ValueError, match="same number"):
        ai.fleiss_kappa([[2, 0], [1, 2]])


def test_roc_and_operating_points():
    df = load_reads(simulate_reads(n_readers=6, n_cases=60, seed=4))
    roc = ai.ai_roc(df)
    per = df.dropna(subset=["ai_prob"]).groupby("case").first()
    assert roc["auc"] == pytest.approx(float(empirical_auc(per["ai_prob"].to_numpy()[None, :], per["truth"].to_numpy(int))[0]))
    assert roc["fpr"][0] == 0 and roc["tpr"][-1] == 1 and np.all(np.diff(roc["fpr"]) >= 0)
    # trapezoid area of the empirical curve equals the Wilcoxon AUC (ties counted 1/2)
    assert np.trapezoid(roc["tpr"], roc["fpr"]) == pytest.approx(roc["auc"])
    op = ai.reader_operating_points(df)
    assert len(op) == 12
    r0 = df[(df["reader"] == op.iloc[0]["reader"]) & (df["condition"] == op.iloc[0]["condition"])]
    assert op.iloc[0]["sensitivity"] == pytest.approx(r0[r0.truth == 1]["call"].mean())
    assert ai.ai_roc(df.drop(columns=["ai_prob"])) is None
