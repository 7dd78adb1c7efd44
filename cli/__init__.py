"""The `workflow` command line (shipped as the `workflow.cli` package)."""
