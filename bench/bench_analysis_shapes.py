"""The whole study analysis on a large study, and the mixed model's fallbacks against R.

Run from the repository root: ``python bench/bench_analysis_shapes.py [--readers 40 --cases 300 --repeats 2]``.
Prints (1) the time of ``study.analysis.study_analysis.analyze_frame`` (every section, 1,000 bootstrap replicates,
as the app runs it) on readers x cases x 2 conditions, fully crossed, against the goal of 30 s on 2 cores, with
the time of each section's main call; (2) for each step of the GLMM's ladder (``study.analysis.mixed_models``) a
study shape that reaches it, the model that ran and its agreement with lme4's glmer (blme's bglmer for the
separated shape) fitted to the same formula: the largest difference of a fixed effect and the largest SE ratio.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from study.analysis import descriptive  # noqa: E402
from study.analysis.mixed_models import glmm_section  # noqa: E402
from study.analysis.mrmc_sections import mrmc_section  # noqa: E402
from study.analysis.reads import prepare_reads  # noqa: E402
from study.analysis.simulated_reads import shaped_reads, simulate_reads  # noqa: E402
from study.analysis.study_analysis import DEFAULTS, analyze_frame  # noqa: E402
from testsupport.glmer import BLME_HINT, INSTALL_HINT, glmer_available, run_glmer  # noqa: E402

GOAL_S = 30.0
LEVELS = ("resident", "fellow", "consultant")
FALLBACKS = [  # (what it shows, shaped_reads arguments)
    ("full model (3 + 3 readers)", dict(readers_per_level=(3, 3), n_cases=40, seed=1)),
    ("empty cell: no interaction", dict(readers_per_level=(3, 1), n_cases=40, n_arms=2, design="multi_arm",
                                        partway=1, seed=2)),
    ("one reader per level: no level", dict(readers_per_level=(1, 1, 1), n_cases=57, n_arms=2, design="multi_arm",
                                            seed=3)),
    ("one reader: no reader effect", dict(readers_per_level=(1,), n_cases=60, seed=4)),
    ("separation: blme priors", dict(readers_per_level=(3, 3), n_cases=20, cells={("ai", 0): "perfect"}, seed=2)),
]


def _timed(fn):
    t0 = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - t0


def speed(readers: int, cases: int, repeats: int) -> None:
    df = prepare_reads(simulate_reads(n_readers=readers, n_cases=cases, seed=1, sequential=False),
                       level_order=LEVELS)
    print(f"== whole analysis: {readers} readers x {cases} cases x 2 conditions = {len(df)} readings, "
          f"{DEFAULTS.n_boot} bootstrap replicates")
    times = [_timed(lambda: analyze_frame(df, DEFAULTS))[1] for _ in range(repeats)]
    best = min(times)
    print(f"analyze_frame: {best:.1f} s (best of {repeats}; all {', '.join(f'{t:.1f}' for t in times)}); "
          f"goal <= {GOAL_S:.0f} s: {'met' if best <= GOAL_S else 'NOT met'} ({best / GOAL_S:.2f} of the goal)")
    levels = list(LEVELS)
    for name, fn in (("bootstrap differences", lambda: descriptive.bootstrap_differences(df, n_boot=1000)),
                     ("GLMM with its ladder", lambda: glmm_section(df, levels)),
                     ("MRMC (AUC, percent correct)", lambda: mrmc_section(df, 0.05))):
        print(f"  {name}: {_timed(fn)[1]:.1f} s")


def agreement() -> None:
    print("== GLMM fallbacks against R (same formula; largest |difference| of a fixed effect, SE ratio range)")
    have_lme4, have_blme = glmer_available(), glmer_available("blme")
    if not have_lme4:
        print(f"skipped: {INSTALL_HINT}")
        return
    for what, shape in FALLBACKS:
        n_levels = len(shape["readers_per_level"])
        df = prepare_reads(shaped_reads(**shape), level_order=[f"L{i}" for i in range(n_levels)])
        levels = [str(x) for x in df["level"].cat.categories]
        (glmm, _, _), secs = _timed(lambda: glmm_section(df, levels))
        prior = bool(glmm["separation"])
        if prior and not have_blme:
            print(f"{what}: {glmm['formula']} (priors) - R comparison skipped: {BLME_HINT}")
            continue
        data = df[["reader", "level", "case", "condition", "correct"]].astype({"condition": str, "level": str})
        ref = run_glmer(data, glmm["formula"], reference_levels={"level": levels[0]} if len(levels) > 1 else None,
                        fixef_prior=prior)
        ours = {fe["term"]: fe for fe in glmm["fixed_effects"]}
        diff = max(abs(ours[r["term"]]["estimate"] - r["estimate"]) for r in ref["fixed_effects"])
        ratios = [ours[r["term"]]["se"] / r["se"] for r in ref["fixed_effects"]]
        sds = ", ".join(f"{g} SD {glmm['random_effects'][f'{g}_sd']:.3f} vs {ref['random_effects'][f'{g}_sd']:.3f}"
                        for g in ("reader", "case") if f"{g}_sd" in ref["random_effects"])
        print(f"{what}: {glmm['formula']}{' with normal priors (bglmer)' if prior else ''}; {secs:.2f} s; "
              f"max |d estimate| {diff:.1e}, SE ratio {min(ratios):.4f}-{max(ratios):.4f}; {sds}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--readers", type=int, default=40)
    ap.add_argument("--cases", type=int, default=300)
    ap.add_argument("--repeats", type=int, default=2)
    args = ap.parse_args()
    speed(args.readers, args.cases, args.repeats)
    agreement()


if __name__ == "__main__":
    main()
