"""The report's GLMM, interaction test and reading-time LMM against lme4 (skipped without R/lme4)."""

from __future__ import annotations

import shutil
import subprocess

import pandas as pd
import pytest

from study.analysis.reads import load_reads
from study.analysis.simulated_reads import simulate_reads
from study.outputs.report import analyze_reads

LEVELS = ["resident", "fellow", "consultant"]
R_SCRIPT = """
suppressMessages(library(lme4))
d <- read.csv("{csv}")
d$condition <- factor(d$condition, levels = c("unaided", "aided"))
d$level <- factor(d$level, levels = c("resident", "fellow", "consultant"))
m <- glmer(correct ~ condition * level + (1|reader) + (1|case), data = d, family = binomial)
l <- lmer(log(seconds) ~ condition * level + (1|reader) + (1|case), data = d)
vc <- as.data.frame(VarCorr(m))
out <- rbind(data.frame(model = "glmm", term = rownames(coef(summary(m))), est = coef(summary(m))[, 1],
                        se = coef(summary(m))[, 2]),
             data.frame(model = "lmm", term = rownames(coef(summary(l))), est = coef(summary(l))[, 1],
                        se = coef(summary(l))[, 2]),
             data.frame(model = "sd", term = vc$grp, est = vc$sdcor, se = NA))
write.csv(out, "{out}", row.names = FALSE)
"""


pytestmark = pytest.mark.r


def _have_lme4() -> bool:
    if shutil.which("Rscript") is None:
        return False
    return subprocess.run(["Rscript", "-e", "library(lme4)"], capture_output=True).returncode == 0


@pytest.mark.skipif(not _have_lme4(), reason="Rscript with lme4 not installed")
def test_report_models_match_lme4(tmp_path):
    raw = simulate_reads(n_readers=9, n_cases=60, seed=7)
    csv, out = tmp_path / "d.csv", tmp_path / "out.csv"
    load_reads(raw, level_order=LEVELS)[["reader", "level", "case", "condition", "correct", "seconds"]].to_csv(csv, index=False)
    script = tmp_path / "fit.R"
    script.write_text(R_SCRIPT.format(csv=csv, out=out))
    subprocess.run(["Rscript", str(script)], check=True, capture_output=True, timeout=120)
    r = pd.read_csv(out)
    res = analyze_reads(raw, level_order=LEVELS, n_boot=50)
    ours = [fe for fe in res["glmm"]["fixed_effects"]]
    rg = r[r.model == "glmm"]
    assert [fe["estimate"] for fe in ours] == pytest.approx(rg["est"].tolist(), abs=2e-3)
    assert [fe["se"] for fe in ours] == pytest.approx(rg["se"].tolist(), rel=0.02)  # Hessian vs glmer's numDeriv
    sd = r[r.model == "sd"].set_index("term")["est"]
    assert res["glmm"]["random_effects"]["reader_sd"] == pytest.approx(sd["reader"], abs=2e-3)
    assert res["glmm"]["random_effects"]["case_sd"] == pytest.approx(sd["case"], abs=2e-3)
    rl = r[r.model == "lmm"]
    assert [fe["estimate"] for fe in res["reading_time"]["fixed_effects"]] == pytest.approx(rl["est"].tolist(), abs=1e-4)
    assert [fe["se"] for fe in res["reading_time"]["fixed_effects"]] == pytest.approx(rl["se"].tolist(), rel=1e-3)


# lme4's VerbAgg example, published in tests/data/README.md (lme4 1.1.31, Laplace):
# glmer(r2 ~ Anger + Gender + btype + situ + (1|id) + (1|item), family = binomial).
VERBAGG = {
    "Intercept": (0.1992881, 0.4057765),
    "Anger": (0.0574084, 0.0167941),
    "Gender[T.M]": (0.3206026, 0.1915833),
    "btype[T.scold]": (-1.0586394, 0.2570859),
    "btype[T.shout]": (-2.1050513, 0.2590507),
    "situ[T.self]": (-1.0552867, 0.2105328),
}


@pytest.mark.skipif(not _have_lme4(), reason="Rscript with lme4 not installed (the VerbAgg data ship with it)")
def test_glmm_reproduces_lme4_verbagg(tmp_path):
    from pathlib import Path

    from study.analysis.stats.glmm import fit_glmm

    csv = tmp_path / "verbagg.csv"
    script = Path(__file__).resolve().parent / "r" / "verbagg.R"
    subprocess.run(["Rscript", str(script), str(csv)], check=True, capture_output=True, timeout=120)
    d = pd.read_csv(csv)
    res = fit_glmm("r2 ~ Anger + Gender + btype + situ + (1|id) + (1|item)", d,
                   reference_levels={"Gender": "F", "btype": "curse", "situ": "other"})
    fe = res.fixed_effects.set_index("term")
    assert set(fe.index) == set(VERBAGG)
    for term, (est, se) in VERBAGG.items():
        assert fe.loc[term, "estimate"] == pytest.approx(est, abs=5e-4), term  # measured max 3.5e-4 (btype shout)
        assert fe.loc[term, "se"] == pytest.approx(se, rel=5e-3), term  # measured max 0.27% (Anger)
    assert res.random_effect_sds["id"] == pytest.approx(1.339536, abs=5e-4)
    assert res.random_effect_sds["item"] == pytest.approx(0.495249, abs=5e-4)
    assert res.loglik >= -4075.700245 - 1e-4  # same Laplace objective: at least glmer's maximum
    assert res.converged and res.n_obs == 7584
