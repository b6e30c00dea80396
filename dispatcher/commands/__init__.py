"""The ``dispatcher`` CLI's subcommands, one module per group of operator tasks."""
