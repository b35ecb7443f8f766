"""``python -m study design``: build the study's assignments from its seed, or verify the stored ones.

Once the study has answers the design is locked: the command then only appends readers who have no
assignments yet (``study.domain.design.extend_design``), and refuses with what to do when there are none."""

from __future__ import annotations

import argparse

from study.commands._common import add_actor_option, add_db_option, add_study_option, open_session, pick_study


def configure(parser: argparse.ArgumentParser) -> None:
    add_db_option(parser)
    add_study_option(parser)
    parser.add_argument("--verify", action="store_true",
                        help="only check that the stored assignments are what the stored seed produces")
    add_actor_option(parser)


def run(args: argparse.Namespace) -> int:
    from study.cli import UsageError
    from study.domain.design import build_design, is_locked, readers_without_assignments, verify_design
    from study.domain.studies import DesignLocked

    with open_session(args) as session:
        study = pick_study(session, args.study)
        if args.verify:
            problems = verify_design(session, study.id)
            for p in problems[:50]:
                print(p)
            print(f"{len(problems)} difference(s) between the database and the seed's plan")
            return 1 if problems else 0
        appending = readers_without_assignments(session, study.id) if is_locked(session, study) else []
        try:
            n = build_design(session, study.id, actor=args.actor)
        except DesignLocked as exc:
            raise UsageError(str(exc)) from exc
        session.commit()
        if appending:
            print(f"study {study.name!r} is locked: appended {n} assignments for {len(appending)} reader(s) "
                  f"without any ({', '.join(appending)}); the other readers' assignments did not change")
        else:
            print(f"built {n} assignments for study {study.name!r} ({study.design}, seed {study.seed})")
    return 0
