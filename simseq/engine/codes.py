"""Integer codes shared by the numba kernels and the Python side (the one place they live)."""

# Parametric families. A distribution crosses the numba boundary as one of these
# codes plus a parameter row of width N_PARAMS (unused slots are 0.0), in the
# flexsurv parameter order given per family below.
FAMILY_EXPONENTIAL = 0  # (rate,)
FAMILY_WEIBULL = 1  # (shape, scale)
FAMILY_LLOGIS = 2  # (shape, scale)
FAMILY_LNORM = 3  # (meanlog, sdlog)
FAMILY_GOMPERTZ = 4  # (shape, rate)
FAMILY_GAMMA = 5  # (shape, rate)
FAMILY_GENGAMMA = 6  # (mu, sigma, Q)
N_FAMILIES = 7
N_PARAMS = 3

# Events that end a sojourn in a state. A destination with EVENT_DEATH ends the
# trajectory; the others move the patient to another state.
EVENT_PROGRESSION = 0
EVENT_DEATH = 1
EVENT_DETERIORATION = 2  # treatment stopped without progression (clinical/liver deterioration)
EVENT_OTHER = 3
N_EVENTS = 4
EVENT_NAMES = ("progression", "death", "deterioration", "other")

# Destination index meaning "dead" (no next state).
STATE_DEAD = -1

# Time-to-event tallies kept per state as histograms of (event, censored) times.
TALLY_SOJOURN = 0  # entry -> exit of the state (e.g. PFS on a line)
TALLY_OS_FROM_ENTRY = 1  # entry -> death
TALLY_OS_GIVEN_ENTRY = 2  # time 0 (start of the sequence) -> death, among entrants
TALLY_PPS = 3  # exit by progression -> death, among those who progressed
TALLY_ENTRY_TIME = 4  # time 0 -> entry (all events; for state occupancy)
TALLY_EXIT_TIME = 5  # time 0 -> exit (events only; for state occupancy)
N_TALLIES = 6
TALLY_NAMES = (
    "sojourn",
    "os_from_entry",
    "os_given_entry",
    "pps",
    "entry_time",
    "exit_time",
)

# Economic outcomes accumulated per patient and sequence (when a model has economics).
# Life-years and QALYs in years, costs in the scenario's currency; "_DISC" discounted.
ECON_LY = 0
ECON_LY_DISC = 1
ECON_QALY = 2
ECON_QALY_DISC = 3
ECON_COST = 4
ECON_COST_DISC = 5
N_ECON = 6
ECON_NAMES = ("lys", "lys_discounted", "qalys", "qalys_discounted", "costs", "costs_discounted")
# A patient's value is rounded to int64 fixed point (value * ECON_SCALE[k]) and summed
# exactly, so sums are identical in any order, i.e. for any thread count or chunking.
# A sum is two int64 words (hi, lo) meaning hi * 2^32 + lo with lo in [0, 2^32): one
# representation per integer, so no order can produce different words. hi moves by at
# most 2^30 a patient, so even patients all at ECON_MAX_FIXED need 2^33 to a batch
# (5e11 in all) to overflow it.
ECON_SCALE = (1e9, 1e9, 1e9, 1e9, 1e3, 1e3)
# Largest |value * ECON_SCALE[k]| of one patient that is allowed (checked before a run:
# simseq.model.econ_range_problem), i.e. 4.6e9 years or 4.6e15 currency units. The
# conversion to int64 and the add to lo need less than 2^63 - 2^32; the factor 2 to
# spare absorbs rounding in the accrual.
ECON_MAX_FIXED = 2.0**62
# Per-state economic inputs, the columns of ModelArrays.state_econ (n_draws, n_states, k).
STATE_COST = 0  # cost per month in the state (monitoring, care; drugs when no time on treatment)
STATE_QALY = 1  # QALYs per month (utility / 12)
STATE_ENTRY_COST = 2  # one-off cost on entry
STATE_ENTRY_QALY = 3  # one-off QALY change on entry
STATE_TREATMENT_COST = 4  # cost per month while on treatment (drugs, administration)
STATE_TREATMENT_STOP_RATE = 5  # hazard of stopping treatment early, per month
STATE_TREATMENT_MAX = 6  # months on the state after which treatment stops (inf: never)
N_STATE_ECON = 7
# Patients are split into interleaved batches (patient index mod N_BATCHES); the spread
# of the batch means gives the Monte Carlo standard error, again order-independently.
N_BATCHES = 64

# The model's integer arrays, in the order kernels receive them as one tuple.
STRUCTURE = (
    "state_clock_lo",
    "state_clock_hi",
    "clock_family",
    "clock_dest_lo",
    "clock_dest_hi",
    "dest_state",
    "dest_event",
)
# Its numbers, each with the parameter draw as leading axis (n_draws, ...).
NUMBERS = (
    "cov_prevalence",
    "cov_log_hr",
    "clock_params",
    "clock_hr",
    "dest_cumprob",
    "state_econ",
    "econ_globals",
)
