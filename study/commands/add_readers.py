"""``python -m study add-readers``: add readers from a CSV and print each new access code once.

In a study that already has answers each new reader is appended to the locked design with a full set of
readings (``study.domain.readers.add_reader``); the command says so."""

from __future__ import annotations

import argparse
import csv
import os
import sys

from study.commands._common import add_actor_option, add_db_option, add_study_option, open_session, pick_study

OPTIONAL = ("specialty", "site", "pseudonym")


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("csv", metavar="READERS.csv",
                        help="columns: display_name, years_experience; optional specialty, site, pseudonym")
    add_db_option(parser)
    add_study_option(parser)
    parser.add_argument("--codes-out", metavar="FILE.csv",
                        help="write pseudonym, display name and access code here (created 0600, never overwritten) "
                             "instead of printing them")
    add_actor_option(parser)


def _read(path: str, config) -> list:
    from study.cli import UsageError
    from study.domain.readers import parse_readers_csv

    with open(path, newline="", encoding="utf-8-sig") as fh:
        rows, problems = parse_readers_csv(fh.read(), config)
    if problems:
        raise UsageError(f"{path}: nothing added, {len(problems)} problem(s):\n  " + "\n  ".join(problems))
    return rows


def run(args: argparse.Namespace) -> int:
    from study.domain.design import is_locked
    from study.domain.readers import add_reader
    from study.domain.studies import study_config
    from study.outputs.export import csv_safe

    with open_session(args) as session:  # checked against the study's levels before anything is written
        rows = _read(args.csv, study_config(pick_study(session, args.study)))
    out = sys.stdout
    if args.codes_out:
        fd = os.open(args.codes_out, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        out = os.fdopen(fd, "w", newline="")
    added = []
    try:
        with open_session(args) as session:
            study = pick_study(session, args.study)
            locked = is_locked(session, study)
            try:   # one transaction: a failure at any row adds nobody, and no code is printed
                for row in rows:
                    reader, code = add_reader(session, study.id, display_name=row.display_name,
                                              years_experience=row.years_experience, specialty=row.specialty,
                                              site=row.site, pseudonym=row.pseudonym, actor=args.actor)
                    added.append((reader.pseudonym, reader.display_name, reader.level, code))
                session.commit()
            except BaseException:
                session.rollback()
                raise
        writer = csv.writer(out)
        writer.writerow(["pseudonym", "display_name", "level", "access_code"])
        writer.writerows([csv_safe(v) for v in row] for row in added)
    except BaseException:
        if out is not sys.stdout:
            out.close()
            os.unlink(args.codes_out)   # nothing was added: leave no codes file behind
            out = sys.stdout
        raise
    finally:
        if out is not sys.stdout:
            out.close()
    print(f"added {len(rows)} reader(s); access codes are shown only this once and stored hashed", file=sys.stderr)
    if locked:
        print("the study has answers, so its design is locked: each new reader was given a full set of readings "
              "(appended in the reader group with the fewest readers); `python -m study design --verify` checks it",
              file=sys.stderr)
    else:
        print("build the design again (`python -m study design`) so the new readers get their readings",
              file=sys.stderr)
    return 0
