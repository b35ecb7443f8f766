"""Calibration of the AI effect's 95% CI when patients contribute two eyes (issue 14, item 4).

Why: manifests carry ``patient_pseudonym`` and most patients have both eyes photographed; the two
eyes share a patient effect (systemic disease, image quality, pupil), so they are not independent.
Each simulated study is analysed twice on the same data:

* clustered: ``correct ~ condition + (1|reader) + (1|patient/case)`` (cases nested in patients);
* naive:     ``correct ~ condition + (1|reader) + (1|case)`` (every eye its own independent case).

Design (the situation in which clustering matters for the AI effect): a case-split study, in
which each patient (both eyes) is read in one arm only, aided or unaided, by every reader (e.g. to
avoid recall between the two reads). The AI effect is then a comparison between patients, so
the naive model, which counts two correlated eyes as two independent cases, under-states its SE.
(In a fully crossed study, each eye read both unaided and aided, the effect is within-case and
patients barely matter; the clustered model is then simply not needed, and costs nothing.)

Truth: logit P(correct) = b0 + effect * aided + reader + patient + eye, with SDs below.
Coverage is the share of studies whose Wald 95% CI of ``condition[T.aided]`` contains ``effect``.
Run: ``.venv/bin/python bench/bench_cluster_coverage.py [--studies 500] [--seed 0] [--design crossed]``.

Recorded run (1000 studies, seed 0, 8 readers x 80 patients x 2 eyes, split design; 21 min on a
shared CPU): clustered coverage 94.5% (MC SE 0.7), mean SE 0.267 vs SD of the estimates 0.268;
naive coverage 88.7% (MC SE 1.0), mean SE 0.217; no failed fits; mean estimate 0.493 (truth 0.5).
Crossed design (500 studies, seed 1): clustered and naive both 96.2% (MC SE 0.9), mean SE 0.094 vs
SD of the estimates 0.088: with a within-case effect the patient term changes nothing.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
from scipy.special import expit

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from study.analysis.stats.glmm import fit_glmm  # noqa: E402

TERM = "condition[T.aided]"
CLUSTERED = "correct ~ condition + (1|reader) + (1|patient/case)"
NAIVE = "correct ~ condition + (1|reader) + (1|case)"


def simulate_two_eye_study(
    n_readers: int = 8,
    n_patients: int = 80,
    effect: float = 0.5,
    reader_sd: float = 0.3,
    patient_sd: float = 1.0,
    eye_sd: float = 0.5,
    baseline: float = 0.5,
    seed: int | None = 0,
    design: str = "split",
) -> pd.DataFrame:
    """``design="split"``: half the patients (both eyes) are read aided by every reader, half unaided;
    ``"crossed"``: every eye is read unaided and aided by every reader.

    Eye ids repeat across patients ("OD"/"OS"), as in a manifest, so only ``(1|patient/case)``
    identifies an eye. Columns: reader, patient, case, condition, correct.
    """
    if design not in ("split", "crossed"):
        raise ValueError("design must be 'split' or 'crossed'")
    rng = np.random.default_rng(seed)
    arm = rng.permutation(np.arange(n_patients) % 2)  # 1 = aided
    b_r = rng.normal(0, reader_sd, n_readers)
    b_p = rng.normal(0, patient_sd, n_patients)
    b_e = rng.normal(0, eye_sd, (n_patients, 2))
    reps = 2 if design == "crossed" else 1
    r = np.repeat(np.arange(n_readers), n_patients * 2 * reps)
    p = np.tile(np.repeat(np.arange(n_patients), 2 * reps), n_readers)
    e = np.tile(np.repeat([0, 1], reps), n_readers * n_patients)
    aided = np.tile([0, 1], n_readers * n_patients * 2) if design == "crossed" else arm[p]
    eta = baseline + effect * aided + b_r[r] + b_p[p] + b_e[p, e]
    return pd.DataFrame({
        "reader": np.char.add("R", r.astype(str)),
        "patient": np.char.add("P", p.astype(str)),
        "case": np.where(e == 0, "OD", "OS"),
        "condition": np.where(aided == 1, "aided", "unaided"),
        "correct": (rng.random(len(eta)) < expit(eta)).astype(int),
    })


def _covers(formula: str, df: pd.DataFrame, effect: float) -> tuple[bool, float, float] | None:
    try:
        fit = fit_glmm(formula, df)
    except (ValueError, np.linalg.LinAlgError):
        return None
    row = fit.fixed_effects.set_index("term").loc[TERM]
    return bool(row.ci_low <= effect <= row.ci_high), float(row.estimate), float(row.se)


def run(n_studies: int, seed: int, effect: float = 0.5, **design) -> dict:
    rng = np.random.default_rng(seed)
    out = {"clustered": [], "naive": []}
    failed = 0
    t0 = time.perf_counter()
    for i in range(n_studies):
        df = simulate_two_eye_study(effect=effect, seed=int(rng.integers(2**31)), **design)
        # the naive analysis treats each eye as its own case: make eye ids unique, drop patient
        naive_df = df.assign(case=df["patient"] + "-" + df["case"])
        c, n = _covers(CLUSTERED, df, effect), _covers(NAIVE, naive_df, effect)
        if c is None or n is None:
            failed += 1
            continue
        out["clustered"].append(c)
        out["naive"].append(n)
        if (i + 1) % 50 == 0:
            print(f"  {i + 1}/{n_studies} studies, {time.perf_counter() - t0:.0f} s", flush=True)
    res = {"n_studies": n_studies, "n_failed": failed, "seconds": time.perf_counter() - t0}
    for name, rows in out.items():
        a = np.array(rows, float)
        cov = a[:, 0].mean()
        res[name] = {"coverage": cov, "mc_se": float(np.sqrt(cov * (1 - cov) / len(a))),
                     "mean_estimate": float(a[:, 1].mean()), "sd_estimate": float(a[:, 1].std(ddof=1)),
                     "mean_se": float(a[:, 2].mean())}
    return res


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--studies", type=int, default=500)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--readers", type=int, default=8)
    ap.add_argument("--patients", type=int, default=80)
    ap.add_argument("--design", choices=("split", "crossed"), default="split",
                    help="split: each patient read in one arm (default); crossed: every eye read in both arms")
    args = ap.parse_args(argv)
    design = {"n_readers": args.readers, "n_patients": args.patients, "design": args.design}
    print(f"{args.studies} studies: {args.readers} readers x {args.patients} patients x 2 eyes, {args.design} design; "
          "SDs reader 0.3, patient 1.0, eye 0.5; true AI effect 0.5 log-odds")
    res = run(args.studies, args.seed, **design)
    print(f"failed fits: {res['n_failed']}; {res['seconds']:.0f} s")
    for name in ("clustered", "naive"):
        r = res[name]
        print(f"{name:>9}: coverage {100 * r['coverage']:.1f}% (MC SE {100 * r['mc_se']:.1f}), "
              f"mean estimate {r['mean_estimate']:.3f}, SD of estimates {r['sd_estimate']:.3f}, mean SE {r['mean_se']:.3f}")
    ok = 0.935 <= res["clustered"]["coverage"] <= 0.965 and (args.design == "crossed" or res["naive"]["coverage"] < 0.935)
    print("PASS" if ok else "CHECK", "(clustered within [93.5%, 96.5%]" +
          (", naive below 93.5%)" if args.design == "split" else ")"))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
