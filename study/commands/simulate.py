"""``python -m study simulate``: add virtual readers and answer all their items through the workflow.

Run again after an interruption (same ``--readers`` and ``--seed``), it resumes: it answers what the
simulated readers left open and adds no reader or answer twice. Started while another run on the same
study is going (any process), it exits 2 saying so and changes nothing.
"""

from __future__ import annotations

import argparse
import sys

from study.commands._common import add_db_option, add_study_option, pick_study


def configure(parser: argparse.ArgumentParser) -> None:
    add_db_option(parser)
    add_study_option(parser)
    parser.add_argument("--readers", type=int, default=33, help="number of simulated readers (default 33)")
    parser.add_argument("--seed", type=int, default=0, help="simulation seed (default 0): same seed, same answers")
    parser.add_argument("--show-codes", action="store_true",
                        help="print the simulated readers' access codes (stored hashed; not shown otherwise)")
    parser.add_argument("--quiet", action="store_true", help="no per-reader progress lines")


def run(args: argparse.Namespace) -> int:
    from study.jobs.simulate_readers import simulate
    from study.storage import db

    _engine, factory = db.open_database(args.db)
    with factory() as session:
        study = pick_study(session, args.study)
        study_id, name = study.id, study.name
    log = None if args.quiet else (lambda line: print(line, file=sys.stderr))
    report = simulate(factory, study_id, args.readers, seed=args.seed, log=log)
    if report.resumed:
        print(f"resumed: {report.readers_left} of {len(report.readers)} simulated readers had answers left")
    more = " more" if report.resumed else ""
    print(f"study {name!r}: {len(report.readers)} simulated reader(s) answered {report.answers}{more} of "
          f"{report.assignments} assignment(s) (seed {args.seed})")
    if args.show_codes and report.resumed and not report.codes:
        print("  access codes: shown only by the run that created the readers (stored hashed)")
    if args.show_codes:
        for pseudonym, code in report.codes.items():
            print(f"  {pseudonym}: {code}")
    return 0
