"""The harness's sweep launchers, registered with Hydra.

Hydra instantiates a launcher only if its class is defined inside the `hydra_plugins` namespace
package, which it scans for plugins; the launchers themselves live in `harness.launcher`.
`configs/hydra/launcher/{local,slurm}.yaml` name these classes as `_target_`.
"""

from harness import launcher


class LocalLauncher(launcher.LocalLauncher):
    """`harness.launcher.LocalLauncher` (`hydra/launcher=local`)."""


class SlurmLauncher(launcher.SlurmLauncher):
    """`harness.launcher.SlurmLauncher` (`hydra/launcher=slurm`)."""
