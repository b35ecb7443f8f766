"""The mini study's scoring (the visitors' "Try the study"; its viewer is the reading station's, in the browser)."""
from __future__ import annotations

from study.visitor import ministudy


def test_mini_study_half_aided_and_scored_against_the_model():
    labels = [{"amd": 1, "rvo": 0}, {"amd": 0, "rvo": 0}] * 5
    probs = [{"amd": 0.9, "rvo": 0.1}] * 10
    m = ministudy.start(3, labels, probs)
    assert sorted(m.conditions) == ["ai"] * 5 + ["unaided"] * 5
    m.answers = ["amd" if i % 2 == 0 else "normal" for i in range(10)]
    res = {r["condition"]: r for r in ministudy.results(m)}
    assert res["with AI"]["your accuracy"] == 1.0 and res["without AI"]["your accuracy"] == 1.0
    assert sum(r["model accuracy"] * r["cases"] for r in res.values()) == 5
