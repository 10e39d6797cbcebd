"""Everything uncertain is drawn, or listed: uncertainty stated in a scenario for its
assumptions, random-effects pools with their heterogeneity, and the warnings that say
when a pool or a PSA cannot bear the weight put on it."""

import math
from pathlib import Path

import numpy as np
import pytest
import yaml

import simseq
from simseq.fit import Z95
from simseq.params import Beta, Dirichlet, LogNormal
from simseq.scenario import ScenarioError, load_scenario

ROOT = Path(__file__).resolve().parents[2]
BASE = ROOT / "scenarios" / "base_case.yaml"
CEA = ROOT / "scenarios" / "cea_base_case.yaml"


@pytest.fixture(scope="module")
def base():
    return simseq.load(BASE)


def _data(path=BASE) -> dict:
    return load_scenario(path).model_dump(mode="json", exclude_none=True)


def test_shapes_death_shares_and_transport_are_drawn_as_the_scenario_states(base):
    table = base.table
    shape = table.find("regimens.lenvatinib.time_on_line.shape")
    assert shape.distribution == LogNormal(math.log(1.43 / 0.7) / (2 * Z95))
    assert "uncertainty (lognormal)" in shape.note
    death = table.find("regimens.sorafenib.line_end")
    assert death.distribution == Dirichlet((90.0, 10.0))
    hr = table.find("regimens.tki_ici.transport_hazard_ratio")
    assert isinstance(hr.distribution, LogNormal) and hr.base == (1.0,)
    held = {h["name"] for h in base.held_fixed()}
    assert not any("shape" in n or "line_end" in n or "transport" in n for n in held)
    # drawn around the stated value: the median of the log-normal is the value itself
    rows = table.draw(4000, seed=5)
    col = table.column(shape.columns[0])
    # SE of the sample median of log values ~ 1.2533 se / sqrt(n); 4 of those
    se_median = 1.2533 * shape.distribution.se_log / math.sqrt(4000)
    assert abs(np.median(np.log(rows[:, col]))) < 4 * se_median


def test_a_probability_and_evidence_without_uncertainty_can_state_one():
    study = simseq.load(CEA)
    rate = study.table.find("economics.regimens.lenvatinib.grade3_ae_rate")
    assert rate.distribution == Beta(0.35 * 40, 0.65 * 40)
    placeholder = study.table.find("economics.regimens.atz_bev.grade3_ae_rate")
    assert placeholder.distribution == Beta(0.3 * 50, 0.7 * 50)


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        # a stated range must contain its value
        (
            lambda d: d["regimens"]["lenvatinib"]["time_on_line"]["shape"]["uncertainty"].update(
                ci95=[1.1, 1.5]
            ),
            "must contain the value 1",
        ),
        # one spread, of the kind the distribution takes
        (
            lambda d: d["regimens"]["lenvatinib"]["time_on_line"]["shape"]["uncertainty"].update(
                se_log=0.2
            ),
            "exactly one of se_log or ci95",
        ),
        # a line end's split is drawn as a Dirichlet
        (
            lambda d: d["regimens"]["lenvatinib"]["line_end"]["uncertainty"].update(
                distribution="beta"
            ),
            "is a dirichlet",
        ),
        # evidence with its own uncertainty keeps it
        (
            lambda d: d["supportive_care"]["median"].update(
                uncertainty={"distribution": "lognormal", "se_log": 0.2, "assumption": "why"}
            ),
            "reports its own uncertainty",
        ),
        # PS-matched and unadjusted records are never pooled together
        (
            lambda d: d["regimens"]["lenvatinib"]["time_on_line"]["median"].update(
                pool=[
                    "second_line.lenvatinib.pfs.chon2024.unadjusted",
                    "second_line.lenvatinib.pfs.cheon2025.ps_matched",
                ]
            ),
            "pools records of different cohorts",
        ),
    ],
)
def test_bad_uncertainty_and_mixed_cohorts_are_refused(edit, message):
    data = _data()
    edit(data)
    with pytest.raises(ScenarioError, match=message):
        simseq.Study.from_dict(data)


def test_heterogeneous_pools_are_reported_and_warned(base):
    warnings = [w for w in base.warnings() if w.startswith("heterogeneous pool")]
    # second-line PFS of both TKIs and sorafenib OS disagree between chon2024 and cheon2025
    assert len(warnings) == 3 and all("I^2 = " in w and "tau^2" in w for w in warnings)
    sorafenib_os = base.table.find("calibration.targets.1.target")
    pooled = sorafenib_os.pooling.pooled
    assert pooled.method == "random_effects" and pooled.i2 > 0.9
    assert sorafenib_os.distribution.se_log == pytest.approx(pooled.se)


def test_fixed_effect_and_predictive_pools_are_explicit_choices():
    data = _data()
    median = data["regimens"]["sorafenib"]["time_on_line"]["median"]
    median["pooling"] = {"method": "fixed_effect"}
    fixed = simseq.Study.from_dict(data).table.find("regimens.sorafenib.time_on_line.median")
    median["pooling"] = {"psa": "predictive"}
    predictive = simseq.Study.from_dict(data).table.find("regimens.sorafenib.time_on_line.median")
    random = simseq.load(BASE).table.find("regimens.sorafenib.time_on_line.median")
    assert fixed.distribution.se_log < random.distribution.se_log < predictive.distribution.se_log
    assert predictive.distribution.se_log == pytest.approx(random.pooling.pooled.predictive_se)
    # a fixed-effect pool that disagrees says its SE understates the uncertainty
    warned = [w for w in simseq.Study.from_dict(data).warnings() if "fixed effect" in w]
    assert not warned  # predictive is random effects
    median["pooling"] = {"method": "fixed_effect"}
    warned = [w for w in simseq.Study.from_dict(data).warnings() if "fixed effect" in w]
    assert len(warned) == 1 and "understates" in warned[0]


def test_psa_lists_what_it_holds_fixed_and_warns_on_too_few_draws(tmp_path):
    from click.testing import CliRunner

    from simseq.cli import main

    out = tmp_path / "psa"
    args = ["psa", str(CEA), "--draws", "40", "--patients", "500", "--out", str(out)]
    printed = CliRunner().invoke(main, args, catch_exceptions=False).output
    assert "held fixed in this PSA (18 inputs" in printed
    summary = yaml.safe_load((out / "psa_summary.json").read_text())
    held = {h["name"]: h["because"] for h in summary["held_fixed"]}
    assert held and all(held.values())
    assert "dosing schedule" in held["value:economics.drugs.sorafenib.units_per_dose"]
    assert any(w.startswith("EVPPI from 40 draws") for w in summary["warnings"])
    assert [p["parameter"].split(":")[0] for p in summary["pooling"]] == ["pool"] * 4
    assert all(p["tau2"] >= 0 and p["i2"] is not None for p in summary["pooling"])
    for h in summary["held_fixed"]:
        assert h["name"].removeprefix("value:") in " ".join(printed.split())
