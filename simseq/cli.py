"""Command-line interface: ``simseq fit | validate | calibrate | run``."""

import click

from simseq import __version__


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="simseq")
def main() -> None:
    """simseq: treatment-sequence simulator for advanced HCC."""
