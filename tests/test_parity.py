"""docs/parity.md is what `python -m harness.run.parity` writes, and no recipe drifts from the
reference values in harness/run/parity.py without a stated reason."""

import pytest

from harness.run import parity


@pytest.fixture(scope="module")
def table():
    return parity.rows()


def test_every_recipe_and_setting_is_compared(table):
    assert {row.recipe for row in table} == set(parity.RECIPE_MODELS)
    for recipe in parity.RECIPE_MODELS:
        assert len([row for row in table if row.recipe == recipe]) == len(parity.REFERENCE[recipe])
    assert set(parity.RECIPE_MODELS) == set(parity.REFERENCE)


def test_no_recipe_drifts_from_the_reference(table):
    bad = parity.problems(table)
    assert not bad, [(r.recipe, r.setting, r.ours, r.reference, r.status) for r in bad]


def test_docs_parity_is_the_generated_page(table):
    assert parity.OUT.read_text() == parity.render(table), "run `python -m harness.run.parity`"


def test_a_drifting_value_is_reported(monkeypatch):
    """A reference value the built recipe does not have is drift; a deliberate note on a value
    that agrees is stale; a noted difference is allowed."""
    monkeypatch.setattr(parity, "RECIPE_MODELS", {"lra_pathx": "s4_legs"})
    reference = {
        "optimizer lr": (0.002, "-"),
        "d_model": (256, "-"),
        "batch size": (32, "-"),
        "epochs": (50, "-"),
    }
    monkeypatch.setattr(parity, "REFERENCE", {"lra_pathx": reference})
    notes = {("lra_pathx", "batch size"): "why", ("lra_pathx", "epochs"): "why not"}
    monkeypatch.setattr(parity, "DELIBERATE", notes)
    status = {row.setting: row.status for row in parity.rows()}
    assert status == {
        "optimizer lr": "DRIFT",
        "d_model": "=",
        "batch size": "deliberate: why",
        "epochs": "stale note: why not",
    }
    assert [r.setting for r in parity.problems(parity.rows())] == ["optimizer lr", "epochs"]
