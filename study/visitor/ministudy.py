"""The public 'Try the study' mini study: 10 synthetic cases, half unaided and half aided, in random order.

Everything lives in the visitor's browser session (the page keeps a :class:`MiniStudy` in session
state); nothing is written to the study database. Pure functions so the page stays thin.
"""
from __future__ import annotations

import random
from dataclasses import dataclass, field

from study.domain.config import NORMAL  # the page offers it as an answer
from study.domain.rules import ai_call, call_is_correct


@dataclass
class MiniStudy:
    seed: int
    conditions: list[str]                 # per position: "unaided" or "ai"
    truths: list[set[str]]                # findings present per case (empty: normal)
    model_calls: list[str]                # the model's top call per case (finding key or "normal")
    answers: list[str] = field(default_factory=list)

    @property
    def position(self) -> int:
        return len(self.answers)

    @property
    def done(self) -> bool:
        return len(self.answers) >= len(self.conditions)


def conditions(n: int, seed: int) -> list[str]:
    """Half unaided, half aided, shuffled with ``seed``."""
    order = ["unaided"] * (n // 2) + ["ai"] * (n - n // 2)
    random.Random(seed).shuffle(order)
    return order


def model_call(probabilities: dict[str, float]) -> str:
    """The model's answer, by the study's rule (``study.domain.rules.ai_call``)."""
    return ai_call(probabilities)[0]


def start(seed: int, labels: list[dict[str, int]], probabilities: list[dict[str, float]]) -> MiniStudy:
    truths = [{k for k, v in lab.items() if v} for lab in labels]
    return MiniStudy(seed, conditions(len(labels), seed), truths, [model_call(p) for p in probabilities])


def results(m: MiniStudy) -> list[dict]:
    """Visitor's and model's accuracy in each condition (on the same cases)."""
    out = []
    for cond in ("unaided", "ai"):
        idx = [i for i, c in enumerate(m.conditions) if c == cond and i < len(m.answers)]
        if not idx:
            continue
        you = sum(call_is_correct(m.answers[i], m.truths[i]) for i in idx) / len(idx)
        model = sum(call_is_correct(m.model_calls[i], m.truths[i]) for i in idx) / len(idx)
        out.append({"condition": "without AI" if cond == "unaided" else "with AI", "cases": len(idx),
                    "your accuracy": round(you, 3), "model accuracy": round(model, 3)})
    return out


__all__ = ["NORMAL", "MiniStudy", "conditions", "model_call", "results", "start"]
