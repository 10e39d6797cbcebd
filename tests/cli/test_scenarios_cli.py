"""simseq validate / calibrate / run through click's CliRunner, on fixtures and scenarios."""

import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner

from simseq.cli import main

ROOT = Path(__file__).resolve().parents[2]
FIXTURES = ROOT / "tests" / "fixtures"
TINY = str(FIXTURES / "tiny.yaml")
SCENARIOS = sorted((ROOT / "scenarios").glob("*.yaml"))

# broken fixture -> fragments its error must contain (the key path and what is wrong)
BROKEN = {
    "yaml_syntax": ["line 7", "invalid YAML"],
    "unknown_key": ["simulation.n_patient", "unknown key", "allowed: n_patients"],
    "unknown_evidence_id": [
        "calibration.targets.0.target.evidence",
        "unknown evidence id",
        "second_line.lenvatinib.os.chon2024.unadjusted",  # the close match offered
    ],
    "negative_median": ["regimens.atz_bev.time_on_line.median", "> 0", "-7.5"],
    "probabilities_not_summing": ["regimens.lenvatinib.line_end", "sum to 1", "0.9"],
    "missing_median": ["regimens.atz_bev.time_on_line", "needs all of its parameters"],
    "value_without_assumption": ["regimens.atz_bev.time_on_line.shape", "assumption"],
    "unknown_regimen": ["sequences.atzbev_len.lines.1", "unknown regimen", "lenvatinb"],
    "counts_cited_as_median": ["supportive_care.median.evidence", "not a median"],
    "bad_count_key": ["next_line.count", "received_second_line", "received_2l"],
    "wrong_family_param": ["regimens.atz_bev.time_on_line", "weibull takes shape, scale"],
    # reading
    "invalid_utf8": ["not UTF-8", "line 4, column 20"],
    "duplicate_key": ["line 8", "duplicate key 'seed'", "first given on line 7"],
    "alias_bomb": ["more than 100,000 values", "alias"],
    "extends_dev_zero": ["extends", "/dev/zero", "not a .yaml or .yml file"],
    "extends_not_a_scenario": ["extends", "not_a_scenario.yaml", "not a scenario file"],
    # numbers
    "nan_clock_parameter": ["regimens.atz_bev.time_on_line.shape.value", "finite", "nan"],
    "nan_mix_probability": ["sequences.atzbev_len.lines.1.mix.probabilities.lenvatinib", "finite"],
    "infinite_horizon": ["simulation.horizon.value", "finite", "inf"],
    "huge_horizon": ["simulation.horizon.value", "(0, 1200]", "1000000000.0"],
    "too_many_bins": ["simulation.bin_width", "200,000 histogram bins", "19.2 MB", "100,000"],
    "landmark_outside_horizon": [
        "simulation.landmarks.0",
        "simulation.landmarks.2",
        "(0, 60]",
        "-5.0",
    ],
    "huge_n_patients": ["simulation.n_patients", "10000000000", "9223372036854775808"],
    "absurd_calibration_bounds": ["median.calibrate.bounds", "0.01 <= low < high <= 1200"],
    "zero_hazard_ratio": ["time_on_line.hazard_ratio.value", "> 0", "hazard ratio"],
    "probability_above_one": ["regimens.lenvatinib.line_end.probabilities", "[0, 1]", "1.5"],
    "negative_cost": ["economics.supportive_care.cost_per_month.value", ">= 0", "-1500"],
    "utility_above_one": ["economics.supportive_care.utility.value", "<= 1", "1.2"],
    "utility_cites_a_median": [
        "economics.supportive_care.utility",
        "<= 1",
        "second_line.lenvatinib.pfs.chon2024.unadjusted",
    ],
    "discount_rate_above_one": ["economics.discount_qalys.value", "[0, 1)", "1.5"],
    "unreachable_target": ["calibration.targets.0", "unreachable", "[0.5, 1]"],
    "time_on_line_target_frees_pps": ["calibration.targets.0", "free that one"],
    # unknown keys: a suggestion and the allowed keys, at any depth
    "nested_unknown_key": [
        "regimens.atz_bev.time_on_line.medain",
        "did you mean 'median'?",
        "allowed: family, median,",
        "docs/scenario.md",
    ],
    "unknown_key_in_list": [
        "sequences.atzbev_len.lines.1.nxt_line",
        "did you mean 'next_line'?",
        "allowed: regimen, mix, next_line, then",
    ],
    "cost_beyond_exact_sums": [
        "economics: state 'BSC after L1'",
        "cost per month 1e+18",
        "at most 4.6e+15 (currency units) can be accumulated exactly",
    ],
}

# broken fixture -> fragments its error must NOT contain (content of a non-scenario file)
NOT_ECHOED = {"extends_not_a_scenario": ["sk-test", "api_token", "example.invalid"]}


def invoke(*args):
    return CliRunner().invoke(main, [str(a) for a in args], catch_exceptions=False)


def test_every_broken_fixture_has_a_test():
    assert {p.stem for p in (FIXTURES / "broken").glob("*.yaml")} == set(BROKEN)


@pytest.mark.parametrize("name", sorted(BROKEN))
@pytest.mark.parametrize("command", ["validate", "run"])
def test_broken_scenarios_give_clear_errors(name, command, tmp_path):
    path = FIXTURES / "broken" / f"{name}.yaml"
    out = tmp_path / "out"
    args = [command, path] + (["--out", out, "--quiet"] if command == "run" else [])
    result = invoke(*args)
    assert result.exit_code == 2, result.output
    assert str(path) in result.output
    for fragment in BROKEN[name]:
        assert fragment in result.output, (fragment, result.output)
    for fragment in NOT_ECHOED.get(name, []):
        assert fragment not in result.output, (fragment, result.output)
    assert "Traceback" not in result.output
    assert not out.exists()


@pytest.mark.parametrize("path", SCENARIOS, ids=lambda p: p.name)
def test_shipped_scenarios_validate(path):
    result = invoke("validate", path)
    assert result.exit_code == 0, result.output
    assert "valid" in result.output


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("tiny") / "res"
    result = invoke("run", TINY, "--out", out, "--trajectories", 50)
    assert result.exit_code == 0, result.output
    return out, result.output


def test_run_writes_every_output(tiny_run):
    out, output = tiny_run
    names = {p.name for p in out.iterdir()}
    assert {
        "summary.json",
        "survival.csv",
        "survival.png",
        "manifest.json",
        "calibration.csv",
        "calibration.json",
        "trajectories.csv",
    } <= names
    # the table is printed, sequences by their labels, at most 100 columns wide when piped
    assert "ATZ/BEV then lenvatinib" in output and "Median OS" in output
    assert max(len(line) for line in output.splitlines()) <= 100
    summary = json.loads((out / "summary.json").read_text())
    seq = summary["sequences"]["atzbev_len"]
    assert set(seq["os_from_1l"]["survival_at"]) == {"12", "24", "36"}
    for key in ("median", "median_ci95", "rmst"):
        assert key in seq["os_from_1l"]
    assert "median" in seq["pfs_1l"] and "median" in seq["pps_after_1l"]
    block = seq["second_line"]["lenvatinib"]
    for key in ("fraction_started", "pfs_2l", "os_from_2l", "os_from_1l_given_2l"):
        assert key in block and key in seq["second_line_any"]
    assert "second_line" not in summary["sequences"]["atzbev_bsc"]
    curves = pd.read_csv(out / "survival.csv")
    assert set(curves.sequence) == {"atzbev_len", "atzbev_bsc"}
    assert (curves.groupby("sequence").survival.apply(lambda s: s.is_monotonic_decreasing)).all()
    log = pd.read_csv(out / "trajectories.csv")
    assert log.patient.nunique() == 50
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["seed"] == 7 and len(manifest["scenario_sha256"]) == 64
    assert (out / "survival.png").read_bytes()[:4] == b"\x89PNG"
    assert not [p for p in out.parent.iterdir() if p.name.startswith(".")]  # no temp dirs left


def test_calibration_cache_is_reused_until_inputs_change(tmp_path):
    scenario, out = tmp_path / "tiny.yaml", tmp_path / "out"
    scenario.write_text(Path(TINY).read_text())
    for expected in (False, True):
        result = invoke("run", scenario, "--out", out, "--quiet", "--patients", 2000)
        assert result.exit_code == 0, result.output
        manifest = json.loads((out / "manifest.json").read_text())
        assert manifest["calibration"]["from_cache"] is expected
    scenario.write_text(Path(TINY).read_text().replace("test shape}", "test shape changed}"))
    result = invoke("run", scenario, "--out", out, "--quiet", "--patients", 2000)
    assert result.exit_code == 0
    assert json.loads((out / "manifest.json").read_text())["calibration"]["from_cache"] is False


def test_same_seed_identical_summary_across_threads_and_chunks(tmp_path):
    outputs = []
    for i, extra in enumerate([["--threads", 1], ["--threads", 2], ["--chunk-size", 3001]]):
        out = tmp_path / f"r{i}"
        result = invoke("run", TINY, "--out", out, "--quiet", "--patients", 10000, *extra)
        assert result.exit_code == 0, result.output
        outputs.append((out / "summary.json").read_bytes())
    assert outputs[0] == outputs[1] == outputs[2]


def test_ctrl_c_leaves_no_results_directory(tmp_path, monkeypatch):
    import simseq.backend

    real = simseq.backend.run_simulation

    def interrupted(*args, **kwargs):
        kwargs["progress"] = lambda n: (_ for _ in ()).throw(KeyboardInterrupt)
        return real(*args, **kwargs)

    monkeypatch.setattr(simseq.backend, "run_simulation", interrupted)
    out = tmp_path / "res"
    result = invoke("run", TINY, "--out", out, "--quiet")
    assert result.exit_code == 130
    assert "interrupted" in result.output
    assert not out.exists()
    assert list(tmp_path.iterdir()) == []  # nor a hidden partial directory


def test_bad_arguments_exit_non_zero(tmp_path):
    assert invoke("run", TINY, "--patients", 0).exit_code != 0
    result = invoke("run", TINY, "--out", tmp_path / "x", "--trajectories", 200_000, "--quiet")
    assert result.exit_code == 2 and "small runs" in result.output
    assert invoke("run", tmp_path / "missing.yaml").exit_code != 0


@pytest.fixture(scope="module")
def base_case(tmp_path_factory):
    """The shipped base case at its default N (1e6 per sequence), calibration included."""
    out = tmp_path_factory.mktemp("base") / "res"
    result = invoke("run", ROOT / "scenarios" / "base_case.yaml", "--out", out, "--quiet")
    assert result.exit_code == 0, result.output
    return json.loads((out / "summary.json").read_text()), pd.read_csv(out / "calibration.csv")


def test_base_case_sequences_and_flags(base_case):
    summary, _ = base_case
    assert list(summary["sequences"]) == [
        "atzbev_len",
        "atzbev_sor",
        "atzbev_tki_ici",
        "atzbev_bsc",
        "atzbev_real_world",
    ]
    assert summary["n_patients"] >= 1_000_000
    seqs = summary["sequences"]
    assert seqs["atzbev_tki_ici"]["transported"][0]["measured_after"] == "lenvatinib"
    assert all(not seqs[s]["transported"] for s in seqs if s != "atzbev_tki_ici")
    dropped = seqs["atzbev_real_world"]["renormalised"][0]["dropped"]
    assert set(dropped) == {"regorafenib", "fu5_chemotherapy"}
    assert any("transported" in w for w in summary["warnings"])
    # real-world mix: 86:40 sorafenib:lenvatinib among those who started 2L
    second = seqs["atzbev_real_world"]["second_line"]
    share = (
        second["sorafenib"]["fraction_started"]
        / seqs["atzbev_real_world"]["second_line_any"]["fraction_started"]
    )
    n2 = seqs["atzbev_real_world"]["second_line_any"]["os_from_2l"]["n"]
    p = 86 / 126
    assert abs(share - p) < 3 * math.sqrt(p * (1 - p) / n2)


def test_base_case_calibration_hits_targets(base_case):
    """Targets within 1% (the acceptance bar) in calibration, each in its regimen's own
    cohort mix. The full run simulates the common population: TKI+ICI, whose cohort is
    taken to be that population, keeps its 2L OS median within 3 Monte Carlo SEs of its
    target; lenvatinib's fitter cohort puts its common-population median below its
    target, sorafenib's sicker one above (tests/cli/test_comparisons.py checks that each,
    simulated in its own mix, reproduces its target)."""
    summary, cal = base_case
    assert list(cal.columns[:5]) == ["target_id", "quantity", "regimen", "free", "target"]
    assert (cal.rel_error.abs() < 0.01).all(), cal
    sequence_of = {
        "lenvatinib": "atzbev_len",
        "sorafenib": "atzbev_sor",
        "tki_ici": "atzbev_tki_ici",
    }
    for row in cal.itertuples():
        block = summary["sequences"][sequence_of[row.regimen]]
        os2 = block["second_line"][row.regimen]["os_from_2l"]
        se_run = (os2["median_ci95"][1] - os2["median_ci95"][0]) / (2 * 1.959964)
        assert row.method == "quadrature"  # no Monte Carlo error: only the run's counts
        gap = os2["median"] - row.target
        if row.regimen == "tki_ici":
            assert abs(gap) < 3 * se_run, (row, os2)
        else:
            assert (gap < -3 * se_run) if row.regimen == "lenvatinib" else (gap > 3 * se_run)


@pytest.fixture(scope="module")
def cea_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("cea") / "res"
    args = ["run", ROOT / "scenarios" / "cea_base_case.yaml", "--out", out, "--patients", 20000]
    result = invoke(*args)
    assert result.exit_code == 0, result.output
    return json.loads((out / "summary.json").read_text()), result.output, out


def test_cea_summary_and_illustrative_warning(cea_run):
    summary, output, _ = cea_run
    cea = summary["cea"]
    assert cea["currency"] == "USD" and cea["reference"] == "atzbev_bsc"
    assert set(cea["sequences"]) == set(summary["sequences"])
    for block in cea["sequences"].values():
        assert set(block) == {
            "lys",
            "lys_discounted",
            "qalys",
            "qalys_discounted",
            "costs",
            "costs_discounted",
        }
        assert block["costs_discounted"]["mean"] < block["costs"]["mean"]  # 3% discounting
        lo, hi = block["qalys"]["ci95"]
        assert lo <= block["qalys"]["mean"] <= hi
    statuses = {row["sequence"]: row["status"] for row in cea["icer_table"]}
    assert statuses["atzbev_bsc"] == "reference" or "dominated" in statuses["atzbev_bsc"]
    # life-years from the economics and the survival curve (RMST / 12) agree
    for sid, seq in summary["sequences"].items():
        lys = cea["sequences"][sid]["lys"]["mean"]
        assert lys == pytest.approx(seq["life_years_undiscounted"], rel=2e-3)
    assert any(w.startswith("ILLUSTRATIVE") for w in summary["warnings"])
    assert "lenvatinib.unit_price" in next(w for w in summary["warnings"] if "ILLUSTRATIVE" in w)
    assert "Cost-effectiveness" in output and "ILLUSTRATIVE" in output


def test_run_writes_cea_csv(cea_run):
    summary, _, out = cea_run
    table = pd.read_csv(out / "cea.csv")
    assert list(table.sequence) == [row["sequence"] for row in summary["cea"]["icer_table"]]
    assert {
        "label",
        "lys_discounted (years)",
        "qalys_discounted (QALYs)",
        "costs_discounted (USD)",
        "inc_costs_vs_reference (USD)",
        "icer_frontier (USD per QALY)",
        "status",
    } <= set(table.columns)
    ref = table.set_index("sequence").loc["atzbev_bsc"]
    assert ref["status"] == "reference" and ref["inc_costs_vs_reference (USD)"] == 0
    assert table["costs_discounted (USD)"].is_monotonic_increasing  # sorted by cost


def test_cea_identical_across_threads(tmp_path):
    path = ROOT / "scenarios" / "cea_base_case.yaml"
    a = invoke("run", path, "--out", tmp_path / "a", "--quiet", "--patients", 5000, "--threads", 1)
    b = invoke(
        "run",
        path,
        "--out",
        tmp_path / "b",
        "--quiet",
        "--patients",
        5000,
        "--threads",
        2,
        "--chunk-size",
        1234,
    )
    assert a.exit_code == b.exit_code == 0
    assert (tmp_path / "a" / "summary.json").read_bytes() == (
        tmp_path / "b" / "summary.json"
    ).read_bytes()


def test_psa_writes_summary_draws_and_plots(tmp_path):
    out = tmp_path / "psa"
    args = ["psa", ROOT / "scenarios" / "cea_base_case.yaml", "--draws", 40, "--patients", 500]
    result = invoke(*args, "--out", out, "--threads", 1)
    assert result.exit_code == 0, result.output
    summary = json.loads((out / "psa_summary.json").read_text())
    for block in summary["sequences"].values():
        assert set(block) >= {"lys", "qalys", "costs", "os_median"}
        lo, hi = block["qalys"]["ci95"]
        assert lo <= block["qalys"]["mean"] <= hi
    assert set(summary["ceac"]) == {"wtp", "prob_best"}
    probs = np.array(list(summary["ceac"]["prob_best"].values()))
    np.testing.assert_allclose(probs.sum(axis=0), 1.0)
    assert min(summary["evpi"]["value"]) >= 0 and len(summary["evpi"]["wtp"]) == probs.shape[1]
    assert summary["icer_table"] and summary["parameters"] and summary["held_fixed"]
    groups = summary["evppi"]["groups"]
    assert {"second_line_efficacy", "drug_prices", "costs", "utilities"} <= set(groups)
    assert all(len(v) == len(summary["evppi"]["wtp"]) for v in groups.values())
    # 500 patients per draw is too few: the noise warning must say so
    assert any("Monte Carlo noise" in w for w in summary["warnings"])
    draws = pd.read_csv(out / "psa_draws.csv")
    assert len(draws) == 40 * 5 and {"draw", "sequence", "qalys", "costs"} <= set(draws.columns)
    for png in ("ce_plane.png", "ceac.png", "evpi.png", "evppi.png"):
        assert (out / png).read_bytes()[:4] == b"\x89PNG"
    population = summary["evpi"]["population"]
    assert population["patients_per_year"] == 7000 and population["decision_years"] == 5
    # 7,000 a year for 5 years at 3%: 7,000 x (1 + 1/1.03 + ... + 1/1.03^4)
    assert population["discounted_patients"] == pytest.approx(7000 * 4.717098, rel=1e-6)
    assert summary["labels"]["atzbev_len"] == "ATZ/BEV, then lenvatinib"
    again = invoke(*args, "--out", tmp_path / "again", "--threads", 2, "--quiet")
    assert again.exit_code == 0
    assert (tmp_path / "again" / "psa_summary.json").read_bytes() == (
        out / "psa_summary.json"
    ).read_bytes()


def test_psa_needs_economics(tmp_path):
    result = invoke("psa", ROOT / "scenarios" / "base_case.yaml", "--out", tmp_path / "p")
    assert result.exit_code == 2 and "economics" in result.output
    assert not (tmp_path / "p").exists()


def test_dsa_tornado_and_table(tmp_path):
    out = tmp_path / "dsa"
    result = invoke(
        "dsa",
        ROOT / "scenarios" / "cea_base_case.yaml",
        "--patients",
        2000,
        "--out",
        out,
        "--quiet",
    )
    assert result.exit_code == 0, result.output
    summary = json.loads((out / "dsa_summary.json").read_text())
    rows = summary["rows"]
    assert summary["focus"] == "atzbev_len" and summary["reference"] == "atzbev_bsc"
    widths = [abs(r["inc_nmb_high"] - r["inc_nmb_low"]) for r in rows]
    assert widths == sorted(widths, reverse=True)  # ranked for the tornado
    # common random numbers: a parameter that only prices sorafenib cannot move len vs BSC
    sor = next(r for r in rows if "sorafenib_200mg_tablet" in r["key"])
    assert sor["inc_nmb_low"] == pytest.approx(summary["base"]["inc_nmb"], abs=1e-6)
    for png in ("tornado_nmb.png", "tornado_os.png"):
        assert (out / png).read_bytes()[:4] == b"\x89PNG"
    price = next(r for r in rows if r["key"] == "value:economics.drugs.lenvatinib.unit_price")
    assert price["illustrative"] and price["unit"] == "USD per unit"
    assert price["parameter"] == "lenvatinib unit price"
    assert all("e+" not in r["low_input"] + r["high_input"] for r in rows)  # plain numbers


def test_sweep_grid_to_tidy_table(tmp_path):
    out = tmp_path / "sweep"
    uptake = "sequences.atzbev_len.lines.0.next_line=0.5:0.9:3"
    result = invoke(
        "sweep",
        ROOT / "scenarios" / "cea_base_case.yaml",
        "--param",
        uptake,
        "--patients",
        2000,
        "--out",
        out,
    )
    assert result.exit_code == 0, result.output
    table = pd.read_csv(out / "sweep.csv")
    assert len(table) == 3 * 5
    name = "sequences.atzbev_len.lines.0.next_line"
    len_rows = table[table.sequence == "atzbev_len"].sort_values(name)
    assert len_rows[name].tolist() == [0.5, 0.7, 0.9]
    # the uptake cites one evidence record shared by four sequences: all four move, and
    # the console and sweep.csv both say so
    shared = [
        f"sequences.{s}.lines.0.next_line"
        for s in ("atzbev_len", "atzbev_sor", "atzbev_tki_ici", "atzbev_real_world")
    ]
    assert set(table[f"{name} moves"]) == {"; ".join(shared)}
    said = " ".join(result.output.split())
    assert f"{name} moves 4 input(s)" in said and all(p in said for p in shared)
    # more second-line uptake, longer survival (common random numbers: a monotone response)
    assert len_rows.lys.is_monotonic_increasing
    bad = invoke(
        "sweep",
        ROOT / "scenarios" / "cea_base_case.yaml",
        "--param",
        "nope=1:2:3",
        "--out",
        tmp_path / "bad",
    )
    assert bad.exit_code == 2 and "not a scalar parameter" in bad.output
    assert not (tmp_path / "bad").exists()
