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
