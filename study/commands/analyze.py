"""``python -m study analyze``: the issue-6 analysis of a study's reads as an HTML report and JSON.

Reads come either from a CSV (``--reads``, standalone) or from the study database via
``study.export`` (``--db``/``--study``), which is imported only when used.
"""

from __future__ import annotations

import argparse

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
    parser.add_argument("--normal-label", default="normal", help="answer/reference label meaning 'normal'")
    parser.add_argument("--n-boot", type=int, default=1000, help="bootstrap replicates (default 1000)")
    parser.add_argument("--seed", type=int, default=0, help="bootstrap seed (default 0)")
    parser.add_argument("--alpha", type=float, default=0.05, help="1 - confidence level (default 0.05)")


def _reads_from_db(args: argparse.Namespace):
    """The study's reads via study.export, plus the configured level order."""
    from study.cli import UsageError

    try:
        import study.export as export
    except ImportError as exc:
        raise UsageError(f"--db needs study.export, which is not available yet ({exc}); export the reads to CSV "
                         "and use --reads FILE.csv") from None
    fn = getattr(export, "answers_table", None)
    if fn is None:
        raise UsageError("study.export has no answers_table(session, study_id) yet; use --reads FILE.csv")
    from study.commands._common import open_session, pick_study

    session = open_session(args)
    try:
        study = pick_study(session, args.study)
        reads = fn(session, study.id)
        levels = [lv["name"] for lv in (study.config or {}).get("levels", []) if "name" in lv] or None
    finally:
        session.close()
    return reads, levels


def run(args: argparse.Namespace) -> int:
    from study.cli import UsageError

    if not args.out and not args.json:
        raise UsageError("nothing to write: give --out report.html and/or --json results.json")
    if args.reads is None and args.db is None and args.study is None:
        raise UsageError("give --reads FILE.csv, or --db URL (and --study NAME) to read the study's export")
    level_order = args.level_order.split(",") if args.level_order else None
    if args.reads is not None:
        reads = args.reads
    else:
        reads, configured = _reads_from_db(args)
        level_order = level_order or configured
    from study.report import write_report

    results = write_report(reads, args.out, args.json, level_order=level_order, n_boot=args.n_boot,
                           seed=args.seed, alpha=args.alpha, normal_label=args.normal_label)
    print(results["summary"])
    for path in (args.out, args.json):
        if path:
            print(f"wrote {path}")
    return 0
