"""Subcommands of ``python -m revision_core``; each module has ``configure(parser)`` and ``run(args)``."""
