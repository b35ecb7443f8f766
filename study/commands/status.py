"""``python -m study status``: what a study holds and how far each reader has got."""

from __future__ import annotations

import argparse
import json

from sqlalchemy import func, select

from study.commands._common import add_db_option, add_study_option, open_session, pick_study


def configure(parser: argparse.ArgumentParser) -> None:
    add_db_option(parser)
    add_study_option(parser)
    parser.add_argument("--json", action="store_true", help="print the status as JSON")


def collect(session, study) -> dict:
    """Counts and per-reader progress of one study (read-only)."""
    from study.design import verify_design
    from study.models import AIOutput, Answer, Assignment, Case, Reader

    def count(model, *where):
        return session.scalar(select(func.count()).select_from(model).where(*where)) or 0

    answered = (select(Assignment.reader_id, func.count(func.distinct(Answer.assignment_id)))
                .join(Answer, Answer.assignment_id == Assignment.id)
                .where(Assignment.study_id == study.id).group_by(Assignment.reader_id))
    done = dict(session.execute(answered).all())
    totals = dict(session.execute(select(Assignment.reader_id, func.count()).where(Assignment.study_id == study.id)
                                  .group_by(Assignment.reader_id)).all())
    readers = [{"pseudonym": r.pseudonym, "level": r.level, "site": r.site, "revoked": r.revoked_at is not None,
                "done": done.get(r.id, 0), "total": totals.get(r.id, 0)}
               for r in session.scalars(select(Reader).where(Reader.study_id == study.id).order_by(Reader.pseudonym))]
    case_ids = select(Case.id).where(Case.study_id == study.id)
    in_study = Answer.assignment_id.in_(select(Assignment.id).where(Assignment.study_id == study.id))
    return {
        "study": study.name, "id": study.id, "design": study.design, "seed": study.seed,
        "locked_at": study.design_locked_at.isoformat() if study.design_locked_at else None,
        "cases": count(Case, Case.study_id == study.id),
        "ai_outputs": count(AIOutput, AIOutput.case_id.in_(case_ids)),
        "assignments": count(Assignment, Assignment.study_id == study.id),
        "answers": count(Answer, in_study, Answer.version == 1),
        "corrections": count(Answer, in_study, Answer.version > 1),
        "design_check": len(verify_design(session, study.id)),
        "readers": readers,
    }


def run(args: argparse.Namespace) -> int:
    with open_session(args) as session:
        info = collect(session, pick_study(session, args.study))
    if args.json:
        print(json.dumps(info, indent=2))
        return 0
    print(f"study {info['study']!r} (id {info['id']}): design {info['design']}, seed {info['seed']}, "
          f"{'locked since ' + info['locked_at'] if info['locked_at'] else 'not locked (no answers yet)'}")
    print(f"cases {info['cases']}, AI outputs {info['ai_outputs']}, assignments {info['assignments']}, "
          f"answers {info['answers']}, corrections {info['corrections']}")
    print("design check: " + ("stored assignments match the seed" if info["design_check"] == 0
                              else f"{info['design_check']} difference(s); run `design --verify`"))
    for r in info["readers"]:
        flag = " (revoked)" if r["revoked"] else ""
        print(f"  {r['pseudonym']:<8} {r['level']:<13} {r['done']:>5}/{r['total']:<5}{flag}")
    return 0
