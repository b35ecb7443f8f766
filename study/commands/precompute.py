"""``python -m study precompute``: zero-shot AI suggestions for every case lacking them (resumable)."""

from __future__ import annotations

import argparse
import sys

from study.commands._common import add_db_option, add_study_option, open_session, pick_study


def configure(parser: argparse.ArgumentParser) -> None:
    add_db_option(parser)
    add_study_option(parser)
    parser.add_argument("--store", metavar="DIR", default=None,
                        help="root of the image store (default: where the study's import put its photographs)")
    parser.add_argument("--batch-size", type=int, default=16, help="images per batch and per commit (default 16)")
    parser.add_argument("--device", default=None, help="cpu, cuda or mps (default: the best available)")
    parser.add_argument("--workers", type=int, default=None,
                        help="processes for the saliency maps (default: every CPU core; one on a GPU)")


def run(args: argparse.Namespace) -> int:
    from study.jobs.precompute import precompute

    with open_session(args) as session:
        study = pick_study(session, args.study)
        report = precompute(session, study.id, store_root=args.store, batch_size=args.batch_size, device=args.device,
                            workers=args.workers)
    print(f"model {report.model_version}: stored {report.stored}, already done {report.already_done}, "
          f"failed {len(report.failed)}" + (f", saliency maps failed {len(report.saliency_failed)}"
                                              if report.saliency_failed else ""))
    for key, reason in {**report.failed, **report.saliency_failed}.items():
        print(f"  {key}: {reason}", file=sys.stderr)
    return 1 if report.failed else 0
