"""Tests for simseq.cea_plots: every plot writes a PNG, for normal and degenerate inputs.

The images themselves are checked by eye; here each call must finish without
error and leave a real PNG (signature, non-trivial size, 8 x 5 in at 150 dpi).
"""

import struct

import numpy as np
import pytest

from simseq import econ
from simseq.cea_plots import plot_ce_plane, plot_ceac, plot_evpi, plot_tornado, tornado_order

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
NAMES = ["Sorafenib → BSC", "Atezolizumab + bevacizumab → lenvatinib", "Lenvatinib → regorafenib"]
WTP = np.linspace(0.0, 100_000.0, 41)


def assert_png(path) -> None:
    data = path.read_bytes()
    assert data[:8] == PNG_SIGNATURE
    assert len(data) > 10_000  # an empty 1200 x 750 canvas compresses to a few kB
    width, height = struct.unpack(">II", data[16:24])  # IHDR chunk
    assert (width, height) == (1200, 750)


@pytest.fixture(scope="module")
def psa():
    rng = np.random.default_rng(20240601)
    n_draws = 300
    costs = np.array([40_000.0, 95_000.0, 52_000.0]) + rng.normal(0, 8_000, (n_draws, 3))
    qalys = np.array([0.9, 1.45, 1.05]) + rng.normal(0, 0.2, (n_draws, 3))
    return costs, qalys


def tornado_rows():
    return [
        {"parameter": "Utility, progressed disease", "low_label": "0.55", "high_label": "0.75",
         "low": -3_000.0, "high": 4_000.0},
        {"parameter": "Hazard ratio for overall survival, atezolizumab + bevacizumab vs "
                      "sorafenib (IMbrave150, updated analysis)",
         "low_label": "HR 0.52", "high_label": "HR 0.79", "low": 12_000.0, "high": -8_000.0},
        {"parameter": "Discount rate", "low_label": "0%", "high_label": "6%",
         "low": 2_500.0, "high": 1_500.0},
    ]  # fmt: skip


# --------------------------------------------------------------------------- CE plane


@pytest.mark.parametrize("wtp", [30_000.0, None])
def test_ce_plane_writes_png(tmp_path, psa, wtp):
    costs, qalys = psa
    path = tmp_path / "ce_plane.png"
    plot_ce_plane(
        path, costs - costs[:, [0]], qalys - qalys[:, [0]], NAMES,
        currency="GBP", wtp=wtp, reference=NAMES[0],
    )  # fmt: skip
    assert_png(path)


def test_ce_plane_reference_only_and_non_finite_draws(tmp_path, psa):
    zeros = np.zeros((50, 1))
    path = tmp_path / "ce_single.png"
    plot_ce_plane(str(path), zeros, zeros, ["BSC"], currency="£", wtp=20_000.0, reference="BSC")
    assert_png(path)

    costs, qalys = psa
    inc_c, inc_e = costs - costs[:, [0]], qalys - qalys[:, [0]]
    inc_c[:10, 1] = np.nan
    inc_e[5, 2] = np.inf
    path = tmp_path / "ce_nan.png"
    plot_ce_plane(path, inc_c, inc_e, NAMES, currency="EUR", wtp=None, reference=NAMES[0])
    assert_png(path)


def test_ce_plane_rejects_mismatched_shapes(tmp_path):
    with pytest.raises(ValueError, match="one column per name"):
        plot_ce_plane(
            tmp_path / "x.png", np.zeros((5, 2)), np.zeros((5, 2)), NAMES,
            currency="GBP", wtp=None, reference=NAMES[0],
        )  # fmt: skip


# --------------------------------------------------------------------------- CEAC


@pytest.mark.parametrize("with_frontier", [True, False])
def test_ceac_writes_png(tmp_path, psa, with_frontier):
    costs, qalys = psa
    frontier = econ.ceaf(costs, qalys, WTP, NAMES) if with_frontier else None
    path = tmp_path / "ceac.png"
    plot_ceac(path, WTP, econ.ceac(costs, qalys, WTP), NAMES, currency="GBP", frontier=frontier)
    assert_png(path)


def test_ceac_single_option(tmp_path):
    costs, qalys = np.full((20, 1), 1_000.0), np.ones((20, 1))
    path = tmp_path / "ceac_single.png"
    prob = econ.ceac(costs, qalys, WTP)
    assert np.all(prob == 1.0)
    plot_ceac(
        path, WTP, prob, ["BSC"], currency="GBP", frontier=econ.ceaf(costs, qalys, WTP, ["BSC"])
    )
    assert_png(path)


# --------------------------------------------------------------------------- EVPI


@pytest.mark.parametrize("population", [None, 2_400.0])
def test_evpi_writes_png(tmp_path, psa, population):
    costs, qalys = psa
    path = tmp_path / "evpi.png"
    plot_evpi(path, WTP, econ.evpi(costs, qalys, WTP), currency="GBP", population=population)
    assert_png(path)


def test_evpi_all_zero(tmp_path):
    path = tmp_path / "evpi_zero.png"
    plot_evpi(path, WTP, np.zeros_like(WTP), currency="GBP", population=1_000.0)
    assert_png(path)


# --------------------------------------------------------------------------- tornado


def test_tornado_order_widest_first_ties_stable_non_finite_dropped():
    rows = [
        {"low": 0.0, "high": 1.0},  # range 1
        {"low": 5.0, "high": -5.0},  # range 10
        {"low": float("nan"), "high": 3.0},  # dropped
        {"low": 2.0, "high": 3.0},  # range 1, after row 0
        {"low": 1.0, "high": None},  # dropped
        {"low": -1.0, "high": 2.0},  # range 3
    ]
    assert tornado_order(rows) == [1, 5, 0, 3]
    assert tornado_order([]) == []


def test_tornado_writes_png(tmp_path):
    path = tmp_path / "tornado.png"
    plot_tornado(
        path, tornado_rows(), outcome_label="Incremental NMB (GBP)", base_value=1_000.0,
        title="Atezolizumab + bevacizumab vs sorafenib",
    )  # fmt: skip
    assert_png(path)


def test_tornado_nan_rows_are_skipped(tmp_path):
    rows = tornado_rows() + [
        {"parameter": "Broken input", "low_label": "a", "high_label": "b",
         "low": float("nan"), "high": 1.0},
    ]  # fmt: skip
    path = tmp_path / "tornado_nan.png"
    plot_tornado(path, rows, outcome_label="ICER (GBP per QALY)", base_value=1_000.0)
    assert_png(path)


@pytest.mark.parametrize(
    "rows",
    [[], [{"parameter": "x", "low_label": "a", "high_label": "b", "low": np.nan, "high": np.nan}]],
    ids=["empty", "all-nan"],
)
def test_tornado_nothing_to_draw(tmp_path, rows):
    path = tmp_path / "tornado_empty.png"
    plot_tornado(path, rows, outcome_label="Incremental NMB (GBP)", base_value=0.0)
    assert_png(path)


def test_tornado_many_rows(tmp_path):
    rng = np.random.default_rng(7)
    rows = [
        {"parameter": f"Parameter {i} with a fairly long descriptive name", "low_label": "lo",
         "high_label": "hi", "low": float(lo), "high": float(hi)}
        for i, (lo, hi) in enumerate(rng.normal(0, 1_000, (30, 2)))
    ]  # fmt: skip
    path = tmp_path / "tornado_many.png"
    plot_tornado(path, rows, outcome_label="Incremental NMB (GBP)", base_value=0.0)
    assert_png(path)


def test_plots_leave_no_pyplot_figures(tmp_path, psa):
    """The module builds Figures directly, so pyplot's global registry gains nothing."""
    pyplot = pytest.importorskip("matplotlib.pyplot")
    before = pyplot.get_fignums()
    costs, qalys = psa
    plot_evpi(tmp_path / "e.png", WTP, econ.evpi(costs, qalys, WTP), currency="GBP")
    plot_tornado(tmp_path / "t.png", tornado_rows(), outcome_label="NMB (GBP)", base_value=0.0)
    assert pyplot.get_fignums() == before
