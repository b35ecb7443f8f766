"""``python -m study import-cases MANIFEST.csv``: all-or-nothing import of cases and their images."""

from __future__ import annotations

import argparse

from study.commands._common import add_db_option, add_study_option, open_session, pick_study


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("manifest", metavar="MANIFEST.csv",
                        help="columns case_id, image_path (relative to the manifest), label (a finding key or "
                             "'normal'); optional findings (keys separated by ';'), eye, patient_pseudonym, split")
    add_db_option(parser)
    add_study_option(parser)
    parser.add_argument("--store", metavar="DIR", default=None,
                        help="root of the image store (default: data/store under the repository)")
    parser.add_argument("--actor", default="investigator", help="name recorded in the audit trail")


def run(args: argparse.Namespace) -> int:
    from study.cases import import_manifest, study_store

    with open_session(args) as session:
        study = pick_study(session, args.study)
        added = import_manifest(session, study.id, args.manifest, store_root=args.store, actor=args.actor)
        print(f"imported {len(added)} case(s) into study {study.name!r}; images in {study_store(study.id, args.store)}")
    return 0
