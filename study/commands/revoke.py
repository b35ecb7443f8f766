"""``python -m study revoke READER --reason TEXT``: disable a reader's access code (their answers stay)."""

from __future__ import annotations

import argparse

from study.commands._common import add_actor_option, add_reader_operation_options, open_session, reader_of


def configure(parser: argparse.ArgumentParser) -> None:
    add_reader_operation_options(parser)
    add_actor_option(parser)


def run(args: argparse.Namespace) -> int:
    from study.domain import reader_operations

    with open_session(args) as session:
        reader = reader_of(session, args)
        reader_operations.revoke_code(session, reader.id, actor=args.actor, reason=args.reason)
        session.commit()
        print(f"revoked the access code of {reader.pseudonym}; their answers stay. "
              f"`python -m study reissue {reader.pseudonym} --reason ...` gives them a new one.")
    return 0
