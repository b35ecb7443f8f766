"""Command line entry point: ``python -m study <command> ...``.

Why a registry: each subcommand lives in its own module exposing ``configure(parser)`` and
``run(args) -> int``, so adding ``init``, ``import-cases``, ``simulate``, ``export`` or ``analyze``
is one line in :data:`COMMANDS` (or a :func:`register` call) and one new module. Every command
module is imported to build the parser, so keep heavy imports (torch, the analysis code) inside
``run`` and ``--help`` stays fast.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence
from dataclasses import dataclass

__all__ = ["COMMANDS", "Command", "UsageError", "build_parser", "main", "register"]

EXIT_USAGE = 2


class UsageError(Exception):
    """Bad input or options a user can fix; reported on stderr with exit code 2, no traceback."""


@dataclass(frozen=True)
class Command:
    """A subcommand: its one-line help and the module holding ``configure`` and ``run``."""

    help: str
    module: str


COMMANDS: dict[str, Command] = {
    "mrmc": Command(
        "Obuchowski-Rockette MRMC analysis (Hillis ddf) of a fully crossed reader study",
        "study.commands.mrmc",
    ),
    "init": Command("create the study database (migrations) and a study from CONFIG.toml", "study.commands.init"),
    "import-cases": Command("import cases and images from a manifest CSV (all or nothing)",
                            "study.commands.import_cases"),
    "add-readers": Command("add readers from a CSV and print their access codes once", "study.commands.add_readers"),
    "design": Command("build the study's assignments from its seed (or --verify them)", "study.commands.design"),
    "precompute": Command("store zero-shot AI suggestions for every case (resumable)", "study.commands.precompute"),
    "status": Command("cases, readers, assignments, answers and per-reader progress", "study.commands.status"),
    "simulate": Command("add simulated readers and answer their items through the reader workflow",
                        "study.commands.simulate"),
    "export": Command("export answers as CSV, Parquet or an iMRMC input file", "study.commands.export"),
    "demo": Command("create the demo study with synthetic cases, AI suggestions and simulated readers",
                    "study.commands.demo"),
    "analyze": Command("accuracy by experience level, mixed models, MRMC and AI interaction: HTML + JSON",
                       "study.commands.analyze"),
}


def register(name: str, help: str, module: str) -> None:
    """Add a subcommand at runtime (e.g. from a plugin); the module needs configure and run."""
    if name in COMMANDS:
        raise ValueError(f"command {name!r} is already registered")
    COMMANDS[name] = Command(help, module)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m study", description="ReVision reader study tools.")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name, cmd in COMMANDS.items():
        sub_parser = sub.add_parser(name, help=cmd.help, description=cmd.help)
        sub_parser.set_defaults(_module=cmd.module)
        importlib.import_module(cmd.module).configure(sub_parser)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Parse ``argv`` and run the chosen command; returns the process exit code."""
    args = build_parser().parse_args(argv)
    try:
        return int(importlib.import_module(args._module).run(args) or 0)
    except (UsageError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USAGE
