"""The harness's Optuna sweeper, registered with Hydra.

Hydra instantiates a sweeper only if its class is defined inside the `hydra_plugins` namespace
package; the sweeper itself lives in `harness.tune.sweeper`. `configs/hydra/sweeper/optuna.yaml`
names this class as `_target_`.
"""

from harness.tune import sweeper


class OptunaSweeper(sweeper.OptunaSweeper):
    """`harness.tune.sweeper.OptunaSweeper` (`hydra/sweeper=optuna`)."""
