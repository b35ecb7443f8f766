"""One module per command line subcommand, each with ``configure(parser)`` and ``run(args)``."""
