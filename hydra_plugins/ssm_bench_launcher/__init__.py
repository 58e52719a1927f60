"""The harness's sweep launchers, registered with Hydra.

Hydra instantiates a launcher only if its class is defined inside the `hydra_plugins` namespace
package, which it scans for plugins; the launchers themselves live in `harness.cluster.launcher`.
`configs/hydra/launcher/{sequential,local,slurm}.yaml` name these classes as `_target_`.
"""

from harness.cluster import launcher


class LocalLauncher(launcher.LocalLauncher):
    """`harness.cluster.launcher.LocalLauncher` (`hydra/launcher=local`)."""


class SlurmLauncher(launcher.SlurmLauncher):
    """`harness.cluster.launcher.SlurmLauncher` (`hydra/launcher=slurm`)."""


class SequentialLauncher(launcher.SequentialLauncher):
    """`harness.cluster.launcher.SequentialLauncher` (`hydra/launcher=sequential`, the default)."""
