"""``python -m study power``: analytic OR sample size (Hillis and Obuchowski) from a pilot or its components."""

from __future__ import annotations

import argparse
import json
import sys

_COMPONENTS = ("var_tr", "cov1", "cov2", "cov3", "var_error")


def _ints(text: str) -> list[int]:
    try:
        values = [int(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers, got {text!r}") from None
    if not values:
        raise argparse.ArgumentTypeError("expected at least one integer")
    return values


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--pilot", metavar="FILE.csv",
                        help="pilot reads: reader, modality, case, truth, rating (the mrmc input format)")
    parser.add_argument("--fom", default="auc", help="figure of merit of the pilot analysis (default auc)")
    parser.add_argument("--covariance", default="jackknife", help="pilot error covariance (default jackknife)")
    for name in _COMPONENTS:
        parser.add_argument(f"--{name.replace('_', '-')}", type=float, default=None,
                            help="OR variance component, instead of --pilot")
    parser.add_argument("--pilot-cases", type=int, default=None, help="K*: cases in the pilot (with components)")
    parser.add_argument("--effect", type=float, default=None,
                        help="true difference in figure of merit (default: the pilot's observed difference, first "
                             "minus second modality); with --margin, new minus comparator")
    parser.add_argument("--readers", type=int, required=True, help="J: readers in the planned study")
    parser.add_argument("--cases", type=int, required=True, help="K: cases in the planned study")
    parser.add_argument("--alpha", type=float, default=0.05, help="significance level (default 0.05)")
    parser.add_argument("--margin", type=float, default=None,
                        help="non-inferiority margin M >= 0: one-sided test of H0 effect <= -M at level alpha")
    parser.add_argument("--grid-readers", type=_ints, default=None, metavar="J1,J2,...",
                        help="also print power for these readers x --grid-cases")
    parser.add_argument("--grid-cases", type=_ints, default=None, metavar="K1,K2,...")
    parser.add_argument("--target-power", type=float, default=None,
                        help="also print the fewest cases reaching this power at --readers, per analysis")
    parser.add_argument("--frrc-reference", choices=("f", "chi2"), default="f",
                        help="FRRC power: refer the statistic to F(1, K-1) (default, as RJafroc's "
                             "SsPowerGivenJKOrVarComp) or to chi-square(1) (RJafroc 3.6.1, Hillis et al. 2011)")
    parser.add_argument("--json", action="store_true", help="print JSON")


def _components(args):
    from study.analysis.stats.mrmc_sizing import ORComponents, pilot_components
    from study.cli import UsageError

    given = {n: getattr(args, n) for n in _COMPONENTS}
    if args.pilot:
        if any(v is not None for v in given.values()):
            raise UsageError("give either --pilot or the variance components, not both")
        return pilot_components(args.pilot, fom=args.fom, covariance=args.covariance)
    missing = [f"--{n.replace('_', '-')}" for n, v in given.items() if v is None]
    if missing or args.pilot_cases is None:
        raise UsageError("give --pilot CSV, or all of --var-tr --cov1 --cov2 --cov3 --var-error --pilot-cases")
    if args.effect is None:
        raise UsageError("--effect is required with variance components")
    return ORComponents(**given, n_cases=args.pilot_cases)


def run(args: argparse.Namespace) -> int:
    from study.analysis.stats.mrmc_sizing import ANALYSES, cases_for_power, or_power, power_grid
    from study.cli import UsageError

    comp = _components(args)
    try:
        res = or_power(comp, args.effect, args.readers, args.cases, args.alpha, args.margin, args.frrc_reference)
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    out = {k: {"power": r.power, "ddf": r.ddf, "ncp": r.ncp, "critical_value": r.critical_value, "test": r.test}
           for k, r in res.items()}
    out["settings"] = {"readers": args.readers, "cases": args.cases, "effect": res["rrrc"].effect,
                       "alpha": args.alpha, "margin": args.margin, "frrc_reference": args.frrc_reference}
    out["components"] = comp.to_dict()
    if args.grid_readers or args.grid_cases:
        grid = power_grid(comp, args.effect, args.grid_readers or [args.readers], args.grid_cases or [args.cases],
                          args.alpha, args.margin, args.frrc_reference)
        out["grid"] = grid.to_dict(orient="records")
    if args.target_power is not None:
        out["cases_for_power"] = {
            "target": args.target_power, "readers": args.readers,
            **{k: cases_for_power(comp, args.effect, args.readers, args.target_power, args.alpha, args.margin, k,
                                  frrc_reference=args.frrc_reference) for k in ANALYSES}}
    if args.json:
        json.dump(out, sys.stdout, indent=2, allow_nan=False)
        sys.stdout.write("\n")
        return 0
    w = sys.stdout.write
    w(f"OR sample size (Hillis-Obuchowski): {args.readers} readers x {args.cases} cases, "
      f"effect {res['rrrc'].effect:.6g}, alpha {args.alpha}"
      + (f", non-inferiority margin {args.margin}" if args.margin is not None else "") + "\n")
    for k, r in res.items():
        ddf = "inf" if r.ddf is None else f"{r.ddf:.4f}"
        w(f"  {k.upper()}  power {r.power:.4f}  ddf {ddf}  ncp {r.ncp:.4f}  ({r.test})\n")
    for row in out.get("grid", []):
        w(f"  J={row['readers']:<4} K={row['cases']:<6} " +
          "  ".join(f"{k.upper()} {row[f'power_{k}']:.3f}" for k in ANALYSES) + "\n")
    if "cases_for_power" in out:
        c = out["cases_for_power"]
        w(f"  fewest cases for power {c['target']}: " + ", ".join(f"{k.upper()} {c[k]}" for k in ANALYSES) + "\n")
    return 0
