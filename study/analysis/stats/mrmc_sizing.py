"""Analytic MRMC study sizing (Hillis, Obuchowski and Berbaum 2011), as RJafroc's ``SsPowerGivenJK``.

Why analytic as well as :func:`study.analysis.stats.glmm_power.power_table`: investigators planning an MRMC
study size it from a pilot's Obuchowski-Rockette variance components and quote the Hillis and
Obuchowski power for random readers and random cases (RRRC), fixed readers (FRRC) and fixed cases
(RRFC). This module reproduces RJafroc on the Van Dyke data (tests/test_sizing.py).

Pilot components (Var(T*R), Cov1, Cov2, Cov3, Var(error) from ``K*`` pilot cases) are carried to a
pivotal study with ``J`` readers and ``K`` cases by scaling the error terms by ``K*/K``:

* RRRC: den = max(Var(T*R), 0) + K*/K (Var - Cov1 + (J - 1) max(Cov2 - Cov3, 0)); Hillis ddf
  den^2 (J - 1) / (max(Var(T*R), 0) + K*/K (Var - Cov1 - max(Cov2 - Cov3, 0)))^2;
* FRRC: den = K*/K (Var - Cov1 + (J - 1) max(Cov2 - Cov3, 0)), referred by default to F(1, K - 1), as
  RJafroc's ``SsPowerGivenJKOrVarComp`` (RJafroc 1.x-2.x and Chakraborty's book: Van Dyke, J = 10, effect
  -0.0438: K = 133, power 0.8011167); ``frrc_reference="chi2"`` refers it to chi-square(1) (ddf infinite),
  as RJafroc 3.6.1's renamed ``SsPowerGivenJKOrVarCom`` does after Hillis et al. 2011, Table 2 (K = 131,
  power 0.80091813). F(1, K - 1) never gives more power than chi-square(1), so the default plans at least as
  many cases;
* RRFC: den = max(Var(T*R), 0) + K*/K (Var - Cov1 - max(Cov2 - Cov3, 0)); ddf = J - 1;

with noncentrality J d^2 / (2 den) for the F(1, ddf) test of equal figures of merit at ``alpha``.
With a non-inferiority ``margin`` M > 0 the test is one-sided instead: H0 d <= -M against d > -M,
t = (d_hat + M) / SE with SE^2 = 2 den / J, so the power is a noncentral t (normal for FRRC) with
noncentrality (d + M) / SE; at d = -M it equals ``alpha``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import pandas as pd
from scipy import stats

from study.analysis.stats.mrmc import mrmc_analysis

__all__ = ["ANALYSES", "ORComponents", "SizingResult", "cases_for_power", "or_power", "pilot_components",
           "power_grid", "sample_size_table"]

ANALYSES = ("rrrc", "frrc", "rrfc")
FRRC_REFERENCES = ("f", "chi2")  # F(1, K - 1) (default, RJafroc's SsPowerGivenJKOrVarComp) or chi-square(1)


@dataclass(frozen=True)
class ORComponents:
    """OR variance components of a pilot with ``n_cases`` (K*) cases; ``effect`` is its observed difference."""

    var_tr: float
    cov1: float
    cov2: float
    cov3: float
    var_error: float
    n_cases: int
    effect: float | None = None
    source: str = "given"

    def to_dict(self) -> dict:
        return {k: (float(v) if isinstance(v, float) else v) for k, v in asdict(self).items()}


@dataclass(frozen=True)
class SizingResult:
    """Power of one analysis (rrrc, frrc, rrfc) for ``readers`` x ``cases``; ``ddf`` None = infinite."""

    analysis: str
    power: float
    ddf: float | None
    ncp: float
    critical_value: float
    test: str
    readers: int
    cases: int
    effect: float
    alpha: float
    margin: float | None

    def to_dict(self) -> dict:
        return asdict(self)


def pilot_components(data, fom: str = "auc", covariance: str = "jackknife") -> ORComponents:
    """OR components of a pilot reads table (``reader,modality,case,truth,rating``) via the MRMC analysis.

    The observed effect is the RRRC difference as :func:`study.analysis.stats.mrmc.mrmc_analysis` reports it
    (first minus second modality in sorted label order).
    """

    res = mrmc_analysis(data, fom=fom, covariance=covariance)
    c = res.components
    diff = res.rrrc.diff
    name = str(data) if isinstance(data, (str, Path)) else "data frame"
    return ORComponents(var_tr=c.var_tr, cov1=c.cov1, cov2=c.cov2, cov3=c.cov3, var_error=c.var_error,
                        n_cases=int(res.n_cases), effect=None if diff is None else float(diff),
                        source=f"pilot {name} ({fom}, {covariance})")


def _check(comp: ORComponents, readers: int, cases: int, alpha: float, margin: float | None) -> None:
    if not 0 < alpha < 1:
        raise ValueError(f"alpha must be between 0 and 1, got {alpha!r}")
    if int(readers) != readers or readers < 2:
        raise ValueError(f"readers must be an integer of at least 2, got {readers!r}")
    if int(cases) != cases or cases < 2:
        raise ValueError(f"cases must be an integer of at least 2, got {cases!r}")
    if comp.n_cases < 1:
        raise ValueError("the pilot must have at least one case (n_cases)")
    if margin is not None and not margin >= 0:
        raise ValueError(f"the non-inferiority margin must be >= 0, got {margin!r}")
    if comp.var_error - comp.cov1 - max(comp.cov2 - comp.cov3, 0.0) + max(comp.var_tr, 0.0) <= 0:
        raise ValueError("the variance components give a non-positive error variance; check the pilot")


def or_power(
    components: ORComponents,
    effect: float | None,
    readers: int,
    cases: int,
    alpha: float = 0.05,
    margin: float | None = None,
    frrc_reference: str = "f",
) -> dict[str, SizingResult]:
    """Power for RRRC, FRRC and RRFC (keys of :data:`ANALYSES`) of a study with ``readers`` x ``cases``.

    ``effect`` is the true difference in figure of merit (AI-assisted minus comparator with a
    margin); None uses the pilot's observed effect, as RJafroc does. ``frrc_reference``: "f" refers
    the FRRC statistic to F(1, K - 1), "chi2" to chi-square(1) (:data:`FRRC_REFERENCES`).
    """
    if frrc_reference not in FRRC_REFERENCES:
        raise ValueError(f"frrc_reference must be one of {FRRC_REFERENCES}, got {frrc_reference!r}")
    comp = components
    if effect is None:
        if comp.effect is None:
            raise ValueError("give the effect size: these components carry no observed effect")
        effect = comp.effect
    effect = float(effect)
    _check(comp, readers, cases, alpha, margin)
    J, scale = int(readers), comp.n_cases / int(cases)
    tr = max(comp.var_tr, 0.0)
    c23 = max(comp.cov2 - comp.cov3, 0.0)
    err_plus = scale * (comp.var_error - comp.cov1 + (J - 1) * c23)
    err_minus = scale * (comp.var_error - comp.cov1 - c23)
    dens = {
        "rrrc": (tr + err_plus, (tr + err_plus) ** 2 * (J - 1) / (tr + err_minus) ** 2),
        "frrc": (err_plus, float(int(cases) - 1) if frrc_reference == "f" else math.inf),
        "rrfc": (tr + err_minus, float(J - 1)),
    }
    out = {}
    for name, (den, ddf) in dens.items():
        if den <= 0:
            raise ValueError(f"{name}: the variance of the difference is not positive; check the pilot")
        se = math.sqrt(2.0 * den / J)
        if margin is None:
            ncp = effect**2 / se**2
            if math.isinf(ddf):
                crit = float(stats.chi2.isf(alpha, 1))
                power = float(stats.ncx2.sf(crit, 1, ncp)) if ncp > 0 else alpha
            else:
                crit = float(stats.f.isf(alpha, 1, ddf))
                power = float(stats.ncf.sf(crit, 1, ddf, ncp)) if ncp > 0 else alpha
            test = "F(1, ddf), two-sided" if not math.isinf(ddf) else "chi-square(1), two-sided"
        else:
            ncp = (effect + margin) / se
            if math.isinf(ddf):
                crit = float(stats.norm.isf(alpha))
                power = float(stats.norm.sf(crit - ncp))
            else:
                crit = float(stats.t.isf(alpha, ddf))
                power = float(stats.nct.sf(crit, ddf, ncp)) if ncp != 0 else alpha
            test = "t(ddf), one-sided non-inferiority" if not math.isinf(ddf) else "normal, one-sided non-inferiority"
        out[name] = SizingResult(analysis=name, power=power, ddf=None if math.isinf(ddf) else float(ddf),
                                 ncp=float(ncp), critical_value=crit, test=test, readers=J, cases=int(cases),
                                 effect=effect, alpha=float(alpha), margin=None if margin is None else float(margin))
    return out


def power_grid(
    components: ORComponents,
    effect: float | None,
    readers: Sequence[int],
    cases: Sequence[int],
    alpha: float = 0.05,
    margin: float | None = None,
    frrc_reference: str = "f",
) -> pd.DataFrame:
    """Readers x cases table: columns readers, cases, and power_/ddf_/ncp_ for each analysis."""
    rows = []
    for j in readers:
        for k in cases:
            res = or_power(components, effect, int(j), int(k), alpha, margin, frrc_reference)
            row = {"readers": int(j), "cases": int(k)}
            for name, r in res.items():
                row.update({f"power_{name}": r.power, f"ddf_{name}": r.ddf, f"ncp_{name}": r.ncp})
            rows.append(row)
    return pd.DataFrame(rows)


def cases_for_power(
    components: ORComponents,
    effect: float | None,
    readers: int,
    target: float = 0.8,
    alpha: float = 0.05,
    margin: float | None = None,
    analysis: str = "rrrc",
    max_cases: int = 100_000,
    frrc_reference: str = "f",
) -> int | None:
    """Smallest number of cases reaching ``target`` power (RJafroc's ``SsSampleSizeKGivenJ``); None if
    even ``max_cases`` do not (for RRRC and RRFC, Var(T*R) puts a ceiling on power at fixed J).

    Power rises with K in all three analyses (the error terms shrink as K*/K), so bisection is exact.
    """
    if analysis not in ANALYSES:
        raise ValueError(f"analysis must be one of {ANALYSES}, got {analysis!r}")
    if not 0 < target < 1:
        raise ValueError(f"target power must be between 0 and 1, got {target!r}")

    def power(k: int) -> float:
        return or_power(components, effect, readers, k, alpha, margin, frrc_reference)[analysis].power

    lo, hi = 2, max_cases
    if power(hi) < target:
        return None
    if power(lo) >= target:
        return lo
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if power(mid) >= target:
            hi = mid
        else:
            lo = mid
    return hi


def sample_size_table(
    components: ORComponents,
    effect: float | None,
    readers: Sequence[int],
    target: float = 0.8,
    alpha: float = 0.05,
    margin: float | None = None,
    analysis: str = "rrrc",
    frrc_reference: str = "f",
) -> pd.DataFrame:
    """For each number of readers, the fewest cases reaching ``target`` and the power there (RJafroc's
    ``SsPowerTable``); cases and power missing (NaN) where no number of cases suffices with so few readers."""
    rows = []
    for j in readers:
        k = cases_for_power(components, effect, int(j), target, alpha, margin, analysis, frrc_reference=frrc_reference)
        power = None if k is None else or_power(components, effect, int(j), k, alpha, margin,
                                                frrc_reference)[analysis].power
        rows.append({"readers": int(j), "cases": k, "power": power, "analysis": analysis})
    return pd.DataFrame(rows, columns=["readers", "cases", "power", "analysis"])
