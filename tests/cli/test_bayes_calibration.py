"""Bayesian calibration end to end: scenarios/base_case_bayes.yaml through
``simseq calibrate``, its outputs, the base case and PSA it feeds, and its checks."""

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from click.testing import CliRunner

import simseq
from simseq.cli import main
from simseq.fit import Z95
from simseq.scenario import ScenarioError

ROOT = Path(__file__).resolve().parents[2]
BAYES = ROOT / "scenarios" / "base_case_bayes.yaml"
BASE = ROOT / "scenarios" / "base_case.yaml"


def invoke(*args):
    return CliRunner().invoke(main, [str(a) for a in args])


@pytest.fixture(scope="module")
def calibrated(tmp_path_factory):
    out = tmp_path_factory.mktemp("bayes") / "res"
    result = invoke("calibrate", BAYES, "--out", out)
    assert result.exit_code == 0, result.output
    return out, result.output


def test_every_published_value_lies_in_its_replicated_data_interval(calibrated):
    out, _ = calibrated
    table = pd.read_csv(out / "calibration.csv")
    assert len(table) == 4
    assert table["published_inside_replicated95"].all(), table.to_string()
    inside = (table["replicated_lo95"] <= table["published"]) & (
        table["published"] <= table["replicated_hi95"]
    )
    assert inside.all()
    # replicated data add the targets' sampling noise: wider than the model's interval
    assert (table["replicated_lo95"] < table["model_lo95"]).all()
    assert (table["replicated_hi95"] > table["model_hi95"]).all()
    assert set(table["unit"]) == {"months", "probability"}


def test_the_summary_reports_ess_and_the_sampler(calibrated):
    out, printed = calibrated
    summary = json.loads((out / "calibration_summary.json").read_text())
    assert summary["ess"] >= 500 and summary["stopped"] == "ess"
    assert summary["likelihood_evaluations"] == 2000 + 500 * summary["iterations"]
    assert 0 < summary["expected_unique_points"] <= summary["n_resample"] == 1000
    assert summary["targets_inside_replicated_95"] == summary["n_targets"] == 4
    assert "simseq_version" in summary and "scenario_sha256" in summary
    assert "ESS" in printed


def test_posterior_csv_names_every_free_parameter_with_its_unit(calibrated):
    out, _ = calibrated
    posterior = pd.read_csv(out / "posterior.csv")
    assert len(posterior) == 1000
    assert list(posterior.columns) == [
        "draw",
        "regimens.atz_bev.time_on_line.shape [no unit]",
        "regimens.atz_bev.line_end.death_share [probability]",
        "regimens.lenvatinib.after_progression.median [months]",
        "regimens.sorafenib.after_progression.median [months]",
        "regimens.tki_ici.after_progression.median [months]",
    ]
    assert (posterior.iloc[:, 1:] > 0).all().all()


def test_figures_are_written(calibrated):
    out, _ = calibrated
    for name in ("posterior_marginals", "posterior_pairs", "posterior_predictive"):
        assert (out / f"{name}.png").stat().st_size > 10_000


def test_calibrating_again_is_the_same_and_rewrites_its_directory(calibrated, tmp_path):
    out, _ = calibrated
    result = invoke("calibrate", BAYES, "--out", out, "--quiet")
    assert result.exit_code == 0, result.output
    first = pd.read_csv(out / "posterior.csv")
    again = tmp_path / "again"
    assert invoke("calibrate", BAYES, "--out", again, "--quiet").exit_code == 0
    pd.testing.assert_frame_equal(first, pd.read_csv(again / "posterior.csv"))


def test_method_override_needs_priors():
    result = invoke("calibrate", BASE, "--method", "bayes", "--out", "/nonexistent/x")
    assert result.exit_code != 0
    assert "with --method bayes" in result.output and "priors" in result.output


def test_the_base_case_runs_at_the_posterior_mean():
    study = simseq.load(BAYES)
    row = study.rows()
    posterior = study.posterior
    for f, mean in zip(posterior.free, posterior.mean, strict=True):
        assert row[0, f.column] == mean
    # the shape's posterior mean, not its prior median, is what the base case binds
    assert row[0, study.resolved.free_columns["regimens.atz_bev.time_on_line.shape"]] != 1.0


def test_psa_draws_carry_the_posterior():
    study = simseq.load(BAYES)
    study.calibrate()
    draws = study.table.draw(1000, 7)
    rows = study.posterior.with_draws(draws, 7)
    cols = [f.column for f in study.posterior.free]
    np.testing.assert_array_equal(rows[:, cols], study.posterior.sample)  # draw d = sample d
    fewer = study.posterior.with_draws(draws[:10], 7)
    sample = {tuple(r) for r in study.posterior.sample}
    assert all(tuple(r) in sample for r in fewer[:, cols])
    # everything else is the PSA's own draw
    others = [c for c in range(draws.shape[1]) if c not in cols]
    np.testing.assert_array_equal(rows[:, others], draws[:, others])


def _bayes_with(tmp_path, change) -> Path:
    data = yaml.safe_load(BAYES.read_text())
    data["extends"] = str(BASE)
    change(data)
    path = tmp_path / "bayes.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def test_the_landmark_se_comes_from_its_record_ci():
    """IMbrave150's 12-month OS has a 95% CI of 61.3% to 73.1% (Finn et al. 2020)."""
    (landmark,) = [t for t in simseq.load(BAYES).resolved.bayes_targets if t.unit == "probability"]
    assert landmark.se == pytest.approx((0.731 - 0.613) / (2 * Z95), rel=1e-12)


def test_a_landmark_without_an_se_is_refused(tmp_path):
    assumed = {"value": 0.6, "assumption": "a landmark with no CI, events or n"}
    path = _bayes_with(tmp_path, lambda d: d["calibration"]["targets"][0].update(target=assumed))
    with pytest.raises(ScenarioError, match=r"calibration.targets.0.*no SE.*give 'se:'"):
        simseq.load(path)


def test_a_calibrated_median_without_a_prior_is_refused(tmp_path):
    path = _bayes_with(
        tmp_path,
        lambda d: d["calibration"]["priors"].pop("regimens.tki_ici.after_progression.median"),
    )
    with pytest.raises(ScenarioError, match="tki_ici.after_progression.median.*no prior"):
        simseq.load(path)


def test_a_prior_on_no_number_is_refused(tmp_path):
    def change(d):
        d["calibration"]["priors"]["regimens.atz_bev.time_on_line.scale"] = {
            "median": 1.0,
            "se_log": 0.5,
            "assumption": "test",
        }

    with pytest.raises(ScenarioError, match="not the key path of a number"):
        simseq.load(_bayes_with(tmp_path, change))


def test_a_landmark_target_needs_a_sequence_and_month(tmp_path):
    path = _bayes_with(tmp_path, lambda d: d["calibration"]["targets"][0].pop("month"))
    with pytest.raises(ScenarioError, match="needs 'sequence:' and 'month:'"):
        simseq.load(path)


def test_free_belongs_to_point_calibration(tmp_path):
    def change(d):
        d["calibration"]["targets"][1]["free"] = "after_progression.median"

    with pytest.raises(ScenarioError, match="method: bayes frees the keys of priors"):
        simseq.load(_bayes_with(tmp_path, change))


def test_a_psa_takes_the_posterior_jointly_and_a_dsa_its_quantiles(tmp_path):
    data = yaml.safe_load(BAYES.read_text())
    data["extends"] = str(ROOT / "scenarios" / "cea_base_case.yaml")
    # base_case_bayes drops the structural alternatives, so their weights go too
    data["psa"] = {"model_averaging": None}
    path = tmp_path / "cea_bayes.yaml"
    path.write_text(yaml.safe_dump(data))
    study = simseq.load(path)
    psa = study.psa(n_draws=20, n_patients=200, seed=3)
    posterior = study.posterior
    names = [study.table.find(f.path).name for f in posterior.free]
    drawn = psa.parameters[names].to_numpy()
    # each PSA row is one whole posterior draw (resampled: 20 draws of 1000), not a mix
    assert {tuple(r) for r in drawn} <= {tuple(r) for r in posterior.sample}
    assert "PSA draw d takes posterior draw d" in psa._manifest()["calibration"]["per_case"]
    params, rows = study.table.one_way_rows()
    j = [p.name for p in params].index(names[0])
    lo, hi = np.quantile(posterior.sample[:, 0], [0.025, 0.975])
    col = posterior.free[0].column
    assert rows[1 + 2 * j, col] == lo and rows[2 + 2 * j, col] == hi
    assert rows[0, col] == posterior.mean[0]  # the base row: the posterior mean


def test_the_landmark_by_quadrature_agrees_with_the_engine():
    # the engine's S(12) of 50,000 patients has binomial SE sqrt(p (1 - p) / n) ~ 0.0022;
    # quadrature is exact up to O(step^2) ~ 1e-4 (no Monte Carlo noise): allow 4 SE
    from simseq.posterior import TargetModel

    study = simseq.load(BAYES)
    run = study.run(n_patients=50_000)
    engine = run.summary_dict["sequences"]["atzbev_real_world"]["os_from_1l"]["survival_at"]["12"]
    quadrature = TargetModel(study.resolved, "test")(run.rows)[0, 0]
    se = np.sqrt(quadrature * (1 - quadrature) / 50_000)
    assert abs(engine - quadrature) < 4 * se


def test_points_no_clock_can_take_get_no_likelihood_instead_of_stopping_the_sampler():
    """A wide prior proposes a first-line Weibull shape of 3e-4, which no scale can fit to
    the median: that point's targets are nan (zero likelihood), the others computed."""
    from simseq.posterior import TargetModel

    study = simseq.load(BAYES)
    model = TargetModel(study.resolved, str(BAYES))
    rows = np.repeat(study.table.base_row(), 3, axis=0)
    shape = study.table.column(study.table.find("regimens.atz_bev.time_on_line.shape").columns[0])
    rows[1, shape] = 3e-4
    values = model(rows)
    assert np.isnan(values[1]).any() and np.isfinite(values[[0, 2]]).all()
    np.testing.assert_array_equal(values[0], values[2])
