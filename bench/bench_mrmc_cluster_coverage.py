"""Calibration of the OR-MRMC (RRRC) CI of the AI effect on the AUC with two eyes per patient (issue 14, item 4).

Why: most patients have both eyes photographed, and the two eyes share a patient effect on every
reader's rating, also one that differs between unaided and aided reading (a patient whose fundi are
hard to read without AI is hard in both eyes). The case jackknife treats the eyes as independent
cases and under-states the variance of the AUC difference; the jackknife over patients
(``mrmc_analysis(..., cluster="patient")``, :mod:`study.analysis.stats.mrmc_patients`) should restore a
95% CI that covers the true AI effect 95% of the time. Each simulated study is analysed both ways
on the same data; this is the MRMC counterpart of bench/bench_cluster_coverage.py (GLMM).

Model (binormal, Roe-Metz style with a patient level; fully crossed: every reader reads every eye
unaided and aided). For modality m (unaided, aided), reader r, patient p, eye k with truth d_k:

    rating = d_k * (mu_m + A_r + AM_rm) + P_p + PM_pm + E_k + EM_km + e_mrk

A, AM: reader and reader x modality effects on the separation (so reader AUCs vary);
P, PM: patient and patient x modality effects, shared by both eyes; E, EM: eye effects; e: noise.
Patients are a fixed mix of types per study: both eyes diseased, one eye diseased (discordant;
its two eyes form a within-patient diseased/non-diseased pair), neither. Truth is independent of
the random effects, so for a reader with separation delta a diseased/non-diseased pair from two
patients has P(X+ > X-) = Phi(delta / sqrt(2 V)), V = var(P+PM+E+EM+e), and a within-patient pair
Phi(delta / sqrt(2 V_eye)), V_eye = var(E+EM+e); averaged over readers (delta ~ N(mu_m, s_A^2 +
s_AM^2)) the expected reader-averaged AUC of modality m is, with N pairs of which N_w within-patient,

    AUC_m = [(N - N_w) Phi(mu_m / sqrt(2V + s_A^2 + s_AM^2)) + N_w Phi(mu_m / sqrt(2V_eye + s_A^2 + s_AM^2))] / N

and the true AI effect is AUC_aided - AUC_unaided (exact, no simulation; the mean estimate over
the studies is printed as a check; 3000 simulated studies gave a mean empirical difference of
0.0534 +- 0.0008 against 0.0535 from the formula). Coverage is the share of studies whose RRRC 95% CI of the
AUC difference contains it.

Sizes: 6 readers x 80 patients (160 eyes) by default, a typical reader study. This is not too small
for the method: in a control with the same total case variance but no sharing between the eyes
(patient SDs moved into the eye SDs, a scratch variant of this script; 1000 studies, seed 1000)
the case jackknife covered 94.5% (binomial 95% CI 92.9-95.8%), mean SE 0.0359 vs SD of the
estimates 0.0362, so no small-sample bias of the jackknife / Hillis ddf with 6 readers had to be designed around.
With 500 studies the Monte-Carlo SE of a 95% coverage is about 1.0 point, so the [93.5%, 96.5%]
band is only about +-1.5 MC SE wide: a perfectly calibrated method misses it in about 1 run in 8
(more often in practice, see below); ``--studies 1000`` (MC SE 0.7 point) is the sharper check.
The seed is fixed (default 0), not chosen.

Recorded runs (this design; about 80 s per 500 studies on 2 shared CPU cores):
  --studies 500 --seed 0 (the default): clustered 97.0% (485/500; 95% CI 95.1-98.3%) -> FAIL (above
      the band: over-coverage); naive 91.2% (456/500; 88.4-93.5%); SE ratio 1.178; mean SE 0.0417
      vs SD of the estimates 0.0408; 82 s.
  --studies 1000 --seed 0 (its first 500 studies are the run above): clustered 95.5% (955/1000;
      94.0-96.7%) PASS; naive 89.8% (87.8-91.6%); SE ratio 1.176; 154 s.
  --studies 500 --seed 1: clustered 96.8% (484/500; 94.9-98.2%) FAIL; naive 92.2% (89.5-94.4%).
  --studies 1000 --seed 2000: clustered 93.5% (91.8-94.9%); naive 90.2% (88.2-92.0%).
  Pooled over these 2500 studies: clustered 94.96% (2374/2500), naive 90.4% (2261/2500); the
  clustered mean SE (0.042) matches the SD of the estimates (0.041-0.044), the naive one (0.036)
  is about 15% too small.

Default 2000 studies (chosen from the Monte-Carlo error, not from a result: at 2000 the band
[93.5%, 96.5%] is +-3 Monte-Carlo SEs around 95%, so a calibrated method passes ~99.7% of runs; at 500 it
is +-1.5 SE and a calibrated method fails ~1 run in 8, as the runs above show). The default seed was
changed to 100, a seed not used in any run above, before the first 2000-study run, which gave:
  --studies 2000 --seed 100 (the default): clustered 95.1% (1902/2000; 94.1-96.0%) PASS, mean SE 0.0421 vs
  SD 0.0415; naive 91.2% (1825/2000; 89.9-92.5%), mean SE 0.0357; SE ratio 1.179; 331 s on 2 shared cores.

Run: ``.venv/bin/python bench/bench_mrmc_cluster_coverage.py [--studies 2000] [--seed 100]``.
Exit code 1 when the clustered coverage is outside [93.5%, 96.5%] or the naive analysis does not
under-cover (naive coverage below the clustered coverage and below 93.5%).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
from scipy import stats

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from study.analysis.stats.mrmc import mrmc_analysis  # noqa: E402

BAND = (0.935, 0.965)
MODALITIES = ("unaided", "aided")  # sorted labels: "aided" < "unaided", so the OR difference is aided - unaided

# standard deviations of the model's effects (see the docstring)
SD = {
    "reader": 0.25,        # A: reader effect on the separation
    "reader_mod": 0.15,    # AM: reader x modality
    "patient": 0.55,       # P: shared by both eyes, both modalities
    "patient_mod": 0.55,   # PM: shared by both eyes, one modality
    "eye": 0.3,            # E
    "eye_mod": 0.3,        # EM
    "noise": 0.45,         # e: reading noise
}
MU = {"unaided": 1.2, "aided": 1.5}  # mean separation per modality


def patient_types(n_patients: int) -> tuple[int, int, int]:
    """(both eyes diseased, one eye diseased, neither): 25%, 15%, 60% of the patients."""
    dd, dh = round(0.25 * n_patients), round(0.15 * n_patients)
    return dd, dh, n_patients - dd - dh


def true_auc(n_patients: int) -> dict:
    """Expected reader-averaged AUC per modality for this design (formula in the docstring)."""
    dd, dh, hh = patient_types(n_patients)
    n_pos, n_neg = 2 * dd + dh, 2 * hh + dh
    pairs, within = n_pos * n_neg, dh
    v_eye = SD["eye"] ** 2 + SD["eye_mod"] ** 2 + SD["noise"] ** 2
    v = SD["patient"] ** 2 + SD["patient_mod"] ** 2 + v_eye
    v_reader = SD["reader"] ** 2 + SD["reader_mod"] ** 2
    out = {}
    for m, mu in MU.items():
        between = stats.norm.cdf(mu / np.sqrt(2 * v + v_reader))
        same = stats.norm.cdf(mu / np.sqrt(2 * v_eye + v_reader))
        out[m] = float(((pairs - within) * between + within * same) / pairs)
    return out


def simulate_study(n_readers: int, n_patients: int, rng: np.random.Generator) -> pd.DataFrame:
    """Long table reader, modality, case, patient, truth, rating; two eyes per patient, fully crossed."""
    dd, dh, hh = patient_types(n_patients)
    n_eyes = 2 * n_patients
    patient = np.repeat(np.arange(n_patients), 2)
    truth = np.concatenate([np.ones(2 * dd), np.tile([1, 0], dh), np.zeros(2 * hh)]).astype(int)
    t = len(MODALITIES)
    sep = (np.array([MU[m] for m in MODALITIES])[:, None]
           + rng.normal(0, SD["reader"], n_readers)[None, :]
           + rng.normal(0, SD["reader_mod"], (t, n_readers)))  # (t, r)
    case_effect = (rng.normal(0, SD["patient"], n_patients)[None, patient]
                   + rng.normal(0, SD["patient_mod"], (t, n_patients))[:, patient]
                   + rng.normal(0, SD["eye"], n_eyes)[None, :]
                   + rng.normal(0, SD["eye_mod"], (t, n_eyes)))  # (t, c)
    rating = (truth[None, None, :] * sep[:, :, None] + case_effect[:, None, :]
              + rng.normal(0, SD["noise"], (t, n_readers, n_eyes)))  # (t, r, c)
    m, r, c = np.meshgrid(np.arange(t), np.arange(n_readers), np.arange(n_eyes), indexing="ij")
    c = c.ravel()
    return pd.DataFrame({
        "reader": np.char.add("R", r.ravel().astype(str)),
        "modality": np.array(MODALITIES)[m.ravel()],
        "case": np.char.add(np.char.add("P", patient[c].astype(str)), np.where(c % 2 == 0, "-OD", "-OS")),
        "patient": np.char.add("P", patient[c].astype(str)),
        "truth": truth[c],
        "rating": rating.ravel(),
    })


def _rrrc(df: pd.DataFrame, cluster: str | None) -> tuple[float, float, float, float]:
    test = mrmc_analysis(df, cluster=cluster).rrrc
    (a, b), = [c.modalities for c in test.comparisons]
    sign = 1.0 if (a, b) == ("aided", "unaided") else -1.0  # report aided - unaided
    lo, hi = sorted(sign * x for x in test.ci)
    return sign * test.diff, test.se, lo, hi


def binomial_ci(k: int, n: int, level: float = 0.95) -> tuple[float, float]:
    """Clopper-Pearson interval for a proportion k/n."""
    a = (1 - level) / 2
    lo = stats.beta.ppf(a, k, n - k + 1) if k > 0 else 0.0
    hi = stats.beta.ppf(1 - a, k + 1, n - k) if k < n else 1.0
    return float(lo), float(hi)


def run(n_studies: int, seed: int, n_readers: int, n_patients: int) -> dict:
    truth = true_auc(n_patients)
    effect = truth["aided"] - truth["unaided"]
    rng = np.random.default_rng(seed)
    rows = {"clustered": [], "naive": []}
    t0 = time.perf_counter()
    for i in range(n_studies):
        df = simulate_study(n_readers, n_patients, rng)
        rows["clustered"].append(_rrrc(df, "patient"))
        rows["naive"].append(_rrrc(df, None))
        if (i + 1) % 100 == 0:
            print(f"  {i + 1}/{n_studies} studies, {time.perf_counter() - t0:.0f} s", flush=True)
    res = {"truth": truth, "effect": effect, "seconds": time.perf_counter() - t0, "n": n_studies}
    for name, r in rows.items():
        a = np.array(r)
        k = int(((a[:, 2] <= effect) & (effect <= a[:, 3])).sum())
        res[name] = {"covered": k, "coverage": k / n_studies, "ci": binomial_ci(k, n_studies),
                     "mean_estimate": float(a[:, 0].mean()), "sd_estimate": float(a[:, 0].std(ddof=1)),
                     "mean_se": float(a[:, 1].mean()), "se": a[:, 1]}
    res["se_ratio"] = float(np.mean(res["clustered"]["se"] / res["naive"]["se"]))
    return res


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--studies", type=int, default=2000)  # MC SE 0.49 point: the band is +-3 MC SE
    ap.add_argument("--seed", type=int, default=100)
    ap.add_argument("--readers", type=int, default=6)
    ap.add_argument("--patients", type=int, default=80)
    args = ap.parse_args(argv)
    dd, dh, hh = patient_types(args.patients)
    print(f"{args.studies} studies (seed {args.seed}), {args.readers} readers x {args.patients} patients x 2 eyes "
          f"x 2 modalities, fully crossed; patients: {dd} both eyes diseased, {dh} one eye, {hh} neither")
    print("SDs: " + ", ".join(f"{k} {v:g}" for k, v in SD.items())
          + f"; separation unaided {MU['unaided']:g}, aided {MU['aided']:g}")
    res = run(args.studies, args.seed, args.readers, args.patients)
    tr = res["truth"]
    print(f"true AUC unaided {tr['unaided']:.4f}, aided {tr['aided']:.4f}; true AI effect {res['effect']:.4f}")
    for name in ("clustered", "naive"):
        r = res[name]
        lo, hi = r["ci"]
        print(f"{name:>9}: 95% CI coverage {100 * r['coverage']:.1f}% ({r['covered']}/{res['n']}; binomial 95% CI "
              f"{100 * lo:.1f}-{100 * hi:.1f}%), mean SE {r['mean_se']:.4f} vs SD of the estimates "
              f"{r['sd_estimate']:.4f}")
    print(f"mean estimate {res['clustered']['mean_estimate']:.4f} (truth {res['effect']:.4f}); "
          f"mean SE ratio clustered/naive {res['se_ratio']:.3f}")
    print(f"elapsed {res['seconds']:.0f} s")
    c, n = res["clustered"]["coverage"], res["naive"]["coverage"]
    ok_c = BAND[0] <= c <= BAND[1]
    ok_n = n < c and n < BAND[0]
    print(f"clustered coverage in [{100 * BAND[0]:.1f}%, {100 * BAND[1]:.1f}%]: {'PASS' if ok_c else 'FAIL'}")
    print(f"naive under-covers (below clustered and below {100 * BAND[0]:.1f}%): {'PASS' if ok_n else 'FAIL'}")
    return 0 if ok_c and ok_n else 1


if __name__ == "__main__":
    sys.exit(main())
