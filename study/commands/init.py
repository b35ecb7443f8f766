"""``python -m study init CONFIG.toml``: create the database schema and a study from its TOML file."""

from __future__ import annotations

import argparse

from study.commands._common import add_actor_option, add_db_option, open_session


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("config", metavar="CONFIG.toml", help="study configuration (see studies/demo.toml)")
    add_db_option(parser)
    add_actor_option(parser)


def run(args: argparse.Namespace) -> int:
    from study.domain.config import load_config
    from study.domain.studies import create_study

    config, text = load_config(args.config)  # StudyConfigError (a ValueError) lists every problem
    with open_session(args) as session:
        study = create_study(session, config, text, actor=args.actor)
        session.commit()
        print(f"created study {study.name!r} (id {study.id}, design {study.design}, seed {study.seed})")
    return 0
