"""``python -m study override-washout READER --reason TEXT``: open a reader's next session before the
washout ends (an investigator's decision, audited with the reason)."""

from __future__ import annotations

import argparse

from study.commands._common import add_actor_option, add_reader_operation_options, open_session, reader_of


def configure(parser: argparse.ArgumentParser) -> None:
    add_reader_operation_options(parser)
    parser.add_argument("--session", type=int, default=None, metavar="N",
                        help="the session to open (default: the reader's next session)")
    add_actor_option(parser)


def run(args: argparse.Namespace) -> int:
    from study.domain import reader_operations

    with open_session(args) as session:
        reader = reader_of(session, args)
        number = reader_operations.override_washout(session, reader.id, args.session, actor=args.actor, reason=args.reason)
        session.commit()
        print(f"session {number} of {reader.pseudonym} is open now (washout overridden; audited)")
    return 0
