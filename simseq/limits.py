"""Bounds on what a scenario file and the command line may ask for, with the reasons.

Each bound is far beyond what a real health-technology-assessment model needs
and well short of what would exhaust a machine's memory or run for days, so a
typo (an extra zero, a wrong unit) is refused up front with a message stating
the bound, instead of ending in an out-of-memory error, an overflow or a run
that never finishes. No imports: the command line reads these before anything
heavy loads.
"""

MAX_SCENARIO_BYTES = 1 << 20
"""1 MiB per scenario file (each file of an ``extends:`` chain). The shipped scenarios
are 1.5-6.5 KB; YAML of tens of MB takes minutes and gigabytes to parse."""

MAX_EVIDENCE_BYTES = 1 << 22
"""4 MiB per user evidence file: the packaged one, 74 records, is 25 KB."""

MAX_YAML_NODES = 100_000
"""Values in one YAML document with every alias expanded. The shipped scenarios have
at most ~400 and the evidence file ~1,400; an alias bomb ("billion laughs") has
billions, which would hang validation and every message that echoes a value."""

MAX_YAML_DEPTH = 64
"""Nesting of mappings and lists; a scenario nests 7 levels deep."""

MAX_EXTENDS_DEPTH = 16
"""Files in one ``extends:`` chain (the shipped scenarios use at most 2)."""

MAX_PATIENTS = 10_000_000_000
"""Patients per sequence (``--patients``, ``simulation.n_patients``, ``calibration.n_patients``),
and patients times draws in a PSA. The engine simulates ~25 million patient trajectories a
second on 2 cores, so 1e10 per sequence is already hours; results at 1e6 have Monte Carlo
errors well below any clinical difference."""

MAX_DRAWS = 100_000
"""PSA draws (``--draws``, ``psa.n_draws``). HTA guidance asks for 1,000-10,000; the PSA
keeps histograms and per-draw tables in memory for every draw."""

MAX_HORIZON = 1200.0
"""Months (100 years). Lifetime horizons in advanced HCC are at most ~600 months (50 years);
with no bound a horizon of 1e9 months asks for terabytes of histogram bins."""

MIN_BIN_WIDTH = 0.001
"""Months (about 45 minutes) of histogram resolution; the default is 0.02 (~15 hours)."""

MAX_BINS = 100_000
"""Histogram bins (horizon / bin_width). The default, 0.02 months over a 600-month lifetime
horizon, is 30,000. The engine keeps n_threads x 6 tallies x n_states x 2 x n_bins int64
counters (``simseq.simulator.simulate``): 9.6 MB per model state and thread at this bound."""

TALLY_BYTES_PER_BIN = 6 * 2 * 8
"""Bytes the engine allocates per histogram bin, model state and thread (6 tallies x
events/censored x int64); ``simseq.engine.codes.N_TALLIES`` is 6."""

CALIBRATION_BOUNDS = (0.01, MAX_HORIZON)
"""Months: the widest bracket a calibrated median may be searched in. Below ~7 hours or
beyond the longest horizon a median cannot be told apart by simulation in months."""

MAX_SEED = 2**63
"""Seeds are in [0, 2^63): the engine keys its random streams with a signed 64-bit seed."""

MAX_TALLY_BYTES = 1_000_000_000
"""Bytes of histogram tallies per thread (n_states x n_bins x 96): 1 GB. The base case needs
11.5 MB (5 sequences, 20 states, 6,000 bins); a lifetime horizon at the default binning
allows ~340 model states."""

MAX_PSA_BYTES = 4_000_000_000
"""Bytes of per-draw OS histograms and economic sums a PSA, DSA or sweep keeps for all its
draws at once (draws x sequences x (2 x bins + 768) x 8): 4 GB. 1,000 draws of the base
case (5 sequences, 6,000 bins of the default 0.02 months) need 511 MB."""
