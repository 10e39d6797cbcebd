"""Survival curves, medians, RMST and Monte Carlo intervals from the engine's histograms.

The engine bins event and censoring times into bins of ``bin_width`` months.
A Kaplan-Meier estimate is taken at the bin edges (events in a bin before its
censorings) and interpolated linearly inside a bin, which is the same as
assuming events spread evenly within a bin of ~0.6 days. Intervals are Monte
Carlo 95% intervals (simulation noise at the chosen N), not parameter
uncertainty: Greenwood's variance for S(t), Brookmeyer-Crowley for the median.
"""

import math
from dataclasses import dataclass, replace

import numpy as np

from simseq.engine.codes import (
    ECON_NAMES,
    EVENT_NAMES,
    N_BATCHES,
    N_EVENTS,
    N_TALLIES,
    STATE_TREATMENT_COST,
    STATE_TREATMENT_MAX,
    STATE_TREATMENT_STOP_RATE,
    TALLY_ENTRY_TIME,
    TALLY_EXIT_TIME,
    TALLY_OS_FROM_ENTRY,
    TALLY_OS_GIVEN_ENTRY,
    TALLY_PPS,
    TALLY_SOJOURN,
)
from simseq.fit import Z95
from simseq.model import ModelArrays
from simseq.simulator import Tallies, econ_values


@dataclass(frozen=True)
class SurvivalCurve:
    """Kaplan-Meier curve at bin edges ``times`` (months), with Greenwood standard errors."""

    times: np.ndarray  # float64 (n_bins + 1,), times[0] = 0
    survival: np.ndarray  # float64 (n_bins + 1,), survival[0] = 1
    se: np.ndarray  # float64 (n_bins + 1,)
    n: int  # patients in the tally
    _area_terms: np.ndarray  # float64 (n_bins,): d / (n (n - d)) per bin, for the RMST variance

    def at(self, t: float) -> float:
        """S(t), linear between edges."""
        return float(np.interp(t, self.times, self.survival))

    def at_ci95(self, t: float) -> tuple[float, float]:
        s, se = self.at(t), float(np.interp(t, self.times, self.se))
        return max(0.0, s - Z95 * se), min(1.0, s + Z95 * se)

    def quantile_time(self, survival: float) -> float:
        """First time S(t) reaches ``survival`` (inf if it never does within the horizon)."""
        return _first_crossing(self.times, self.survival, survival)

    def median(self) -> float:
        return self.quantile_time(0.5)

    def median_ci95(self) -> tuple[float, float]:
        """Brookmeyer-Crowley: the times where |S(t) - 0.5| <= 1.96 se(t), widened by how
        much the median could move within its bin (linear against exponential
        interpolation), which at large N can exceed the Monte Carlo error."""
        lo = _first_crossing(self.times, self.survival - Z95 * self.se, 0.5)
        hi = _first_crossing(self.times, self.survival + Z95 * self.se, 0.5)
        slack = self._within_bin_slack(0.5)
        return max(0.0, lo - slack), hi + slack

    def resolves(self, survival: float = 0.5) -> bool:
        """False when the time S(t) = ``survival`` lies in the first bin: within it the
        curve's shape is unknown, so the time is not reported (lower the bin width)."""
        return not self.quantile_time(survival) < self.times[1]

    def _within_bin_slack(self, level: float) -> float:
        """|linear - exponential interpolation| of the crossing of ``level`` (months)."""
        below = np.flatnonzero(self.survival <= level)
        if below.size == 0 or below[0] == 0:
            return 0.0
        j = int(below[0])
        s0, s1 = self.survival[j - 1], self.survival[j]
        width = self.times[j] - self.times[j - 1]
        if not (s0 > level >= s1 > 0.0) or s0 == s1:
            return 0.0
        linear = (s0 - level) / (s0 - s1)
        exponential = math.log(s0 / level) / math.log(s0 / s1)
        return float(abs(linear - exponential) * width)

    def rmst(self, tau: float) -> tuple[float, float]:
        """Restricted mean (months) to ``tau`` and its Monte Carlo standard error."""
        tau = min(tau, float(self.times[-1]))
        t = np.append(self.times[self.times < tau], tau)
        s = np.interp(t, self.times, self.survival)
        pieces = 0.5 * (s[1:] + s[:-1]) * np.diff(t)
        # area after each bin's events up to tau (events placed at the bin's end)
        after = np.cumsum(pieces[::-1])[::-1]
        after = np.append(after[1:], 0.0)
        terms = self._area_terms[: len(pieces)]
        var = float(np.sum(after**2 * terms))
        return float(pieces.sum()), math.sqrt(var)


def _first_crossing(times: np.ndarray, values: np.ndarray, level: float) -> float:
    below = np.flatnonzero(values <= level)
    if below.size == 0:
        return math.inf
    j = int(below[0])
    if j == 0:
        return float(times[0])
    v0, v1 = values[j - 1], values[j]
    frac = (v0 - level) / (v0 - v1) if v0 != v1 else 1.0
    return float(times[j - 1] + frac * (times[j] - times[j - 1]))


def km_curve(events: np.ndarray, censored: np.ndarray, bin_width: float) -> SurvivalCurve:
    """Kaplan-Meier curve from binned ``events`` and ``censored`` counts (int, (n_bins,))."""
    events = np.asarray(events, np.float64)
    censored = np.asarray(censored, np.float64)
    n_total = events.sum() + censored.sum()
    n_bins = events.shape[0]
    times = np.arange(n_bins + 1) * bin_width
    if n_total == 0:
        nan = np.full(n_bins + 1, np.nan)
        return SurvivalCurve(times, nan, nan, 0, np.zeros(n_bins))
    removed_before = np.concatenate(([0.0], np.cumsum(events + censored)[:-1]))
    at_risk = n_total - removed_before
    with np.errstate(divide="ignore", invalid="ignore"):
        hazard = np.where(at_risk > 0, events / at_risk, 0.0)
        terms = np.where(at_risk - events > 0, events / (at_risk * (at_risk - events)), 0.0)
    survival = np.concatenate(([1.0], np.cumprod(1.0 - hazard)))
    greenwood = np.concatenate(([0.0], np.cumsum(terms)))
    se = survival * np.sqrt(greenwood)
    return SurvivalCurve(times, survival, se, int(n_total), terms)


def tally_curve(tallies: Tallies, tally: int, states: list[int], draw: int = 0) -> SurvivalCurve:
    """KM curve of one tally kind of draw ``draw``, pooled over ``states`` (histograms add)."""
    h = tallies.histogram(tally, states, draw)
    return km_curve(h[0], h[1], tallies.bin_width)


def occupancy(tallies: Tallies, states: list[int], draw: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Probability of being in any of ``states`` at the end of each bin, in draw ``draw``.

    Returns ``(times, probability)``, both float64 (n_bins,), times in months.
    """
    entries = tallies.histogram(TALLY_ENTRY_TIME, states, draw)[0]
    exits = tallies.histogram(TALLY_EXIT_TIME, states, draw)[0]
    times = (np.arange(entries.shape[0]) + 1) * tallies.bin_width
    return times, np.cumsum(entries - exits) / tallies.n_patients


def exit_fractions(tallies: Tallies, states: list[int], draw: int = 0) -> dict[str, float | None]:
    """Share of entrants leaving by each event (and still there at the horizon) in draw
    ``draw``; None for every event when no simulated patient entered."""
    counts = tallies.exits()[draw, states].sum(axis=0)
    total = counts.sum()
    names = [*EVENT_NAMES, "at_horizon"]
    return {names[i]: (float(counts[i] / total) if total else None) for i in range(N_EVENTS + 1)}


def _finite(x: float) -> float | None:
    return None if not math.isfinite(x) else round(float(x), 6)


def time_summary(curve: SurvivalCurve) -> dict:
    """Median and its Monte Carlo 95% interval (None where not reached, or where it lies
    within the first histogram bin and so is not resolved: a note says so)."""
    if curve.n and not curve.resolves(0.5):
        width = float(curve.times[1])
        return {
            "median": None,
            "median_ci95": [None, None],
            "n": curve.n,
            "note": f"median below the histogram bin width ({width:g} months): not resolved; "
            "lower simulation.bin_width",
        }
    lo, hi = curve.median_ci95()
    return {
        "median": _finite(curve.median()),
        "median_ci95": [_finite(lo), _finite(hi)],
        "n": curve.n,
    }


def os_summary(curve: SurvivalCurve, horizon: float, landmarks: tuple[float, ...]) -> dict:
    """Median, RMST to the horizon and landmark survival, with Monte Carlo intervals."""
    out = time_summary(curve)
    rmst, rmst_se = curve.rmst(horizon)
    out["rmst"] = _finite(rmst)
    out["rmst_ci95"] = [_finite(rmst - Z95 * rmst_se), _finite(rmst + Z95 * rmst_se)]
    out["rmst_horizon"] = horizon
    out["survival_at"] = {f"{t:g}": _finite(curve.at(t)) for t in landmarks}
    out["survival_at_ci95"] = {f"{t:g}": [_finite(v) for v in curve.at_ci95(t)] for t in landmarks}
    return out


_ORDINALS = {2: "second", 3: "third", 4: "fourth", 5: "fifth"}


def line_key(line_no: int) -> str:
    """'second_line' for 2, ... 'line_7' beyond fifth."""
    return f"{_ORDINALS[line_no]}_line" if line_no in _ORDINALS else f"line_{line_no}"


def _line_block(
    model: ModelArrays, tallies: Tallies, states: list[int], line_no: int, n: int, draw: int
) -> dict:
    k = f"{line_no}l"
    entered = int(tallies.n_entered[draw, states].sum())

    def curve(tally: int) -> dict:
        return time_summary(tally_curve(tallies, tally, states, draw))

    out = {
        "fraction_started": round(entered / n, 6),
        f"pfs_{k}": curve(TALLY_SOJOURN),
        f"os_from_{k}": curve(TALLY_OS_FROM_ENTRY),
        f"os_from_1l_given_{k}": curve(TALLY_OS_GIVEN_ENTRY),
        f"pps_after_{k}": curve(TALLY_PPS),
        "line_end": exit_fractions(tallies, states, draw),
    }
    if len(states) == 1 and stops_early(model, states[0], draw):
        pfs = tally_curve(tallies, TALLY_SOJOURN, states, draw)
        out[f"time_on_treatment_{k}"] = time_on_treatment(model, states[0], pfs, draw)
    return out


def stops_early(model: ModelArrays, state: int, draw: int = 0) -> bool:
    """Whether treatment costs of ``state`` stop before the state ends (an early-stop rate
    or a stopping rule)."""
    if not model.has_economics or model.state_econ[draw, state, STATE_TREATMENT_COST] == 0.0:
        return False
    econ = model.state_econ[draw, state]
    return econ[STATE_TREATMENT_STOP_RATE] > 0.0 or econ[STATE_TREATMENT_MAX] < np.inf


def time_on_treatment(model: ModelArrays, state: int, line: SurvivalCurve, draw: int = 0) -> dict:
    """Median (with its Monte Carlo 95% interval) and mean months on treatment from the start
    of a line: its simulated time on the line ``line`` times the probability of not having
    stopped early, exp(-rate t), and zero after the stopping rule (how the engine costs it)."""
    econ = model.state_econ[draw, state]
    keep = np.exp(-econ[STATE_TREATMENT_STOP_RATE] * line.times) * (
        line.times < econ[STATE_TREATMENT_MAX]
    )
    curve = replace(line, survival=line.survival * keep, se=line.se * keep)
    out = time_summary(curve)
    out["mean"] = _finite(curve.rmst(float(line.times[-1]))[0])
    return out


def summary_tallies(model: ModelArrays) -> np.ndarray:
    """int64 (N_TALLIES, n_states) mask of the histograms ``sequence_summary`` reads,
    for ``simulate(tallies=...)``; the others (occupancy, and every kind for states
    such as post-progression) would be bookkeeping nobody reads."""
    mask = np.zeros((N_TALLIES, model.n_states), np.int64)
    starts = set(int(s) for s in model.seq_start_state)
    for s in range(model.n_states):
        if s in starts:
            mask[[TALLY_OS_GIVEN_ENTRY, TALLY_SOJOURN, TALLY_PPS], s] = 1
        if model.state_line[s] >= 2:
            mask[[TALLY_SOJOURN, TALLY_OS_FROM_ENTRY, TALLY_OS_GIVEN_ENTRY, TALLY_PPS], s] = 1
        if model.state_role[s] == "no_further_therapy":
            mask[TALLY_OS_FROM_ENTRY, s] = 1
    return mask


def run_tallies(model: ModelArrays, outputs: str = "full") -> np.ndarray:
    """The histograms of a run: with ``outputs="full"``, ``summary_tallies`` and the state
    occupancy ``line_curves`` reads, whose results feed the report; with
    ``"sequence_os"``, ``sequence_os_tallies`` (histograms are independent: the others'
    counts do not change)."""
    if outputs == "sequence_os":
        return sequence_os_tallies(model)
    mask = summary_tallies(model)
    mask[[TALLY_ENTRY_TIME, TALLY_EXIT_TIME]] = 1
    return mask


def sequence_os_tallies(model: ModelArrays) -> np.ndarray:
    """int64 (N_TALLIES, n_states) mask of OS from the start of each sequence alone (the
    TALLY_OS_GIVEN_ENTRY histogram of its start state: every patient enters it at time 0),
    for ``simulate(tallies=...)`` in analyses that read only that, such as a PSA."""
    mask = np.zeros((N_TALLIES, model.n_states), np.int64)
    mask[TALLY_OS_GIVEN_ENTRY, model.seq_start_state] = 1
    return mask


def sequence_summary(
    model: ModelArrays,
    tallies: Tallies,
    sequence: str,
    horizon: float,
    landmarks: tuple[float, ...],
    draw: int = 0,
    outputs: str = "full",
) -> dict:
    """Every reported outcome of one sequence in draw ``draw`` (months; fractions of all
    simulated patients); with ``outputs="sequence_os"`` (tallies of
    ``sequence_os_tallies``) its OS from the start of first line alone."""
    n = tallies.n_patients
    states = model.states_of(sequence)
    start = int(model.seq_start_state[model.seq_names.index(sequence)])
    os_curve = tally_curve(tallies, TALLY_OS_GIVEN_ENTRY, [start], draw)
    out: dict = {
        "os_from_1l": os_summary(os_curve, horizon, landmarks),
        "life_years_undiscounted": round(os_curve.rmst(horizon)[0] / 12.0, 6),
    }
    if outputs == "sequence_os":
        return out
    out |= {
        "pfs_1l": time_summary(tally_curve(tallies, TALLY_SOJOURN, [start], draw)),
        "pps_after_1l": time_summary(tally_curve(tallies, TALLY_PPS, [start], draw)),
        "first_line": {
            "regimen": model.state_regimen[start],
            "line_end": exit_fractions(tallies, [start], draw),
        },
    }
    max_line = int(model.state_line[states].max())
    for line_no in range(2, max_line + 1):
        at_line = [s for s in states if model.state_line[s] == line_no]
        key = line_key(line_no)
        out[key] = {
            model.state_regimen[s]: _line_block(model, tallies, [s], line_no, n, draw)
            for s in at_line
        }
        out[f"{key}_any"] = _line_block(model, tallies, at_line, line_no, n, draw)
    bsc = [s for s in states if model.state_role[s] == "no_further_therapy"]
    if bsc:
        out["no_further_therapy"] = {
            "fraction_entered": round(int(tallies.n_entered[draw, bsc].sum()) / n, 6),
            "os_from_entry": time_summary(tally_curve(tallies, TALLY_OS_FROM_ENTRY, bsc, draw)),
        }
    return out


OCCUPANCY_ROLES = {
    "line": "on treatment, line {line}",
    "post_progression": "progressed after the last line",
    "no_further_therapy": "supportive care",
}


def line_curves(model: ModelArrays, tallies: Tallies, step: float = 0.5) -> list[dict]:
    """Tidy curves per sequence for the report, on a grid of ``step`` months: PFS of each
    line from its start (the model's time on that line: it ends at progression, death or
    deterioration) and OS from the start of each later line by regimen, with Monte Carlo
    95% intervals, and the probability of being in each state group at each time since
    first-line start (occupancy; the rest are dead).

    Returns rows of sequence, curve, time_months, value, ci95_low, ci95_high (None for
    occupancy, a sum of counts with no interval computed here)."""
    rows: list[dict] = []
    for sid in model.seq_names:
        states = model.states_of(sid)
        lines = sorted({int(model.state_line[s]) for s in states if model.state_line[s] >= 1})
        for line_no in lines:
            at = [
                s
                for s in states
                if model.state_line[s] == line_no and model.state_role[s] == "line"
            ]
            curve = tally_curve(tallies, TALLY_SOJOURN, at)
            if curve.n:
                rows += _curve_rows(sid, f"pfs_line_{line_no}", curve, step)
        for st in states:  # OS from the start of each later line, by regimen
            line_no = int(model.state_line[st])
            if line_no < 2 or model.state_role[st] != "line":
                continue
            curve = tally_curve(tallies, TALLY_OS_FROM_ENTRY, [int(st)])
            if curve.n:
                rows += _curve_rows(
                    sid, f"os_from_line_{line_no}: {model.state_regimen[st]}", curve, step
                )
        groups: dict[str, list[int]] = {}
        for s in states:
            role = str(model.state_role[s])
            name = OCCUPANCY_ROLES.get(role, role).format(line=int(model.state_line[s]))
            groups.setdefault(name, []).append(int(s))
        for name, members in groups.items():
            times, prob = occupancy(tallies, members)
            grid = np.arange(step, times[-1] + 1e-9, step)
            rows += [
                {
                    "sequence": sid,
                    "curve": f"occupancy: {name}",
                    "time_months": round(float(t), 6),
                    "value": round(float(v), 6),
                    "ci95_low": None,
                    "ci95_high": None,
                }
                for t, v in zip(grid, np.interp(grid, times, prob), strict=True)
            ]
    return rows


def _curve_rows(sequence: str, name: str, curve: SurvivalCurve, step: float) -> list[dict]:
    """A curve on a grid of ``step`` months with its Monte Carlo 95% interval, as rows."""
    grid = np.arange(0.0, curve.times[-1] + 1e-9, step)
    s = np.interp(grid, curve.times, curve.survival)
    half = Z95 * np.interp(grid, curve.times, curve.se)
    return [
        {
            "sequence": sequence,
            "curve": name,
            "time_months": round(float(t), 6),
            "value": round(float(v), 6),
            "ci95_low": round(float(max(0.0, v - h)), 6),
            "ci95_high": round(float(min(1.0, v + h)), 6),
        }
        for t, v, h in zip(grid, s, half, strict=True)
    ]


def econ_means(econ: np.ndarray, n_patients: int) -> dict[str, tuple[float, float]]:
    """Mean per patient and its Monte Carlo SE for each economic outcome of one sequence.

    ``econ``: int64 (N_ECON, N_BATCHES, 2) exact fixed-point sums (``Tallies.econ[draw, q]``)
    over interleaved patient batches (patient index mod N_BATCHES). The SE is the
    spread of the batch means over sqrt(N_BATCHES): order-independent, like the sums.
    """
    means, se = econ_mean_se(econ, n_patients)
    return {ECON_NAMES[i]: (float(means[i]), float(se[i])) for i in range(len(ECON_NAMES))}


def km_medians(events: np.ndarray, censored: np.ndarray, bin_width: float) -> np.ndarray:
    """Kaplan-Meier medians of many binned histograms at once: ``km_curve(e, c,
    bin_width).median()`` for every leading index, bit for bit (the same cumulative sums,
    products and interpolation, along the last axis). Worked through in blocks of
    histograms so that the temporaries stay small (a PSA has thousands).

    Parameters
    ----------
    events, censored : ndarray(int64), (..., n_bins)
        Binned counts.
    bin_width : float
        Months.

    Returns
    -------
    ndarray(float64), (...)
        Medians in months; inf where S never falls to 1/2 (an empty histogram too).
    """
    shape = np.shape(events)[:-1]
    events = np.reshape(events, (-1, np.shape(events)[-1]))
    censored = np.reshape(censored, events.shape)
    out = np.empty(events.shape[0])
    for lo in range(0, events.shape[0], _KM_BLOCK):
        block = slice(lo, lo + _KM_BLOCK)
        out[block] = _km_medians_block(events[block], censored[block], bin_width)
    return out.reshape(shape)


_KM_BLOCK = 64  # histograms per block: 64 x 6,000 bins of float64 is 3 MB a temporary


_KM_PREFIX = 1024  # bins searched first: most medians lie early in a 6,000-bin histogram


def _km_medians_block(events: np.ndarray, censored: np.ndarray, bin_width: float) -> np.ndarray:
    """Medians of a block, searching the first ``_KM_PREFIX`` bins first: S up to bin k
    depends on the bins before k only (and the total), so a crossing found there is the
    one the whole histogram gives, bit for bit; the others are searched in full."""
    n_total = events.sum(axis=-1) + censored.sum(axis=-1)
    width = min(_KM_PREFIX, events.shape[-1])
    out = _km_medians_prefix(events[:, :width], censored[:, :width], n_total, bin_width)
    rest = np.flatnonzero(np.isinf(out))
    if rest.size and width < events.shape[-1]:
        out[rest] = _km_medians_prefix(events[rest], censored[rest], n_total[rest], bin_width)
    return out


def _km_medians_prefix(events, censored, n_total, bin_width: float) -> np.ndarray:
    """First crossing of 1/2 within these bins (inf where none); ``n_total``: every
    patient of each histogram, not only those in these bins."""
    events = events.astype(np.float64)
    censored = censored.astype(np.float64)
    n_total = n_total.astype(np.float64)
    removed = np.cumsum(events + censored, axis=-1)
    removed_before = np.concatenate([np.zeros_like(removed[..., :1]), removed[..., :-1]], axis=-1)
    at_risk = n_total[..., None] - removed_before
    with np.errstate(divide="ignore", invalid="ignore"):
        hazard = np.where(at_risk > 0, events / at_risk, 0.0)
    survival = np.concatenate(
        [np.ones_like(hazard[..., :1]), np.cumprod(1.0 - hazard, axis=-1)], axis=-1
    )
    below = survival <= 0.5
    reached = below.any(axis=-1)
    j = np.argmax(below, axis=-1)  # first index at or below 1/2 (0 where none)
    prev = np.maximum(j - 1, 0)
    v0 = np.take_along_axis(survival, prev[..., None], axis=-1)[..., 0]
    v1 = np.take_along_axis(survival, j[..., None], axis=-1)[..., 0]
    with np.errstate(divide="ignore", invalid="ignore"):
        frac = np.where(v0 != v1, (v0 - 0.5) / (v0 - v1), 1.0)
    t0 = prev * bin_width
    t1 = j * bin_width
    median = np.where(j == 0, 0.0, t0 + frac * (t1 - t0))
    return np.where(reached, median, np.inf)


def km_survival_at(
    events: np.ndarray, censored: np.ndarray, bin_width: float, t: float
) -> np.ndarray:
    """Kaplan-Meier survival at time ``t`` of many binned histograms at once: ``km_curve``'s
    survival at the bin edges (the same cumulative sums and products), linear between the
    two edges around ``t`` as the quadrature's landmarks are.

    Parameters
    ----------
    events, censored : ndarray(int64), (..., n_bins)
        Binned counts.
    bin_width, t : float
        Months; 0 <= t <= n_bins * bin_width.

    Returns
    -------
    ndarray(float64), (...)
        Probability; nan for an empty histogram.
    """
    events = np.asarray(events, np.float64)
    censored = np.asarray(censored, np.float64)
    n_total = events.sum(axis=-1) + censored.sum(axis=-1)
    j = max(1, min(int(np.ceil(t / bin_width - 1e-9)), events.shape[-1]))  # edge j-1 < t <= j
    removed = events[..., :j] + censored[..., :j]
    at_risk = n_total[..., None] - (np.cumsum(removed, axis=-1) - removed)  # counts: exact
    with np.errstate(divide="ignore", invalid="ignore"):
        hazard = np.where(at_risk > 0, events[..., :j] / at_risk, 0.0)
    survival = np.cumprod(1.0 - hazard, axis=-1)  # at edges 1..j
    before = survival[..., -2] if j > 1 else np.ones_like(n_total)
    a = t / bin_width - (j - 1)
    return np.where(n_total > 0, (1.0 - a) * before + a * survival[..., -1], np.nan)


def econ_mean_se(econ: np.ndarray, n_patients: int) -> tuple[np.ndarray, np.ndarray]:
    """``econ_means`` for many sums at once: (means, SEs), each float64 (..., N_ECON), from
    exact sums int64 (..., N_ECON, N_BATCHES, 2) (``Tallies.econ``)."""
    batch_n = np.full(N_BATCHES, n_patients // N_BATCHES) + (
        np.arange(N_BATCHES) < n_patients % N_BATCHES
    )
    values = econ_values(econ)  # (..., N_ECON, N_BATCHES)
    means = values.sum(axis=-1) / n_patients
    used = batch_n > 0
    k = int(used.sum())
    if k < 2:
        return means, np.full(means.shape, math.nan)
    batch_means = values[..., used] / batch_n[used]
    return means, batch_means.std(axis=-1, ddof=1) / math.sqrt(k)
