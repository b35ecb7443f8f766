"""``python -m study audit --out FILE.csv``: the study's audit trail as CSV, with filters.

Cells a spreadsheet would run as a formula get a leading ``'`` (``study.outputs.export.csv_safe``). The export is
itself audited (who took which events, and a hash of the file).
"""

from __future__ import annotations

import argparse
import os
import sys

from study.commands._common import add_actor_option, add_db_option, add_study_option, open_session, pick_study


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--out", required=True, metavar="FILE.csv", help="where to write the CSV")
    parser.add_argument("--force", action="store_true", help="replace FILE.csv if it exists")
    parser.add_argument("--by", action="append", default=[], metavar="ACTOR",
                        help="only events by this actor (repeatable; a trailing * matches a prefix: 'reader:*')")
    parser.add_argument("--action", action="append", default=[], metavar="ACTION",
                        help="only this event type (repeatable; 'reader.*' matches a prefix)")
    parser.add_argument("--reader", metavar="PSEUDONYM",
                        help="only events by or about this reader (their readings and answers too)")
    parser.add_argument("--since", metavar="DATE", help="from this day or time (2026-12-01 or 2026-12-01T14:05), "
                                                        "in REVISION_TIMEZONE unless the time names its zone")
    parser.add_argument("--until", metavar="DATE", help="up to this day (inclusive) or time (exclusive)")
    parser.add_argument("--study-only", action="store_true",
                        help="leave out events tied to no study (investigator sign-ins, failed sign-ins)")
    add_db_option(parser)
    add_study_option(parser)
    add_actor_option(parser, help="name recorded in the audit trail for this export")


def run(args: argparse.Namespace) -> int:
    from study.domain import audit_trail, timefmt
    from study.outputs import audit_export

    if os.path.exists(args.out) and not args.force:
        raise ValueError(f"{args.out} exists; pass --force to replace it")
    flt = audit_trail.AuditFilter(actors=tuple(args.by), actions=tuple(args.action), reader=args.reader,
                                 since=timefmt.parse_when(args.since) if args.since else None,
                                 until=timefmt.parse_when(args.until, end=True) if args.until else None,
                                 with_global=not args.study_only)
    with open_session(args) as session:
        study = pick_study(session, args.study)
        text, n = audit_export.export_audit(session, study.id, flt, actor=args.actor)
        session.commit()
    with open(args.out, "w", encoding="utf-8", newline="") as fh:
        fh.write(text)
    print(f"wrote {n} audit event(s) of study {study.name!r} to {args.out}", file=sys.stderr)
    return 0
