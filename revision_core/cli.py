"""Command line entry point: ``python -m revision_core <command> ...``.

Each subcommand lives in ``revision_core/commands/<name>.py`` with ``configure(parser)`` and
``run(args) -> int``; adding one is one line in :data:`COMMANDS`. Command modules keep heavy imports
(torch, open_clip) inside ``run`` so that ``--help`` stays fast. ``study.cli`` reuses :func:`run_commands`.
"""
from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Mapping, Sequence

EXIT_USAGE = 2

COMMANDS: dict[str, tuple[str, str]] = {
    "synth": ("render synthetic fundus photographs, masks, reports and a manifest", "revision_core.commands.synth"),
    "predict": ("zero-shot suggestions for image files", "revision_core.commands.predict"),
    "evaluate": ("zero-shot AUROC with DeLong CIs on synthetic or labelled images", "revision_core.commands.evaluate"),
    "fewshot": ("few-shot linear-probe label-efficiency table against zero-shot", "revision_core.commands.fewshot"),
    "train": ("train a CLIP model on synthetic image-report pairs (the demo model)", "revision_core.commands.train"),
    "saliency": ("saliency overlay (IG, SmoothGrad, Grad-CAM, occlusion) of one finding", "revision_core.commands.saliency"),
    "saliency-check": ("faithfulness of saliency maps on synthetic lesion masks", "revision_core.commands.saliency_check"),
    "fit-lesions": ("fit the synthetic lesion model to expert-marked real lesions (IDRiD)", "revision_core.commands.fit_lesions"),
}


class UsageError(Exception):
    """Bad input a user can fix: printed on stderr with exit code 2, no traceback."""


def run_commands(prog: str, description: str, commands: Mapping[str, tuple[str, str]],
                 argv: Sequence[str] | None = None) -> int:
    """Build a parser from a {name: (help, module)} registry, run the chosen command, map errors to exit 2."""
    parser = argparse.ArgumentParser(prog=prog, description=description)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name, (help_text, module) in commands.items():
        sub_parser = sub.add_parser(name, help=help_text, description=help_text)
        sub_parser.set_defaults(_module=module)
        importlib.import_module(module).configure(sub_parser)
    args = parser.parse_args(argv)
    try:
        return int(importlib.import_module(args._module).run(args) or 0)
    except (UsageError, ValueError, FileNotFoundError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USAGE


def main(argv: Sequence[str] | None = None) -> int:
    return run_commands("python -m revision_core", "ReVision model engine: synthetic data, zero-shot "
                        "suggestions, evaluation and training.", COMMANDS, argv)
