"""Command line entry point: ``python -m study <command> ...``.

Why a registry: each subcommand lives in its own module exposing ``configure(parser)`` and
``run(args) -> int``, so adding ``init``, ``import-cases``, ``simulate``, ``export`` or ``analyze``
is one line in :data:`COMMANDS` (or a :func:`register` call) and one new module. Every command
module is imported to build the parser, so keep heavy imports (torch, the analysis code) inside
``run`` and ``--help`` stays fast.
"""

from __future__ import annotations

from collections.abc import Sequence

from revision_core.cli import UsageError, run_commands  # one registry runner and error type for both CLIs

__all__ = ["COMMANDS", "UsageError", "main", "register"]

COMMANDS: dict[str, tuple[str, str]] = {
    "mrmc": ("Obuchowski-Rockette MRMC analysis (Hillis ddf) of a fully crossed reader study", "study.commands.mrmc"),
    "power": ("analytic MRMC power / sample size (Hillis-Obuchowski: RRRC, FRRC, RRFC) from a pilot", "study.commands.power"),
    "init": ("create the study database (migrations) and a study from CONFIG.toml", "study.commands.init"),
    "import-cases": ("import cases and images from a manifest CSV or a folder by label (all or nothing)",
                     "study.commands.import_cases"),
    "add-readers": ("add readers from a CSV and print their access codes once", "study.commands.add_readers"),
    "design": ("build the study's assignments from its seed (or --verify them)", "study.commands.design"),
    "precompute": ("store zero-shot AI suggestions for every case (resumable)", "study.commands.precompute"),
    "status": ("cases, readers, assignments, answers and per-reader progress", "study.commands.status"),
    "simulate": ("add simulated readers and answer their items through the reader workflow",
                 "study.commands.simulate"),
    "export": ("export answers as CSV, Parquet or an iMRMC input file", "study.commands.export"),
    "demo": ("create the demo study with synthetic cases, AI suggestions and simulated readers",
             "study.commands.demo"),
    "analyze": ("accuracy by experience level, mixed models, MRMC and AI interaction: HTML + JSON",
                "study.commands.analyze"),
    "hash-password": ("make the argon2 hash of a new investigator password (prompted, or --stdin; never argv)",
                      "study.commands.hash_password"),
    "revoke": ("disable a reader's access code, with a reason (audited); their answers stay", "study.commands.revoke"),
    "reissue": ("give a reader a new access code, printed once (the old one stops working; audited)",
                "study.commands.reissue"),
    "override-washout": ("open a reader's next session before the washout ends, with a reason (audited)",
                         "study.commands.override_washout"),
    "unlock": ("lift the sign-in waits after wrong tries: the investigator (default), --reader, --address or --all; "
               "with a reason (audited)", "study.commands.unlock"),
    "audit": ("export the study's audit trail as formula-safe CSV, filtered by actor, action, reader, dates",
              "study.commands.audit"),
}


def main(argv: Sequence[str] | None = None) -> int:
    """Parse ``argv`` and run the chosen command; returns the process exit code."""
    return run_commands("python -m study", "ReVision reader study tools.", COMMANDS, argv)
