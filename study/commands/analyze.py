"""``python -m study analyze``: the study's analysis as an HTML report and JSON results.

With ``--db``/``--study`` it runs ``study.analysis.study_inputs.analyze_study``, the call the app makes,
with the same defaults (``study_analysis.DEFAULTS``, the study's level order and fast-read threshold), so
the two give the same results; ``--completed-only`` and ``--until`` set the data cut-off. ``--reads``
analyses an outside CSV (``study.outputs.report.analyze_reads``).
"""

from __future__ import annotations

import argparse
from datetime import datetime, timezone

from study.commands._common import add_db_option, add_study_option


def configure(parser: argparse.ArgumentParser) -> None:
    src = parser.add_mutually_exclusive_group(required=False)
    src.add_argument("--reads", metavar="FILE.csv",
                     help="reads CSV with at least reader, level, case, condition, correct (0/1)")
    add_db_option(parser)
    add_study_option(parser)
    parser.add_argument("--out", metavar="report.html", help="write the self-contained HTML report here")
    parser.add_argument("--json", metavar="results.json", help="write the results dict as JSON here")
    parser.add_argument("--level-order", metavar="A,B,C", default=None,
                        help="experience levels in study order (first = reference); default alphabetical "
                             "or the study's configured order with --db")
    parser.add_argument("--normal-label", default=None, help="answer/reference label meaning 'normal'")
    parser.add_argument("--n-boot", type=int, default=None, help="bootstrap replicates (default 1000)")
    parser.add_argument("--seed", type=int, default=None, help="bootstrap seed (default 0)")
    parser.add_argument("--alpha", type=float, default=None, help="1 - confidence level (default 0.05)")
    parser.add_argument("--completed-only", action="store_true",
                        help="cut-off: only readers who have answered every reading (with --db)")
    parser.add_argument("--until", metavar="YYYY-MM-DDTHH:MM", default=None,
                        help="cut-off: only answers submitted up to this time, UTC unless an offset is given "
                             "(with --db)")


def _until(text: str | None) -> datetime | None:
    from study.cli import UsageError

    if not text:
        return None
    try:
        value = datetime.fromisoformat(text)
    except ValueError:
        raise UsageError(f"--until {text!r} is not a time like 2026-12-01T14:00") from None
    return value.astimezone(timezone.utc).replace(tzinfo=None) if value.tzinfo else value


def run(args: argparse.Namespace) -> int:
    from study.analysis.study_analysis import DEFAULTS, Cutoff
    from study.cli import UsageError
    from study.outputs.report import analyze_reads, write_report

    if not args.out and not args.json:
        raise UsageError("nothing to write: give --out report.html and/or --json results.json")
    if args.reads is None and args.db is None and args.study is None:
        raise UsageError("give --reads FILE.csv, or --db URL (and --study NAME) to read the study's answers")
    level_order = tuple(args.level_order.split(",")) if args.level_order else None
    if args.reads is not None:
        if args.completed_only or args.until:
            raise UsageError("--completed-only and --until need the study database (--db), not --reads")
        results = analyze_reads(args.reads, level_order=level_order, n_boot=args.n_boot or DEFAULTS.n_boot,
                                seed=DEFAULTS.seed if args.seed is None else args.seed,
                                alpha=args.alpha or DEFAULTS.alpha, normal_label=args.normal_label or DEFAULTS.normal_label)
    else:
        from study.analysis.study_inputs import analyze_study
        from study.commands._common import open_session, pick_study

        cutoff = Cutoff(completed_only=args.completed_only, until=_until(args.until))
        with open_session(args) as session:
            study = pick_study(session, args.study)
            try:
                results = analyze_study(session, study.id, cutoff, n_boot=args.n_boot, seed=args.seed,
                                        alpha=args.alpha, level_order=level_order, normal_label=args.normal_label)
            except ValueError as exc:
                raise UsageError(str(exc)) from None
    write_report(results, args.out, args.json)
    print(results["summary"])
    for path in (args.out, args.json):
        if path:
            print(f"wrote {path}")
    return 0
