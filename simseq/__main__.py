"""``python -m simseq`` runs the CLI."""

from simseq.cli import main

main()
