"""What every mixed-model fit here reports, whatever its family: one base for the GLMM and the LMM results."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from scipy import stats

Z95 = stats.norm.ppf(0.975)


def wald_table(terms, beta: np.ndarray, vcov: np.ndarray, ratio_name: str) -> pd.DataFrame:
    """Fixed effects with Wald z tests and 95% CIs (as ``summary.merMod``), plus exp(estimate) named
    ``ratio_name`` (odds ratio for the GLMM, time ratio for the log-time LMM)."""
    se = np.sqrt(np.diag(vcov))
    z = beta / se
    return pd.DataFrame({"term": terms, "estimate": beta, "se": se, "z": z, "p": 2 * stats.norm.sf(np.abs(z)),
                         "ci_low": beta - Z95 * se, "ci_high": beta + Z95 * se, ratio_name: np.exp(beta)})


@dataclass(kw_only=True)
class MixedModelResult:
    """Fixed effects (estimate, se, ci_low, ci_high, p per term), random-effect SDs and the fit's state."""

    formula: str
    groups: tuple[str, ...]
    fixed_effects: pd.DataFrame
    random_effect_sds: dict[str, float]
    converged: bool
    n_obs: int
    vcov: pd.DataFrame
    messages: list[str] = field(default_factory=list)

    @property
    def reader_sd(self) -> float:
        return self.random_effect_sds.get("reader", float("nan"))

    @property
    def case_sd(self) -> float:
        return self.random_effect_sds.get("case", float("nan"))

    def _summary(self, model: str) -> dict:
        """The JSON-serialisable part both families share (plain floats, no numpy types)."""
        return {
            "model": model,
            "formula": self.formula + "".join(f" + (1|{g})" for g in self.groups),
            "n_obs": int(self.n_obs),
            "converged": bool(self.converged),
            "fixed_effects": [
                {"term": str(r.term), "estimate": float(r.estimate), "se": float(r.se),
                 "ci": [float(r.ci_low), float(r.ci_high)], "p": float(r.p)}
                for r in self.fixed_effects.itertuples()
            ],
            "random_effects": {f"{g}_sd": float(s) for g, s in self.random_effect_sds.items()},
        }
