"""The `evidence` command line, one module per command group; `evidence.cli.main:main` is the entry point."""
