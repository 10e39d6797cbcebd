"""``python -m simseq`` runs the CLI."""

from simseq.cli import console_main

console_main()
