"""REF-HCC (shared/bench/REF_MODEL.md) simulated three ways against numerical integration.

N = 1,000,000 patients at seed 20260101, through ``simulate`` on the compiled
scenario, through ``simseq run`` (summary.json) and through the NumPy baseline
of simseq.bench. Every output (median OS, RMST to 120 months, S(12), S(24))
must lie within 3 Monte Carlo standard errors of the integrated value
(``ref_hcc_reference``, accurate to ~1e-8, far below the SEs). The SE comes
from the simulated curve: Greenwood at the landmarks, the Brookmeyer-Crowley
95% interval's half-width / 1.96 for the median, the curve's RMST SE. At this N
the SEs are about 0.013 months (median), 0.011 months (RMST), 5e-4 (S(12))
and 4e-4 (S(24)), so the tolerances are about 0.04 months, 0.033 months,
1.5e-3 and 1.2e-3. simseq and the NumPy baseline must also agree with each
other within 3 combined SEs (sqrt(se_a^2 + se_b^2)): the same model, different
random numbers. About 10 s in all.
"""

import json
import math
from pathlib import Path

import pytest
from click.testing import CliRunner

from simseq import bench
from simseq.cli import main
from simseq.outcomes import Z95

ROOT = Path(__file__).resolve().parents[2]
REF = ROOT / "scenarios" / "ref_hcc.yaml"
N = 1_000_000
SEED = 20260101
Z = 3.0
OUTPUTS = ("median", "rmst_120", "s12", "s24")


@pytest.fixture(scope="module")
def reference() -> dict:
    return bench.ref_hcc_reference()


@pytest.fixture(scope="module")
def simseq_outputs() -> dict:
    return bench.simseq_ref_hcc(bench.ref_hcc_model(), N, SEED)


@pytest.fixture(scope="module")
def numpy_outputs() -> dict:
    return bench.numpy_ref_hcc_outputs(N, SEED)


def assert_within(outputs: dict, reference: dict, who: str) -> None:
    for key in OUTPUTS:
        se = outputs[f"{key}_se"]
        assert math.isfinite(se) and se > 0, f"{who}: no SE for {key}"
        gap = outputs[key] - reference[key]
        assert abs(gap) <= Z * se, (
            f"{who} {key} = {outputs[key]:.6f}, integrated {reference[key]:.6f}: "
            f"{gap / se:+.2f} SE (tolerance {Z} SE = {Z * se:.2g})"
        )


def test_reference_is_self_consistent(reference):
    assert bench.ref_hcc_survival(reference["median"]) == pytest.approx(0.5, abs=1e-10)
    assert 1.0 > reference["s12"] > reference["s24"] > 0.0
    assert reference["median"] < reference["rmst_120"] < bench.REF_HORIZON


def test_simulate_matches_integration(simseq_outputs, reference):
    assert_within(simseq_outputs, reference, "simulate")


def test_simseq_run_matches_integration(tmp_path, reference):
    out = tmp_path / "ref"
    result = CliRunner().invoke(
        main,
        ["run", str(REF), "--patients", str(N), "--seed", str(SEED), "--out", str(out), "--quiet"],
        catch_exceptions=False,
    )
    assert result.exit_code == 0, result.output
    summary = json.loads((out / "summary.json").read_text())
    assert summary["n_patients"] == N
    os_ = summary["sequences"]["ref_hcc"]["os_from_1l"]

    def se(ci):
        return (ci[1] - ci[0]) / (2 * Z95)

    outputs = {
        "median": os_["median"],
        "median_se": se(os_["median_ci95"]),
        "rmst_120": os_["rmst"],
        "rmst_120_se": se(os_["rmst_ci95"]),
    }
    assert os_["rmst_horizon"] == bench.REF_HORIZON
    for t in ("12", "24"):
        outputs[f"s{t}"] = os_["survival_at"][t]
        outputs[f"s{t}_se"] = se(os_["survival_at_ci95"][t])
    assert_within(outputs, reference, "simseq run")


def test_numpy_baseline_matches_integration(numpy_outputs, reference):
    assert_within(numpy_outputs, reference, "NumPy baseline")


def test_numpy_baseline_and_simseq_agree(numpy_outputs, simseq_outputs):
    for key in OUTPUTS:
        se = math.hypot(numpy_outputs[f"{key}_se"], simseq_outputs[f"{key}_se"])
        gap = simseq_outputs[key] - numpy_outputs[key]
        assert abs(gap) <= Z * se, f"{key}: simseq - NumPy = {gap:.3g} ({gap / se:+.2f} SE)"
