"""``python -m study demo``: create the demo study (synthetic cases, AI, simulated readers) if it is absent."""

from __future__ import annotations

import argparse

from study.commands._common import add_db_option


def configure(parser: argparse.ArgumentParser) -> None:
    add_db_option(parser)
    parser.add_argument("--cases", type=int, default=60, help="synthetic cases to render (default 60)")
    parser.add_argument("--sim-readers", type=int, default=33, help="simulated readers (default 33)")
    parser.add_argument("--seed", type=int, default=0, help="simulation seed (default 0)")
    parser.add_argument("--model", default=None,
                        help="model spec instead of the bundled demo model (e.g. local-dir:FOLDER)")
    parser.add_argument("--checkpoint", default=None,
                        help="weights file for --model ARCHITECTURE (an error with the demo model or a local-dir: "
                             "model, which carry their own weights)")


def run(args: argparse.Namespace) -> int:
    from revision_core.commands._model_args import check_model_arguments
    from study.jobs.demo_study import ensure_demo_study

    check_model_arguments(args.model, args.checkpoint)  # the demo model and local-dir: carry their own weights
    ensure_demo_study(args.db, n_cases=args.cases, n_sim_readers=args.sim_readers, seed=args.seed,
                      model=args.model, checkpoint=args.checkpoint)
    return 0
