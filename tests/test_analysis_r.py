"""The report's GLMM, interaction test and reading-time LMM against lme4 (skipped without R/lme4)."""

from __future__ import annotations

import shutil
import subprocess

import pandas as pd
import pytest

from study.analysis.reads import load_reads
from study.analysis.simulate_reads import simulate_reads
from study.report import analyze_reads

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
