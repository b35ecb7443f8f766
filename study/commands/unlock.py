"""``python -m study unlock --reason TEXT``: lift the sign-in waits (``study.domain.lockout``) for the
investigator (default), a reader's code, a client address, or everyone; audited with the actor and reason.

Why a command: wrong tries slow further tries down for up to a quarter of an hour after the last one. When the
study team knows who mistyped (a phone call, a help-desk ticket), this lets them in at once, on the server
where the database is, without the page having to trust anyone."""

from __future__ import annotations

import argparse

from study.commands._common import add_actor_option, add_db_option, add_study_option, open_session, pick_study


def configure(parser: argparse.ArgumentParser) -> None:
    who = parser.add_mutually_exclusive_group()
    who.add_argument("--reader", metavar="READER", help="a reader's pseudonym (R001) or id: their code's waits")
    who.add_argument("--address", metavar="IP", help="a client address (e.g. a hospital's NAT): its waits")
    who.add_argument("--all", action="store_true", help="every scope, the whole server's count included")
    parser.add_argument("--reason", required=True, help="why (recorded in the audit trail with --actor)")
    add_db_option(parser)
    add_study_option(parser)
    add_actor_option(parser)


def _scopes(args: argparse.Namespace) -> list[str] | None:
    from study.cli import UsageError
    from study.domain import client_address, lockout, reader_operations

    if args.all:
        return None
    if args.address is not None:
        address = client_address.normalise(args.address)
        if address is None:
            raise UsageError(f"--address {args.address[:60]!r} is not an IP address (e.g. 203.0.113.7 or 2001:db8::1)")
        return [lockout.address_scope(address)]
    if args.reader is not None:
        with open_session(args) as session:
            study = pick_study(session, args.study)
            reader = reader_operations.find_reader(session, study.id, args.reader)
            if not reader.code_lookup:
                raise UsageError(f"{reader.pseudonym} holds no access code (revoked): there is nothing to unlock")
            return [lockout.reader_code_scope(reader.code_lookup)]
    return [lockout.INVESTIGATOR]


def run(args: argparse.Namespace) -> int:
    from study.services import signin
    from study.storage import db

    scopes = _scopes(args)
    _engine, factory = db.open_database(args.db)
    found = signin.unlock(factory, scopes, actor=args.actor, reason=args.reason)
    what = "every sign-in scope" if scopes is None else ("the investigator's sign-in" if scopes == [signin.lockout.INVESTIGATOR]
                                                         else ", ".join(scopes))
    print(f"unlocked {what}: {len(found)} scope(s) had failures and now wait no longer (audited)")
    return 0
