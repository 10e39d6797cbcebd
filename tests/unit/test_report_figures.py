"""What the figures and tables show, read from their artists and text (not only that a
PNG exists): labels rather than ids, one colour per sequence id, the frontier, the
stated WTP, no zero-effect tornado rows, captions saying what intervals include."""

import numpy as np
import pytest
from rich.console import Console

from simseq import econ
from simseq.cea_plots import plot_ce_plane, plot_ceac, plot_evpi, plot_evppi, plot_tornado
from simseq.colours import PALETTE, sequence_colour, sequence_styles
from simseq.outcomes import km_curve
from simseq.report import (
    plain_number,
    print_cea_table,
    print_dsa_table,
    print_psa_table,
    print_run_table,
    survival_figure_args,
    survival_xmax,
)
from simseq.survival_plot import figure

IDS = ["atzbev_bsc", "atzbev_len", "atzbev_sor"]
LABELS = ["ATZ/BEV, then supportive care", "ATZ/BEV, then lenvatinib", "ATZ/BEV, then sorafenib"]
WTP = np.linspace(0.0, 100_000.0, 41)


def legend_texts(fig) -> list[str]:
    legends = [*fig.legends, *(ax.get_legend() for ax in fig.axes if ax.get_legend())]
    return [t.get_text().replace("\n", " ") for lg in legends for t in lg.get_texts()]


@pytest.fixture(scope="module")
def psa():
    rng = np.random.default_rng(20240601)
    costs = np.array([40_000.0, 95_000.0, 52_000.0]) + rng.normal(0, 8_000, (300, 3))
    qalys = np.array([0.9, 1.45, 1.05]) + rng.normal(0, 0.2, (300, 3))
    return costs, qalys


# --------------------------------------------------------------------------- colours


def test_a_sequence_has_one_colour_whatever_else_is_drawn():
    assert sequence_colour("atzbev_len") == sequence_colour("atzbev_len") in PALETTE
    alone = sequence_styles(["atzbev_len"])["atzbev_len"]
    among = sequence_styles(["atzbev_bsc", "atzbev_len", "len_tki", "ref_hcc"])["atzbev_len"]
    assert alone[0] == among[0]
    # the shipped scenarios' sequences get distinct colours within each scenario
    for ids in (
        ["atzbev_bsc", "atzbev_len", "atzbev_real_world", "atzbev_sor", "atzbev_tki_ici"],
        ["len_bsc", "len_real_world", "len_tki", "len_tki_ici"],
    ):
        assert len({sequence_colour(i) for i in ids}) == len(ids)


def test_ids_sharing_a_colour_are_told_apart_by_line_style():
    ids = [f"s{k}" for k in range(len(PALETTE) + 1)]  # more ids than colours: a clash
    styles = sequence_styles(ids)
    assert len(set(styles.values())) == len(ids)
    assert all(styles[i][0] == sequence_colour(i) for i in ids)


# --------------------------------------------------------------------------- survival


def exponential_curve(median: float, n: int = 10**7, horizon: float = 120.0, width=0.5):
    """A KM curve of n patients with exponential survival, binned (rounding is the only
    noise: at 1e7 patients, S(t) is exact to ~1e-6)."""
    edges = np.arange(0.0, horizon + width, width)
    s = 0.5 ** (edges / median)
    events = np.round(n * -np.diff(s)).astype(np.int64)
    censored = np.zeros_like(events)
    censored[-1] = n - events.sum()
    return km_curve(events, censored, width)


def test_survival_figure_labels_colours_bands_and_caption():
    curves = {sid: exponential_curve(m) for sid, m in zip(IDS, (8.0, 14.0, 11.0), strict=True)}
    labels = dict(zip(IDS, LABELS, strict=True))
    labels["atzbev_sor"] = None  # a missing label falls back to the id
    points = [("imbrave150 (12-month survival)", 12.0, 0.672, None, (0.62, 0.72))]
    args = survival_figure_args(curves, labels, "Title", {"atzbev_len"}, points=points)
    fig = figure(*args)
    x_max = args[2]
    ax = fig.axes[0]
    drawn = [line for line in ax.get_lines() if not line.get_label().startswith("_")]
    assert [line.get_label() for line in drawn[:3]] == [
        "ATZ/BEV, then supportive care",
        "ATZ/BEV, then lenvatinib †",
        "atzbev_sor",
    ]
    assert [line.get_color() for line in drawn[:3]] == [sequence_colour(i) for i in IDS]
    (published,) = ax.containers  # the validation point with its CI
    np.testing.assert_allclose(published.lines[0].get_xydata(), [[12.0, 0.672]])
    assert published.has_yerr and not published.has_xerr
    assert len(ax.collections) == 4  # one Monte Carlo band per curve, the point's error bar
    # the default axis stops where every curve is at 1% (the longest median: 14 months)
    assert x_max == pytest.approx(14.0 * np.log(100) / np.log(2), abs=0.5)
    assert ax.get_xlim()[1] == x_max < 120.0
    caption = " ".join(t.get_text() for t in fig.texts)
    assert "Monte Carlo 95%" in caption and "not included" in caption
    assert "120-month horizon" in caption and "transported" in caption
    assert "not fitted to (validation)" in caption


def test_survival_xmax_is_the_horizon_when_a_curve_never_reaches_one_percent():
    curves = {"a": exponential_curve(8.0), "b": exponential_curve(60.0)}
    assert survival_xmax(curves) == 120.0
    _, _, x_max, notes, _, _ = survival_figure_args(curves, {}, "t", set(), x_max=30.0)
    # the bands (two lines: what they are, what they leave out), and where the curves are cut
    assert x_max == 30.0 and len(notes) == 3
    assert notes[-1].startswith("Drawn to 30 months")


# --------------------------------------------------------------------------- CE plane and CEAC


def test_ce_plane_has_the_frontier_through_the_non_dominated_means(tmp_path, psa):
    costs, qalys = psa
    inc_c, inc_q = costs - costs[:, [0]], qalys - qalys[:, [0]]
    fig = plot_ce_plane(
        tmp_path / "ce.png", inc_c, inc_q, LABELS, currency="USD", wtp=50_000.0,
        reference=LABELS[0], ids=IDS,
    )  # fmt: skip
    assert (tmp_path / "ce.png").exists()
    ax = fig.axes[0]
    frontier = next(line for line in ax.get_lines() if line.get_label().startswith("Efficiency"))
    table = econ.icer_table(IDS, costs.mean(axis=0), qalys.mean(axis=0))
    on = [IDS.index(s) for s in table.sequence[table.status.isin(["reference", "non-dominated"])]]
    np.testing.assert_allclose(frontier.get_xdata(), inc_q.mean(axis=0)[on])
    np.testing.assert_allclose(frontier.get_ydata(), inc_c.mean(axis=0)[on])
    texts = legend_texts(fig)
    assert any(t.startswith("ATZ/BEV, then lenvatinib") for t in texts)
    assert not any("atzbev" in t for t in texts)
    means = [c for c in ax.collections if c.get_sizes()[0] == 90]
    assert [tuple(c.get_facecolor()[0][:3]) for c in means] == [
        pytest.approx(tuple(int(sequence_colour(i)[k : k + 2], 16) / 255 for k in (1, 3, 5)))
        for i in IDS[1:]
    ]


def test_ceac_frontier_lies_under_the_curves_and_the_wtp_is_marked(tmp_path, psa):
    costs, qalys = psa
    frontier = econ.ceaf(costs, qalys, WTP, LABELS)
    fig = plot_ceac(
        tmp_path / "ceac.png", WTP, econ.ceac(costs, qalys, WTP), LABELS, currency="USD",
        frontier=frontier, wtp=30_000.0, ids=IDS,
    )  # fmt: skip
    lines = fig.axes[0].get_lines()
    curves = [line for line in lines if line.get_label().startswith("ATZ/BEV")]
    (band,) = [line for line in lines if line.get_label().startswith("Frontier")]
    (wtp,) = [line for line in lines if line.get_label().startswith("Stated WTP")]
    assert len(curves) == 3
    assert all(band.get_zorder() < c.get_zorder() for c in curves)  # no curve hidden
    assert list(wtp.get_xdata()) == [30_000.0, 30_000.0]
    assert all("at the WTP" in c.get_label().replace("\n", " ") for c in curves)
    assert [c.get_color() for c in curves] == [sequence_colour(i) for i in IDS]


def test_evpi_population_axis_and_evppi_lines(tmp_path, psa):
    costs, qalys = psa
    evpi = econ.evpi(costs, qalys, WTP)
    fig = plot_evpi(
        tmp_path / "evpi.png", WTP, evpi, currency="USD", population=33_020.0,
        population_note="7,000 a year for 5 years", wtp=30_000.0,
    )  # fmt: skip
    labels = [ax.get_ylabel() for ax in fig.axes[0].child_axes] + [fig.axes[0].get_ylabel()]
    assert any("33,020 patients" in text for text in labels)
    assert "At the stated WTP" in " ".join(t.get_text() for t in fig.axes[0].texts)
    groups = {"costs": np.minimum(evpi, 100.0), "utilities": None, "survival": evpi / 2}
    fig = plot_evppi(tmp_path / "evppi.png", WTP, groups, evpi, currency="USD", wtp=30_000.0)
    drawn = [line.get_label() for line in fig.axes[0].get_lines()]
    assert drawn[0] == "EVPI (all parameters)" and {"costs", "survival"} <= set(drawn)
    assert "utilities" not in drawn  # not computed: named in the note instead
    assert "Not computed: utilities" in fig._supxlabel.get_text()


# --------------------------------------------------------------------------- tornado


def test_tornado_drops_zero_effect_rows_and_marks_illustrative_inputs(tmp_path):
    rows = [
        {"parameter": "lenvatinib unit price, USD per unit", "illustrative": True,
         "low_label": "116.5", "high_label": "257.1", "low": 16_000.0, "high": -37_000.0},
        {"parameter": "2L lenvatinib OS median (pooled: chon2024, cheon2025), months",
         "low_label": "9.746", "high_label": "14.54", "low": -20_000.0, "high": 7_000.0},
        {"parameter": "atezolizumab price, USD per unit", "low_label": "6,006",
         "high_label": "13,256", "low": -8_254.0, "high": -8_254.0 + 5.8e-6},
        {"parameter": "sorafenib price, USD per unit", "low_label": "112.6",
         "high_label": "248.5", "low": -8_254.0, "high": -8_254.0},
    ]  # fmt: skip
    fig = plot_tornado(
        tmp_path / "t.png", rows, outcome_label="Incremental NMB (USD)", base_value=-8_254.0
    )
    ax = fig.axes[0]
    ticks = [t.get_text().replace("\n", " ") for t in ax.get_yticklabels()]
    assert ticks == [
        "ILLUSTRATIVE lenvatinib unit price, USD per unit",
        "2L lenvatinib OS median (pooled: chon2024, cheon2025), months",
    ]
    assert len(ax.patches) == 4  # two bars for each input with an effect
    assert "2 parameter(s) with no effect" in fig._supxlabel.get_text()
    ends = {t.get_text() for t in ax.texts}
    assert {"116.5", "257.1", "9.746", "14.54"} <= ends


def test_calibration_figure_overlays_each_target_with_its_interval():
    import pandas as pd

    from simseq.report_figures import calibration_figure

    t = np.arange(0.0, 40.0, 0.5)
    curves = pd.DataFrame(
        [
            {"sequence": sid, "curve": f"os_from_line_2: {regimen}", "time_months": x,
             "value": 0.5 ** (x / m), "ci95_low": 0.5 ** (x / m), "ci95_high": 0.5 ** (x / m)}
            for sid, regimen, m in (
                ("atzbev_len", "lenvatinib", 11.9), ("atzbev_sor", "sorafenib", 7.7)
            )
            for x in t
        ]
    )  # fmt: skip
    targets = pd.DataFrame(
        [
            {"regimen": "lenvatinib", "evidence": "2L lenvatinib OS median", "median_months": 11.9,
             "ci95_low_months": 9.7, "ci95_high_months": 14.5},
            {"regimen": "sorafenib", "evidence": "2L sorafenib OS median", "median_months": 7.7,
             "ci95_low_months": None, "ci95_high_months": None},
        ]
    )  # fmt: skip
    fig = calibration_figure(curves, targets, dict(zip(IDS, LABELS, strict=True)))
    left, right = fig.axes
    curves_drawn = [line for line in left.get_lines() if not line.get_label().startswith("_")]
    assert [line.get_label() for line in curves_drawn] == ["ATZ/BEV, then lenvatinib"]
    assert curves_drawn[0].get_color() == sequence_colour("atzbev_len")
    (bar,) = left.containers  # the published median with its interval
    np.testing.assert_allclose(bar.lines[0].get_xydata(), [[11.9, 0.5]])
    assert bar.has_xerr and not right.containers[0].has_xerr  # no interval reported


def test_plain_numbers_have_no_exponent():
    assert plain_number(11_270.3) == "11,270"
    assert plain_number(257.14) == "257.1"
    assert plain_number(0.9382) == "0.9382"
    assert plain_number(0.0) == "0"


# --------------------------------------------------------------------------- console tables


def run_summary() -> dict:
    block = {"median": 18.09, "median_ci95": [17.99, 18.2], "rmst": 21.33}
    os_ = block | {"survival_at": {"12": 0.68, "24": 0.353, "36": 0.158}}
    second = {"fraction_started": 0.703, "os_from_2l": {"median": 11.9}}
    sequence = {
        "label": "ATZ/BEV, then the real-world second-line mix (chon2024)",
        "os_from_1l": os_,
        "pfs_1l": {"median": 7.51},
        "second_line_any": second,
        "transported": [{"x": 1}],
    }
    return {
        "title": "Cost-effectiveness of second-line options after ATZ/BEV (USD 2019)",
        "n_patients": 100_000,
        "seed": 1,
        "horizon": 120.0,
        "landmarks": [12, 24, 36],
        "sequences": {"atzbev_real_world": sequence, "atzbev_bsc": sequence | {"label": None}},
        "warnings": [],
    }


def has(text: str, phrase: str) -> bool:
    """Every word of ``phrase`` is in ``text`` (a table wraps a cell over lines, where
    other columns' words come between)."""
    words = set(text.split())
    return all(w in words for w in phrase.split())


def printed(fn, *args) -> str:
    console = Console(width=100, record=True, file=open("/dev/null", "w"))  # noqa: SIM115
    fn(console, *args)
    return console.export_text()


def test_run_table_fits_100_columns_with_labels_units_and_percent():
    text = printed(print_run_table, run_summary())
    assert max(len(line) for line in text.splitlines()) <= 100
    assert has(text, "ATZ/BEV, then the real-world second-line mix (chon2024) †")
    assert "atzbev_bsc" in text  # no label: the id
    assert "atzbev_real_world" not in text
    assert has(text, "RMST to month 120, months") and has(text, "OS at 12/24/36 months, %")
    assert "68.0/35.3/15.8" in text and "70.3" in text  # survival and proportions alike
    assert "RMST: restricted mean survival" in " ".join(text.split())  # the legend


def test_cea_psa_and_dsa_tables_fit_100_columns():
    cea = {
        "currency": "USD",
        "price_year": 2019,
        "discount_costs": 0.03,
        "discount_qalys": 0.03,
        "willingness_to_pay": 150_000.0,
        "sequences": {
            s: {f"{k}_discounted": {"mean": 1.0} for k in ("costs", "qalys", "lys")} for s in IDS
        },
        "icer_table": [
            {"sequence": "atzbev_bsc", "status": "reference", "icer": None},
            {"sequence": "atzbev_sor", "status": "extendedly dominated", "icer": None},
            {"sequence": "atzbev_len", "status": "non-dominated", "icer": 4_093_906.2},
        ],
        "nmb": dict.fromkeys(IDS, -186_728.0),
    }
    text = printed(print_cea_table, cea, dict(zip(IDS, LABELS, strict=True)))
    assert max(len(line) for line in text.splitlines()) <= 100
    assert has(text, "ATZ/BEV, then lenvatinib") and has(text, "ICER, USD/QALY")
    assert "atzbev" not in text
    assert "4,093,906" in text and "ext. dominated" in text and "extendedly dominated" in text

    interval = {"mean": 372_817.0, "ci95": [269_094.0, 484_111.0]}
    psa = {
        "currency": "USD",
        "n_draws": 200,
        "n_patients_per_draw": 5_000,
        "willingness_to_pay": 150_000.0,
        "labels": dict(zip(IDS, LABELS, strict=True)),
        "ceac": {"wtp": [0.0, 150_000.0], "prob_best": dict.fromkeys(IDS, [0.2, 0.32])},
        "sequences": dict.fromkeys(
            IDS, {"costs": interval, "qalys": interval, "os_median": interval}
        ),
        "warnings": [],
    }
    text = printed(print_psa_table, psa)
    assert max(len(line) for line in text.splitlines()) <= 100
    assert has(text, "P(best) at WTP 150,000 USD/QALY") and "32.0%" in text

    dsa = {
        "focus": "atzbev_len",
        "reference": "atzbev_bsc",
        "currency": "USD",
        "labels": dict(zip(IDS, LABELS, strict=True)),
        "base": {"inc_nmb": -8_254.0},
        "rows": [
            {
                "parameter": "lenvatinib unit price",
                "unit": "USD per unit",
                "illustrative": True,
                "low_input": "116.5",
                "high_input": "257.1",
                "inc_nmb_low": 16_075.0,
                "inc_nmb_high": -37_792.0,
            },
            {
                "parameter": "atezolizumab price",
                "unit": "USD per unit",
                "illustrative": False,
                "low_input": "6,006",
                "high_input": "13,256",
                "inc_nmb_low": -8_254.0,
                "inc_nmb_high": -8_254.0,
            },
        ],  # fmt: skip
        "warnings": [],
    }
    text = printed(print_dsa_table, dsa)
    assert max(len(line) for line in text.splitlines()) <= 100
    assert has(text, "ILLUSTRATIVE lenvatinib unit price, USD per unit")
    assert "atezolizumab" not in text  # no effect on the NMB: not listed
