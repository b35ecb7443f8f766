"""Time study.analysis.stats.glmm.fit_glmm against lme4::glmer on the same simulated study.

Run from the repository root: ``python bench/bench_glmm.py [--readers 33 --cases 300]``.
glmer's time is the ``glmer()`` call only (measured inside R), not R start-up or CSV reading.
Also prints the agreement of every fixed effect, SE and SD.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from study.analysis.stats.glmm import fit_glmm, simulate_reader_study  # noqa: E402
from testsupport.glmer import INSTALL_HINT, glmer_available, run_glmer  # noqa: E402

FORMULA = "correct ~ condition * experience + (1|reader) + (1|case)"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--readers", type=int, default=33)
    ap.add_argument("--cases", type=int, default=300)
    ap.add_argument("--repeats", type=int, default=3, help="Python fits; the best time is reported")
    ap.add_argument("--seed", type=int, default=1)
    args = ap.parse_args()

    df = simulate_reader_study(args.readers, args.cases, 0.4, 0.3, 1.0, seed=args.seed)
    times = []
    for _ in range(args.repeats):
        t0 = time.perf_counter()
        res = fit_glmm(FORMULA, df)
        times.append(time.perf_counter() - t0)
    py = min(times)
    print(f"data: {args.readers} readers x {args.cases} cases x 2 conditions = {len(df)} rows")
    print(f"fit_glmm: {py:.2f} s (best of {args.repeats}; all {', '.join(f'{t:.2f}' for t in times)}), "
          f"converged={res.converged}, loglik={res.loglik:.4f}")
    if not glmer_available():
        print(f"glmer: skipped ({INSTALL_HINT})")
        return
    ref = run_glmer(df, FORMULA)
    r_time = ref["fit_seconds"]
    print(f"glmer (lme4 {ref['lme4_version']}, bobyqa, nAGQ=1): {r_time:.2f} s, loglik={ref['loglik']:.4f}")
    print(f"ratio fit_glmm / glmer = {py / r_time:.2f}")
    fe = res.fixed_effects.set_index("term")
    print(f"{'term':42s} {'est':>9s} {'glmer':>9s} {'diff':>8s} {'se':>8s} {'glmer':>8s} {'se ratio':>8s}")
    for r in ref["fixed_effects"]:
        o = fe.loc[r["term"]]
        print(f"{r['term']:42s} {o.estimate:9.4f} {r['estimate']:9.4f} {o.estimate - r['estimate']:8.4f} "
              f"{o.se:8.4f} {r['se']:8.4f} {o.se / r['se']:8.3f}")
    for g in ("reader", "case"):
        ours, theirs = res.random_effect_sds[g], ref["random_effects"][f"{g}_sd"]
        print(f"{g}_sd: {ours:.4f} vs glmer {theirs:.4f} (ratio {ours / theirs:.3f})")


if __name__ == "__main__":
    main()
