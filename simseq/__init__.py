"""simseq: Monte Carlo simulator of treatment sequences in advanced HCC."""

__version__ = "0.1.0"
