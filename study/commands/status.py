"""``python -m study status``: what a study holds and how far each reader has got."""

from __future__ import annotations

import argparse
import json
from datetime import datetime

from study.commands._common import add_db_option, add_study_option, open_session, pick_study
from study.domain.timefmt import minute


def configure(parser: argparse.ArgumentParser) -> None:
    add_db_option(parser)
    add_study_option(parser)
    parser.add_argument("--json", action="store_true", help="print the status as JSON")


def run(args: argparse.Namespace) -> int:
    from study.services.investigator import study_summary

    with open_session(args) as session:
        info = study_summary(session, pick_study(session, args.study).id)
    if args.json:
        print(json.dumps(info, indent=2))
        return 0
    print(f"study {info['study']!r} (id {info['id']}): design {info['design']}, seed {info['seed']}, "
          f"{'locked since ' + minute(datetime.fromisoformat(info['locked_at'])) if info['locked_at'] else 'not locked (no answers yet)'}")
    print(f"cases {info['cases']}, AI outputs {info['ai_outputs']}, assignments {info['assignments']}, "
          f"answers {info['answers']}, corrections {info['corrections']}")
    print("design check: " + ("stored assignments match the seed" if info["design_check"] == 0
                              else f"{info['design_check']} difference(s); run `design --verify`"))
    for r in info["readers"]:
        flag = " (revoked)" if r["revoked"] else ""
        print(f"  {r['pseudonym']:<8} {r['level']:<13} {r['done']:>5}/{r['total']:<5}{flag}")
    return 0
