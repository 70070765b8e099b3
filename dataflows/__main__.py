"""`python -m dataflows` is the `fundwatch` command (used to start cluster processes)."""

from dataflows.cli import main

main(prog_name="fundwatch")
