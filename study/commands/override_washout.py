"""``python -m study override-washout READER --reason TEXT``: open a reader's next session before the
washout ends (an investigator's decision, audited with the reason)."""

from __future__ import annotations

import argparse

from study.commands._common import add_db_option, add_study_option, open_session, pick_study


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("reader", metavar="READER", help="the reader's pseudonym (R001) or id")
    parser.add_argument("--reason", required=True, help="why (recorded in the audit trail with --actor)")
    parser.add_argument("--session", type=int, default=None, metavar="N",
                        help="the session to open (default: the reader's next session)")
    add_db_option(parser)
    add_study_option(parser)
    parser.add_argument("--actor", default="investigator", help="name recorded in the audit trail")


def run(args: argparse.Namespace) -> int:
    from study import operations

    with open_session(args) as session:
        study = pick_study(session, args.study)
        reader = operations.find_reader(session, study.id, args.reader)
        number = operations.override_washout(session, reader.id, args.session, actor=args.actor, reason=args.reason)
        print(f"session {number} of {reader.pseudonym} is open now (washout overridden; audited)")
    return 0
