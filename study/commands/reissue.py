"""``python -m study reissue READER --reason TEXT``: a new access code for a reader, printed once.

The old code stops working (a revoked reader is active again). The new code is printed (or written with
``--codes-out``) this once and stored only as its argon2 hash; it is never logged or audited.
"""

from __future__ import annotations

import argparse
import csv
import os
import sys

from study.commands._common import add_actor_option, add_reader_operation_options, open_session, reader_of


def configure(parser: argparse.ArgumentParser) -> None:
    add_reader_operation_options(parser)
    parser.add_argument("--codes-out", metavar="FILE.csv",
                        help="write the pseudonym and the new code here (created 0600, never overwritten) "
                             "instead of printing them")
    add_actor_option(parser)


def run(args: argparse.Namespace) -> int:
    from study.domain import reader_operations
    from study.outputs.export import csv_safe

    out = sys.stdout
    if args.codes_out:  # opened first: an existing file refuses before any code is replaced
        try:
            fd = os.open(args.codes_out, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            raise ValueError(f"{args.codes_out} exists; codes are never written over a file") from None
        out = os.fdopen(fd, "w", newline="")
    try:
        with open_session(args) as session:
            reader = reader_of(session, args)
            code = reader_operations.reissue_code(session, reader.id, actor=args.actor, reason=args.reason)
            session.commit()  # the code is written only once it is the reader's
            writer = csv.writer(out)
            writer.writerow(["pseudonym", "display_name", "level", "access_code"])
            writer.writerow([csv_safe(v) for v in (reader.pseudonym, reader.display_name, reader.level, code)])
    except BaseException:
        if out is not sys.stdout:
            out.close()
            os.unlink(args.codes_out)
        raise
    if out is not sys.stdout:
        out.close()
    print(f"new access code for {reader.pseudonym}; the old one no longer works. The code is shown only this "
          "once and stored hashed", file=sys.stderr)
    return 0
