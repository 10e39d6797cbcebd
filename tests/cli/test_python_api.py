"""The README's Python example runs as written and returns DataFrames; a PSA's base case
is the run at the same seed and N, bit for bit."""

import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import simseq

ROOT = Path(__file__).resolve().parents[2]
CEA = ROOT / "scenarios" / "cea_base_case.yaml"


def readme_example() -> str:
    text = (ROOT / "README.md").read_text()
    section = text.split("## Python API", 1)[1]
    return re.search(r"```python\n(.*?)```", section, re.S).group(1)


def test_the_readme_example_runs_and_returns_dataframes(tmp_path, monkeypatch):
    (tmp_path / "scenarios").symlink_to(ROOT / "scenarios")
    monkeypatch.chdir(tmp_path)
    namespace: dict = {}
    exec(compile(readme_example(), "README.md", "exec"), namespace)
    study, res, psa = namespace["study"], namespace["res"], namespace["psa"]
    frames = [study.parameters, res.summary, res.survival, res.validation, psa.draws]
    frames += [psa.parameters]
    frames += [namespace["tornado"].table, namespace["grid"].table]
    assert all(isinstance(f, pd.DataFrame) and len(f) for f in frames)
    assert list(res.summary.index) == list(study.scenario.sequences)
    assert {"os_median_months", "qalys_discounted", "costs_discounted"} <= set(res.summary)
    assert set(res.survival.columns) == {"sequence", "time", "survival", "lower", "upper"}
    assert len(psa.draws) == 200 * len(study.scenario.sequences)
    assert len(psa.parameters) == 200
    # save writes what the commands write
    assert {"summary.json", "survival.csv", "survival.png", "validation.csv", "manifest.json"} <= {
        p.name for p in (tmp_path / "results" / "x").iterdir()
    }
    assert {
        "psa_summary.json",
        "psa_draws.csv",
        "psa_parameters.csv",
        "calibration_draws.csv",
        "ceac.png",
    } <= {p.name for p in (tmp_path / "results" / "x" / "psa").iterdir()}


def test_psa_base_is_the_run_bit_for_bit():
    study = simseq.load(CEA)
    psa = study.psa(n_draws=20, n_patients=3_000, seed=9)
    run = simseq.load(CEA).run(n_patients=3_000, seed=9)
    for name in ("hist", "exit_counts", "econ"):
        np.testing.assert_array_equal(getattr(psa.base.tallies, name), getattr(run.tallies, name))
    assert psa.base.summary_dict == run.summary_dict
    # the statistics are over the random draws; the base case is reported beside them
    summary = psa.summary_dict
    assert summary["n_draws"] == 20 and set(summary["base_case"]) == set(study.scenario.sequences)
    base_costs = summary["base_case"]["atzbev_len"]["costs"]
    assert base_costs == pytest.approx(
        run.summary_dict["cea"]["sequences"]["atzbev_len"]["costs_discounted"]["mean"]
    )


def test_a_study_from_a_dict_takes_overrides_by_name():
    import yaml

    data = yaml.safe_load((ROOT / "tests" / "fixtures" / "tiny.yaml").read_text())
    data["title"] = "edited in memory"
    study = simseq.Study.from_dict(data)
    assert study.scenario.title == "edited in memory" and study.identity is None
    base = study.run(n_patients=2_000, seed=3)
    first_line = "regimens.atz_bev.time_on_line.median"  # by key path or by parameter name
    longer = study.run(n_patients=2_000, seed=3, overrides={first_line: 15.0})
    by_name = study.run(
        n_patients=2_000,
        seed=3,
        overrides={"evidence:first_line.atz_bev.pfs.inoue2026": 15.0},
    )
    np.testing.assert_array_equal(longer.tallies.hist, by_name.tallies.hist)
    med = lambda r: r.summary.loc["atzbev_len", "os_median_months"]  # noqa: E731
    assert med(longer) > med(base)
    with pytest.raises(KeyError, match="not a parameter name or a key path"):
        study.run(n_patients=100, overrides={"no.such.input": 1.0})
