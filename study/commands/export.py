"""``python -m study export``: the long answers table (CSV/Parquet, every version) or an iMRMC input file."""

from __future__ import annotations

import argparse

from study.commands._common import add_db_option, add_study_option, open_session, pick_study


def configure(parser: argparse.ArgumentParser) -> None:
    add_db_option(parser)
    add_study_option(parser)
    parser.add_argument("--format", choices=("csv", "parquet", "imrmc"), default="csv",
                        help="csv / parquet: one row per answer version (is_latest marks the one to analyse); "
                             "imrmc: iMRMC input file, latest versions only (default csv)")
    parser.add_argument("--out", required=True, metavar="FILE", help="output file")
    parser.add_argument("--task", default="abnormal",
                        help="iMRMC only: 'abnormal' (any finding vs normal, default) or a finding key; "
                             "the score is 50 +/- confidence/2 (see study/export.py)")


def run(args: argparse.Namespace) -> int:
    from study.outputs.export import export

    with open_session(args) as session:
        study = pick_study(session, args.study)
        n = export(session, study.id, args.format, args.out, task=args.task)
    print(f"wrote {n} row(s) of study {study.name!r} to {args.out} ({args.format})")
    return 0
