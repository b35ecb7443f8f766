"""Runs testsupport/r/glmer_fit.R (lme4's glmer, or blme's bglmer) on a DataFrame, for the tests and benchmarks that
compare with R."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import tempfile
from pathlib import Path

import pandas as pd

R_SCRIPT = Path(__file__).resolve().parent / "r" / "glmer_fit.R"
INSTALL_HINT = "R with lme4 is not installed: apt-get install r-base-core r-cran-lme4"
BLME_HINT = "R's blme is not installed: apt-get install r-cran-blme (scripts/install_system_deps.sh)"


def glmer_available(package: str = "lme4") -> bool:
    """True when Rscript exists and ``package`` (lme4, or blme for the penalised fits) loads."""
    rscript = shutil.which("Rscript")
    if rscript is None:
        return False
    try:
        out = subprocess.run(
            [rscript, "-e", f"suppressPackageStartupMessages(library({package})); cat('ok')"],
            capture_output=True, text=True, timeout=120,
        )
    except (OSError, subprocess.TimeoutExpired):
        return False
    return out.returncode == 0 and out.stdout.strip().endswith("ok")


def run_glmer(
    df: pd.DataFrame,
    formula: str = "correct ~ condition * experience + (1|reader) + (1|case)",
    reference_levels: dict | None = None,
    timeout: float = 600,
    fixef_prior: bool = False,
) -> dict:
    """Fit with glmer (``fixef_prior``: blme's bglmer with its default normal fixed-effect prior) and return
    its JSON, with R term names translated to patsy's."""
    with tempfile.TemporaryDirectory() as tmp:
        csv = Path(tmp) / "study.csv"
        df.to_csv(csv, index=False)
        refs = [f"{k}={v}" for k, v in (reference_levels or {}).items() if k != "condition"]
        refs += ["fixef.prior=normal"] if fixef_prior else []
        out = subprocess.run(
            [shutil.which("Rscript") or "Rscript", str(R_SCRIPT), str(csv), formula, *refs],
            capture_output=True, text=True, timeout=timeout,
        )
    if out.returncode != 0:
        raise RuntimeError(f"glmer_fit.R failed:\n{out.stderr[-3000:]}")
    res = json.loads(out.stdout.strip().splitlines()[-1])
    factors = {
        c: sorted(map(str, df[c].unique()), key=len, reverse=True)
        for c in df.columns
        if not pd.api.types.is_numeric_dtype(df[c])
    }
    for fe in res["fixed_effects"]:
        fe["r_term"] = fe["term"]
        fe["term"] = r_to_patsy(fe["term"], factors)
    return res


def r_to_patsy(term: str, factors: dict[str, list[str]]) -> str:
    """'(Intercept)' -> 'Intercept'; 'conditionaided:experiencesenior' -> 'condition[T.aided]:experience[T.senior]'."""
    if term == "(Intercept)":
        return "Intercept"
    parts = []
    for piece in term.split(":"):
        for col, levels in factors.items():
            m = re.fullmatch(re.escape(col) + r"(.+)", piece)
            if m and m.group(1) in levels:
                piece = f"{col}[T.{m.group(1)}]"
                break
        parts.append(piece)
    return ":".join(parts)
