"""docs/scenario.md is generated from the scenario models and must be kept up to date."""

from pathlib import Path

from simseq import scenario, scenario_docs
from simseq.scenario import Scenario

ROOT = Path(__file__).resolve().parents[2]


def test_docs_are_up_to_date():
    current = (ROOT / "docs" / "scenario.md").read_text(encoding="utf-8")
    assert current == scenario_docs.render(), (
        "docs/scenario.md is out of date: python -m simseq.scenario_docs > docs/scenario.md"
    )


def test_every_field_is_documented():
    """Each field of each model has a docstring under it, and appears in the reference."""
    docs = scenario_docs.field_docs(scenario)
    text = scenario_docs.render()
    for model, _ in scenario_docs._sections():
        assert f"## {model.__name__}\n" in text
        for name in model.model_fields:
            where = f"{model.__name__}.{name}"
            assert docs.get(model.__name__, {}).get(name), f"{where} has no docstring"
    assert "`extends`" in text and list(Scenario.model_fields)[0] in text


def test_bounds_appear_in_the_reference():
    text = scenario_docs.render()
    assert "| `n_patients` | integer | required | >= 1; <= 10,000,000,000 |" in text
    assert "> 0 (a hazard ratio)" in text and "in [0, 1) (an annual rate)" in text
    assert "`MAX_SCENARIO_BYTES` | 1,048,576" in text


def test_docs_are_not_built_at_import():
    """Field docstrings are read with ast by the generator, not collected at import time
    (pydantic's use_attribute_docstrings would cost every command's start-up)."""
    assert Scenario.model_fields["title"].description is None
