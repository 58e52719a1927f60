"""Installed plugins' config directories on Hydra's search path.

Hydra finds this `SearchPathPlugin` in the `hydra_plugins` namespace package and asks it to extend
the search path of every command that composes configs (`harness.run`, the launchers' jobs,
`harness.cluster.status`). Each directory declared in the entry point group `ssm_bench.configs`
(`harness.layout.plugin_config_dirs`) is appended after `configs/`, so `model=my_ssm` finds
`<plugin>/model/my_ssm.yaml` and a plugin cannot shadow a built-in config.
"""

from hydra.core.config_search_path import ConfigSearchPath
from hydra.plugins.search_path_plugin import SearchPathPlugin

from harness.layout import plugin_config_dirs


class PluginConfigs(SearchPathPlugin):
    """Appends `file://<dir>` for every plugin config directory."""

    def manipulate_search_path(self, search_path: ConfigSearchPath) -> None:
        for directory in plugin_config_dirs():
            search_path.append(provider="ssm-bench-plugin", path=f"file://{directory}")
