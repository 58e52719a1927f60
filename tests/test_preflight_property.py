"""A property of the preflight: every typed option of the schema, given a wrong value of its kind
(NaN, inf, a huge integer, a wrong type, an empty or non-ASCII string for a number), is refused
with one `UserError` naming the option, before anything exists. The options are enumerated from
the composed config of every model and a task of each input kind, not listed by hand."""

import math

import pytest
from omegaconf import DictConfig

from common import UserError
from harness.run import preflight, schema
from models import MODELS

TASKS = ("copying", "listops_gen", "digits_noise")
"""A token task, a generated LRA-like one and an image/noise one: their options join the matrix."""


def _leaves(node: DictConfig, prefix: str = "") -> list[tuple[str, type]]:
    """(dotted key, declared type) of every number option under `node` (bools excluded)."""
    found = []
    for key in node:
        dotted = f"{prefix}.{key}" if prefix else str(key)
        child = node._get_node(key)
        if isinstance(child, DictConfig):
            found += _leaves(child, dotted)
            continue
        value = child._value()
        kind = type(value) if value is not None else None
        if kind in (int, float):
            found.append((dotted, kind))
    return found


def _matrix() -> list[tuple[list[str], str, str]]:
    """(base overrides, key, wrong value) for every number option of every model and task."""
    cases = {}
    for model in sorted(MODELS):
        for task in TASKS:
            base = [f"model={model}", f"task={task}"]
            cfg = preflight._compose(base)
            for key, kind in _leaves(cfg):
                if key.startswith(("hydra", "paths", "tracking")):
                    continue
                wrong = ("nan", "inf", "-inf", "abc", "''", "é")
                if kind is int:
                    wrong = ("100000000000000000000", "abc", "1.5", "''", "é")
                for value in wrong:
                    cases.setdefault((key, value), (base, key, value))
    return list(cases.values())


schema.register()
MATRIX = _matrix()


def _refused(base: list[str], key: str, value: str) -> None:
    with pytest.raises(UserError) as caught:
        preflight.check([*base, f"{key}={value}"])
    text = str(caught.value)
    assert "\n" not in text
    assert key.rsplit(".", 1)[-1] in text or "cannot read the overrides" in text, text


def test_the_matrix_covers_every_section():
    sections = {key.split(".")[0] for _, key, _ in MATRIX}
    assert {"trainer", "optimizer", "backbone", "model", "task"} <= sections
    assert len(MATRIX) > 200


SAMPLE = MATRIX[::9]
"""The quick version: every 9th case (the matrix's order interleaves keys and values)."""


@pytest.mark.parametrize(("base", "key", "value"), SAMPLE, ids=[f"{k}={v}" for _, k, v in SAMPLE])
def test_a_sample_of_wrong_values_is_refused(base, key, value):
    _refused(base, key, value)


@pytest.mark.slow
def test_every_wrong_value_is_refused():
    for case in MATRIX:
        _refused(*case)


def test_finite_values_pass_the_number_check():
    schema._check_numbers({"a": 1.0, "b": [2, 3.5], "c": {"d": 2**31 - 1}, "hydra": math.nan})
