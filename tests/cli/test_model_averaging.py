"""A model-averaged PSA: each structure's own PSA with draws in proportion to its weight,
pooled; the structural choice's EVPPI is exact for a discrete parameter."""

import json
from pathlib import Path

import numpy as np
import pytest

import simseq
from simseq import econ
from simseq.scenario import ScenarioError, load_scenario
from simseq.study import _shares

ROOT = Path(__file__).resolve().parents[2]
CEA = ROOT / "scenarios" / "cea_base_case.yaml"


def test_draws_are_shared_out_by_largest_remainder():
    assert _shares({"a": 0.5, "b": 0.25, "c": 0.25}, 10) == {"a": 5, "b": 3, "c": 2}
    assert sum(_shares({"a": 1 / 3, "b": 1 / 3, "c": 1 / 3}, 1000).values()) == 1000


def test_pooled_draws_are_each_structures_own_psa(tmp_path):
    from simseq.commands import run_psa

    study = simseq.load(CEA)
    n, patients, seed = 8, 500, 4
    summary, out = run_psa(
        CEA,
        n_draws=n,
        n_patients=patients,
        seed=seed,
        model_average=True,
        out=tmp_path / "psa",
        quiet=True,
    )
    draws = summary["model_averaging"]["draws"]
    assert draws == {"base": 4, "ps_matched": 2, "loglogistic_second_line_pfs": 2}
    # the pooled sample is the structures' PSAs, each run as it would be alone
    alone = {
        "base": study.psa(4, patients, seed),
        "ps_matched": study.alternative("ps_matched").psa(2, patients, seed),
        "loglogistic_second_line_pfs": study.alternative("loglogistic_second_line_pfs").psa(
            2, patients, seed
        ),
    }
    qalys = np.concatenate([r.outputs["qalys"] for r in alone.values()])
    costs = np.concatenate([r.outputs["costs"] for r in alone.values()])
    names = alone["base"].names
    for q, s in enumerate(names):
        assert summary["sequences"][s]["qalys"]["mean"] == pytest.approx(qalys[:, q].mean())
    # EVPPI of the structure: sum_k w_k max_d E[NMB_d | k] - max_d sum_k w_k E[NMB_d | k]
    wtp = np.asarray(summary["model_averaging"]["evppi_structure"]["wtp"])
    within = np.stack(
        [econ.nmb(r.outputs["costs"], r.outputs["qalys"], wtp).mean(axis=1) for r in alone.values()]
    )
    w = np.array([4, 2, 2])[:, None] / 8
    expected = (w * within.max(axis=2)).sum(0) - (w[:, :, None] * within).sum(0).max(axis=1)
    got = np.asarray(summary["model_averaging"]["evppi_structure"]["value"])
    np.testing.assert_allclose(got, expected, atol=1e-5)
    assert np.all(got >= -1e-9)
    # nor can the structural choice be worth more than perfect information on everything
    evpi = econ.evpi(costs, qalys, wtp)
    assert np.all(got <= evpi + 1e-6)
    written = json.loads((out / "psa_summary.json").read_text())
    assert set(written["structures"]) == set(draws)
    rows = (out / "psa_draws.csv").read_text().splitlines()
    assert rows[0].endswith(",structure") and len(rows) == 1 + n * len(names)
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["model_averaging"]["weights"]["base"] == 0.5


def test_weights_must_name_structures_and_sum_to_one():
    data = load_scenario(CEA).model_dump(mode="json", exclude_none=True)
    data["psa"]["model_averaging"]["weights"] = {"base": 0.5, "no_such": 0.5}
    with pytest.raises(ScenarioError, match="psa.model_averaging.weights: unknown structure"):
        simseq.Study.from_dict(data)
    data["psa"]["model_averaging"]["weights"] = {"base": 0.5, "ps_matched": 0.4}
    with pytest.raises(ScenarioError, match="must sum to 1"):
        simseq.Study.from_dict(data)
