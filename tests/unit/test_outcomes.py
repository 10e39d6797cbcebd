"""Summaries never report what the simulation cannot support: medians inside the first
histogram bin are refused, the median's interval covers the within-bin uncertainty, and
statistics that exist for only some PSA draws carry their count."""

import math

import numpy as np
import pytest

from simseq.outcomes import Z95, _first_crossing, km_curve, time_summary

BIN = 0.02  # months, the default histogram bin


def exponential_curve(rng, median: float, n: int, n_bins: int = 2000):
    times = rng.exponential(median / math.log(2), n)
    bins = np.minimum((times / BIN).astype(np.int64), n_bins - 1)
    return km_curve(np.bincount(bins, minlength=n_bins), np.zeros(n_bins), BIN)


def test_median_interval_covers_a_median_of_a_few_bins():
    """Exponential median 0.03 months (1.5 bins): the Brookmeyer-Crowley interval alone,
    from the linearly interpolated curve, covered the truth in 0 of 200 replications;
    widened by the within-bin interpolation uncertainty it must cover about 95%. With
    200 replications the binomial SE of a 95% coverage is 0.0154; 3 SE below is 0.904."""
    rng = np.random.default_rng(20261202)
    median, reps = 0.03, 200
    covered = 0
    for _ in range(reps):
        curve = exponential_curve(rng, median, 200_000)
        lo, hi = curve.median_ci95()
        covered += lo <= median <= hi
    assert covered / reps >= 0.95 - 3 * math.sqrt(0.95 * 0.05 / reps)
    # the unwidened interval does not (what the fix is for)
    lo = _first_crossing(curve.times, curve.survival - Z95 * curve.se, 0.5)
    assert lo > median


def test_a_median_inside_the_first_bin_is_not_reported():
    curve = exponential_curve(np.random.default_rng(1), 0.005, 100_000)
    assert not curve.resolves()
    out = time_summary(curve)
    assert out["median"] is None and out["median_ci95"] == [None, None]
    assert "bin width (0.02 months)" in out["note"]
    assert time_summary(exponential_curve(np.random.default_rng(1), 5.0, 100_000))["median"]


def test_widening_is_negligible_for_ordinary_medians():
    curve = exponential_curve(np.random.default_rng(2), 10.0, 1_000_000, n_bins=6000)
    lo, hi = curve.median_ci95()
    plain = _first_crossing(curve.times, curve.survival + Z95 * curve.se, 0.5)
    assert hi - plain < 1e-5  # months


def test_empty_curve_summaries_are_null_not_nan():
    empty = km_curve(np.zeros(10, np.int64), np.zeros(10, np.int64), BIN)
    assert time_summary(empty) == {"median": None, "median_ci95": [None, None], "n": 0}


def test_psa_interval_counts_draws_where_a_median_was_not_reached():
    from simseq.results import _interval

    assert _interval(np.array([1.0, 2.0, 3.0, np.inf])) == {
        "mean": 2.0,
        "ci95": [1.0, None],  # the upper bound is among the draws not reached
        "n_draws_reached": 3,
    }
    assert _interval(np.full(3, np.inf)) == {
        "mean": None,
        "ci95": [None, None],
        "n_draws_reached": 0,
    }
    plain = _interval(np.arange(100.0))
    assert plain == {"mean": 49.5, "ci95": [2.475, 96.525]}  # linear, as np.percentile


def test_psa_table_prints_medians_not_reached(capsys):
    from rich.console import Console

    from simseq.report import print_psa_table

    block = {"mean": 1.0, "ci95": [0.5, 1.5]}
    summary = {
        "currency": "USD",
        "n_draws": 4,
        "n_patients_per_draw": 100,
        "willingness_to_pay": 100.0,
        "ceac": {"wtp": [0.0, 100.0], "prob_best": {"a": [1.0, 1.0]}},
        "sequences": {
            "a": {
                "costs": block,
                "qalys": block,
                "os_median": {"mean": None, "ci95": [None, None], "n_draws_reached": 0},
            }
        },
        "warnings": [],
    }
    print_psa_table(Console(width=100), summary)
    out = capsys.readouterr().out
    assert "(NR-NR)" in out  # the interval, under the mean


@pytest.mark.parametrize("label", ["$\\frac{1}{$", "costs in $ and $$", "50% $x^"])
def test_plots_take_any_label_literally(tmp_path, label):
    from simseq import cea_plots
    from simseq.survival_plot import Line, draw_survival

    t = np.linspace(0, 10, 11)
    s = np.exp(-t / 5)
    draw_survival(
        tmp_path / "s.png", [Line(label, "#1f77b4", "-", t, s, s, s)], label, 10.0, [label]
    )
    assert (tmp_path / "s.png").read_bytes()[:4] == b"\x89PNG"
    cea_plots.plot_evpi(
        tmp_path / "e.png", np.array([0.0, 1.0]), np.array([0.0, 1.0]), currency="$"
    )
    cea_plots.plot_tornado(
        tmp_path / "t.png",
        [{"parameter": label, "low_label": "$", "high_label": "$$", "low": 1.0, "high": 2.0}],
        outcome_label=label,
        base_value=1.5,
    )


def test_vectorised_medians_and_means_equal_the_single_ones_bit_for_bit():
    """km_medians and econ_mean_se (the PSA's per-case outputs) are km_curve(...).median()
    and econ_means for every leading index, exactly."""
    from simseq.engine.codes import ECON_NAMES, N_BATCHES, N_ECON
    from simseq.outcomes import econ_mean_se, econ_means, km_curve, km_medians

    rng = np.random.default_rng(4)
    # 3,000 bins: medians before and after the first 1,024 bins km_medians searches first
    events = rng.poisson(rng.uniform(0.0, 3.0, (3, 4, 1)), (3, 4, 3000))
    censored = rng.poisson(0.2, (3, 4, 3000))
    events[0, 0] = 0  # never reaches 1/2: inf
    events[0, 1], censored[0, 1] = 0, 0  # empty: inf, as km_curve says
    events[1, 0, 0] = 10_000  # below 1/2 in the first bin
    medians = km_medians(events, censored, 0.25)
    assert (medians < 1024 * 0.25).any() and (medians > 1024 * 0.25).any()
    for idx in np.ndindex(3, 4):
        want = km_curve(events[idx], censored[idx], 0.25).median()
        assert medians[idx] == want, idx
    econ = np.stack(
        [rng.integers(0, 2**40, (N_ECON, N_BATCHES)), rng.integers(0, 2**32, (N_ECON, N_BATCHES))],
        axis=-1,
    )
    econ = np.stack([econ, econ // 3])
    means, se = econ_mean_se(econ, 12_345)
    for d in range(2):
        single = econ_means(econ[d], 12_345)
        for i, name in enumerate(ECON_NAMES):
            assert (means[d, i], se[d, i]) == single[name]
