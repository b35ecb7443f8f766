"""``python -m study revoke READER --reason TEXT``: disable a reader's access code (their answers stay)."""

from __future__ import annotations

import argparse

from study.commands._common import add_db_option, add_study_option, open_session, pick_study


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("reader", metavar="READER", help="the reader's pseudonym (R001) or id")
    parser.add_argument("--reason", required=True, help="why (recorded in the audit trail with --actor)")
    add_db_option(parser)
    add_study_option(parser)
    parser.add_argument("--actor", default="investigator", help="name recorded in the audit trail")


def run(args: argparse.Namespace) -> int:
    from study import operations

    with open_session(args) as session:
        study = pick_study(session, args.study)
        reader = operations.find_reader(session, study.id, args.reader)
        operations.revoke_code(session, reader.id, actor=args.actor, reason=args.reason)
        print(f"revoked the access code of {reader.pseudonym}; their answers stay. "
              f"`python -m study reissue {reader.pseudonym} --reason ...` gives them a new one.")
    return 0
