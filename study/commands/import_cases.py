"""``python -m study import-cases MANIFEST.csv`` or ``--folder DIR``: all-or-nothing import of cases and images.

Bounded by the import limits (``study.domain.cases.configured_limits``: ``[import]`` in .streamlit/secrets.toml or
``REVISION_IMPORT_*``); refused, saying what to do, once the study has answers (its cases are locked)."""

from __future__ import annotations

import argparse

from study.commands._common import add_actor_option, add_db_option, add_study_option, open_session, pick_study

FOLDER_HELP = ("import a folder instead of a manifest: one sub-folder per reference label, named after the "
               "case's reference primary diagnosis (a finding key of the study's label set, or 'normal'); each "
               "image in it is one case whose id is the file's stem (unique across the folder). Images: .jpg "
               ".jpeg .png .tif .tiff .dcm; hidden files are ignored; any other file, an unknown sub-folder, a "
               "duplicate case id, an unreadable image, an empty (sub-)folder or a symlink pointing outside the "
               "folder is listed as a problem and nothing is imported (at most 100 listed, with the count of the rest); "
               "a folder over the entry or size limit is refused before any image is decoded")


def configure(parser: argparse.ArgumentParser) -> None:
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("manifest", metavar="MANIFEST.csv", nargs="?", default=None,
                        help="columns case_id, image_path (relative to the manifest), label (a finding key or "
                             "'normal'); optional findings (keys separated by ';'), eye, patient_pseudonym, split")
    source.add_argument("--folder", metavar="DIR", default=None, help=FOLDER_HELP)
    add_db_option(parser)
    add_study_option(parser)
    parser.add_argument("--store", metavar="DIR", default=None,
                        help="root of the image store (default: REVISION_STORE_ROOT or [server] store_root, as the "
                             "servers use it, else data/store under the repository); a study keeps the root of its "
                             "first import")
    add_actor_option(parser)


def run(args: argparse.Namespace) -> int:
    from study.domain.cases import import_folder, import_manifest, study_store

    with open_session(args) as session:
        study = pick_study(session, args.study)
        if args.folder is not None:
            added = import_folder(session, study.id, args.folder, store_root=args.store, actor=args.actor)
        else:
            added = import_manifest(session, study.id, args.manifest, store_root=args.store, actor=args.actor)
        session.commit()
        print(f"imported {len(added)} case(s) into study {study.name!r}; images in {study_store(study.id, args.store)}")
    return 0
