"""The one registry mechanism, and the rule that config file names equal registry keys."""

import pytest

import models
import tasks
from common import Registry, UserError
from harness.run.preflight import group_options

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
def test_registry_names_equal_design_and_config_group_options(registry, folder, expected):
    """`model=<name>` / `task=<name>` exist for exactly the registered names (the schema's
    configs), besides the YAML recipes under the group (`task=quickstart/...`)."""
    assert set(registry.names()) == expected
    assert {name for name in group_options(folder) if "/" not in name} == expected


class FakeEntryPoint:
    """An installed plugin's entry point: `load()` imports its module, which registers names."""

    def __init__(self, name: str, load) -> None:
        self.name, self.value, self._load = name, f"{name}.plugin", load
        self.loads = 0

    def load(self):
        self.loads += 1
        return self._load()


def test_plugins_register_lazily_on_the_first_query(monkeypatch):
    registry: Registry = Registry("widget", plugins="ssm_bench.widgets")
    registry.register("alpha")(object())
    plugin = FakeEntryPoint("extra", lambda: registry.register("gamma")(object()))
    groups = []

    def entry_points(group):
        groups.append(group)
        return [plugin]

    monkeypatch.setattr("common.registry.importlib.metadata.entry_points", entry_points)
    assert plugin.loads == 0, "registering built-ins loads no plugin"
    assert registry.names() == ["alpha", "gamma"] and groups == ["ssm_bench.widgets"]
    assert "gamma" in registry and len(registry) == 2 and list(registry) == ["alpha", "gamma"]
    assert registry.origins == {"gamma": "extra.plugin"}
    assert plugin.loads == 1, "plugins load once"


def test_a_broken_plugin_is_a_user_error_naming_it(monkeypatch):
    registry: Registry = Registry("widget", plugins="ssm_bench.widgets")

    def broken():
        raise ImportError("No module named 'torch_nightly'")

    plugin = FakeEntryPoint("bad", broken)
    monkeypatch.setattr("common.registry.importlib.metadata.entry_points", lambda group: [plugin])
    with pytest.raises(UserError, match=r"widget plugin 'bad' \(bad.plugin.*torch_nightly"):
        registry["alpha"]
