"""``python -m study mrmc``: OR/Hillis MRMC analysis of a CSV, as JSON or a readable report."""

from __future__ import annotations

import argparse
import json
import math
import sys


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--input", required=True, metavar="FILE.csv",
                        help="long format: reader, modality, case, truth, rating "
                             "(or reader, modality, case, correct for percent correct; "
                             "or truth and a 0/1 call for sensitivity/specificity/pc without --threshold)")
    parser.add_argument("--covariance", choices=("jackknife", "delong", "unbiased"), default="jackknife",
                        help="error covariance estimator (default: jackknife over cases; delong: AUC only; "
                             "unbiased: U-statistic, also for designs that are not fully crossed)")
    parser.add_argument("--fom", choices=("auc", "sensitivity", "specificity", "pc", "percent_correct"),
                        default="auc",
                        help="figure of merit (default: empirical AUC; pc = accuracy against truth; "
                             "percent_correct = mean of a 0/1 'correct' column)")
    parser.add_argument("--threshold", type=float, default=None, metavar="T",
                        help="sensitivity/specificity/pc: a reading is positive when rating >= T "
                             "(default: use the 0/1 'call' column)")
    parser.add_argument("--incomplete", action="store_true",
                        help="accept a design that is not fully crossed with the jackknife (split-plot, nested, "
                             "readers who skipped cases); covariance 'unbiased' always accepts one")
    parser.add_argument("--cluster", default=None, metavar="COLUMN",
                        help="jackknife over the levels of this column (e.g. patient) instead of over cases, "
                             "for patients with several photographs")
    parser.add_argument("--alpha", type=float, default=0.05, help="1 - confidence level (default 0.05)")
    parser.add_argument("--json", action="store_true", help="print the full result as JSON")


def run(args: argparse.Namespace) -> int:
    from study.analysis.stats.mrmc import BINARY_FIGURES_OF_MERIT, binary_mrmc_analysis, mrmc_analysis

    common = {"fom": args.fom, "covariance": args.covariance, "alpha": args.alpha, "cluster": args.cluster,
              "incomplete": args.incomplete}
    if args.fom in BINARY_FIGURES_OF_MERIT:
        result = binary_mrmc_analysis(args.input, threshold=args.threshold, **common)
    elif args.threshold is not None:
        raise ValueError(f"--threshold applies to {', '.join(BINARY_FIGURES_OF_MERIT)}, not to --fom {args.fom}.")
    else:
        result = mrmc_analysis(args.input, **common)
    if args.json:
        json.dump(result.to_dict(), sys.stdout, indent=2, allow_nan=False)
        sys.stdout.write("\n")
    else:
        sys.stdout.write(format_report(result))
    return 0


def _f(x: float, width: int = 12) -> str:
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "n/a".rjust(width)
    if math.isinf(x):
        return "inf".rjust(width)
    return f"{x:{width}.8f}"


def _ci(ci) -> str:
    if any(x is None or math.isnan(x) for x in ci):
        return "not estimable (no variance)"
    return f"({ci[0]:.8f}, {ci[1]:.8f})"


def _p(p) -> str:
    return "n/a" if p is None or math.isnan(p) else f"{p:.4g}"


_NAMES = {"auc": "AUC", "percent_correct": "Percent correct", "sensitivity": "Sensitivity",
          "specificity": "Specificity", "pc": "Accuracy (pc)"}


def format_report(result) -> str:
    """Plain-text report in the order OR-DBM MRMC prints it."""
    lines: list[str] = []
    add = lines.append
    name = _NAMES.get(result.fom, result.fom)
    add(f"Obuchowski-Rockette MRMC analysis ({name}, {result.covariance} covariance)")
    add(f"{len(result.readers)} readers x {len(result.modalities)} modalities x {result.n_cases} cases")
    d = result.to_dict()
    if d["positive"]:
        add(f"positive reading: {d['positive']}")
    add(f"figure of merit over {d['population']}: {d['n_fom_cases']} cases")
    if not d["fully_crossed"]:
        add(f"incomplete design: {d['n_readings']} of "
            f"{len(result.readers) * len(result.modalities) * result.n_cases} readings")
    if result.cluster:
        add(f"jackknife over {result.n_clusters} levels of {result.cluster!r} (each leaves out all their cases)")
    add("")
    add("Figure of merit per reader")
    add("reader".ljust(12) + "".join(str(m).rjust(14) for m in result.modalities))
    for j, r in enumerate(result.readers):
        add(str(r).ljust(12) + "".join(f"{result.theta[i, j]:14.8f}" for i in range(len(result.modalities))))
    add("average".ljust(12) + "".join(f"{v:14.8f}" for v in result.per_modality.values()))
    add("")
    c = result.components
    add("Variance components")
    for label, value in (("MS(T)", c.ms_t), ("MS(R)", c.ms_r), ("MS(T*R)", c.ms_tr),
                         ("Var(R)", c.var_r), ("Var(T*R)", c.var_tr), ("Cov1", c.cov1),
                         ("Cov2", c.cov2), ("Cov3", c.cov3), ("Var(Error)", c.var_error)):
        add(f"  {label:<11}{value:16.10f}")
    for title, test in (("Random readers, random cases (RRRC)", result.rrrc),
                        ("Fixed readers, random cases (FRRC)", result.frrc),
                        ("Random readers, fixed cases (RRFC)", result.rrfc)):
        add("")
        add(title)
        stat = f"chi-square({test.ndf}) = {test.chi2:.6f}" if test.chi2 is not None else (
            f"F({test.ndf}, {test.ddf:.4f}) = {test.F:.6f}")
        add(f"  {stat}, p = {test.p:.6g}" if not math.isnan(test.p) else
            "  no test: the variance to test against is zero (every reader's difference is the same)")
        add("  comparison       difference     std error            df   95% CI")
        for cmp in test.comparisons:
            pair = f"{cmp.modalities[0]} - {cmp.modalities[1]}"
            add(f"  {pair:<14}{_f(cmp.diff, 13)}{_f(cmp.se, 14)}{_f(cmp.df, 14)}   {_ci(cmp.ci)}  p = {_p(cmp.p)}")
        add("  modality         estimate     std error            df   95% CI")
        for mod, est in test.per_modality.items():
            add(f"  {str(mod):<14}{_f(est.fom, 13)}{_f(est.se, 14)}{_f(est.df, 14)}   {_ci(est.ci)}")
        if test.per_reader:
            add("  reader  comparison   difference     std error   95% CI")
            for cmp in test.per_reader:
                pair = f"{cmp.modalities[0]} - {cmp.modalities[1]}"
                add(f"  {str(cmp.reader):<8}{pair:<11}{_f(cmp.diff, 13)}{_f(cmp.se, 14)}   {_ci(cmp.ci)}")
    if result.bdg:
        add("")
        add("Random readers, random cases: U-statistic variance with BDG df (as iMRMC)")
        add("  comparison       difference     std error            df   95% CI")
        for cmp in result.bdg["comparisons"]:
            pair = " - ".join(cmp["modalities"])
            add(f"  {pair:<14}{_f(cmp['diff'], 13)}{_f(cmp['se'], 14)}{_f(cmp['df'], 14)}   {_ci(cmp['ci'])}"
                f"  p = {_p(cmp['p'])}")
        add("  modality         estimate     std error            df   95% CI")
        for mod, est in result.bdg["per_modality"].items():
            add(f"  {mod:<14}{_f(est['fom'], 13)}{_f(est['se'], 14)}{_f(est['df'], 14)}   {_ci(est['ci'])}")
    add("")
    return "\n".join(lines)
