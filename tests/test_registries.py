"""The one registry mechanism, and the rule that config file names equal registry keys."""

from pathlib import Path

import pytest

import models
import tasks
from common import Registry, UserError

CONFIGS = Path(__file__).resolve().parents[1] / "configs"

DESIGN_MODELS = {
    "s4_legs", "s4_fout", "s4_random", "s4d_legs", "s4d_inv", "s4d_lin", "s4d_random", "hope",
    "hope_legs",
}  # fmt: skip
DESIGN_TASKS = {
    "listops", "text", "retrieval", "image", "pathfinder", "pathx", "scifar", "scifar_noise",
    "listops_gen", "pathfinder_gen", "digits_noise", "copying", "delay", "adding",
}  # fmt: skip


def test_unknown_name_lists_the_valid_names():
    registry: Registry = Registry("widget")
    registry.register("alpha")(object())
    registry.register("beta")(object())
    with pytest.raises(UserError, match=r"unknown widget 'gamma'.*alpha, beta"):
        registry["gamma"]


def test_a_name_registers_once():
    registry: Registry = Registry("widget")
    registry.register("alpha")(object())
    with pytest.raises(ValueError, match="registered twice"):
        registry.register("alpha")(object())


@pytest.mark.parametrize(
    ("registry", "folder", "expected"),
    [(models.MODELS, "model", DESIGN_MODELS), (tasks.TASKS, "task", DESIGN_TASKS)],
)
def test_registry_names_equal_design_and_config_file_names(registry, folder, expected):
    config_names = {path.stem for path in (CONFIGS / folder).glob("*.yaml")}
    assert set(registry.names()) == expected
    assert config_names == expected
