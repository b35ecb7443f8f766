"""Options and helpers shared by the study database commands (``--db``, ``--study``)."""

from __future__ import annotations

import argparse

from sqlalchemy import select


def add_db_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--db", metavar="URL", default=None,
                        help="database URL (default: $REVISION_DB_URL, then .streamlit/secrets.toml [database] url, "
                             "then the embedded SQLite file data/study.sqlite)")


def add_study_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--study", metavar="NAME_OR_ID", default=None,
                        help="which study (default: the only study in the database)")


def add_actor_option(parser: argparse.ArgumentParser, help: str = "name recorded in the audit trail") -> None:
    parser.add_argument("--actor", default="investigator", help=help)


def add_reader_operation_options(parser: argparse.ArgumentParser) -> None:
    """READER, --reason, --db and --study: what every audited operation on one reader takes (revoke,
    reissue, override-washout); pair with :func:`reader_of`."""
    parser.add_argument("reader", metavar="READER", help="the reader's pseudonym (R001) or id")
    parser.add_argument("--reason", required=True, help="why (recorded in the audit trail with --actor)")
    add_db_option(parser)
    add_study_option(parser)


def reader_of(session, args: argparse.Namespace):
    """The reader named by READER in the study chosen by --study (a clear error for an unknown one)."""
    from study.domain import reader_operations

    study = pick_study(session, args.study)
    return reader_operations.find_reader(session, study.id, args.reader)


def open_session(args: argparse.Namespace):
    """Migrate the database to the current schema and return a session (caller closes it)."""
    from study.storage import db

    _engine, factory = db.open_database(args.db)
    return factory()


def pick_study(session, choice: str | None):
    from study.cli import UsageError
    from study.domain.studies import get_study
    from study.storage.models import Study

    if choice is not None:
        return get_study(session, int(choice) if choice.isdigit() else choice)
    studies = list(session.scalars(select(Study).order_by(Study.id)))
    if len(studies) != 1:
        names = ", ".join(s.name for s in studies) or "none; run `python -m study init CONFIG.toml` first"
        raise UsageError(f"choose a study with --study (studies: {names})")
    return studies[0]
