"""Entry point: `python -m harness.run task=<name> model=<name> [overrides]`; `-m` for a sweep.

A user error (unknown name, missing data, bad option) prints `error: <message>` and exits with
status 2; an override of a key that does not exist is answered by Hydra (status 1). A run that
fails (non-finite loss) prints its reason and exits with status 1. In a sweep a failing point's
error is reported, the remaining points still run, and Hydra exits non-zero at the end. A run
stopped by a signal exits with 128 + the signal number after writing its checkpoint; starting the
same command again resumes it.
"""

import re
import sys

import hydra
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from omegaconf import DictConfig

from common import UserError
from harness.cli import report_user_error
from harness.layout import CONFIGS_DIR, config_dirs

# Config groups whose option names are registry names (configs/<group>/<name>.yaml).
NAMED_GROUPS = ("task", "model")
_SIMPLE_CHOICE = re.compile(r"^(task|model)=([\w,]+)$")


def check_names(argv: list[str]) -> None:
    """Answer an unknown `task=` / `model=` choice (also in a comma sweep) before composing.

    The valid names are the config files of the group in `configs/` and in installed plugins'
    config directories (`harness.layout.config_dirs`).
    """
    for arg in argv:
        match = _SIMPLE_CHOICE.match(arg)
        if not match:
            continue
        group, values = match.groups()
        valid = sorted({p.stem for d in config_dirs() for p in (d / group).glob("*.yaml")})
        for value in values.split(","):
            if value not in valid:
                raise UserError(
                    f"unknown {group} {value!r}; valid {group} names are: {', '.join(valid)}"
                )


def _in_sweep() -> bool:
    return HydraConfig.initialized() and HydraConfig.get().mode == RunMode.MULTIRUN


def _stop(message: str, code: int, error: BaseException) -> None:
    """Report `message`; end a single run with `code`, or hand `error` to Hydra in a sweep."""
    print(f"error: {message}", file=sys.stderr)
    if _in_sweep():
        raise error
    sys.exit(code)


@hydra.main(config_path=str(CONFIGS_DIR), config_name="config", version_base="1.3")
def main(cfg: DictConfig) -> float | None:
    """Run one point; returns the best validation score (accuracy, or loss for regression)."""
    # Imported here so that a mistyped command is answered before torch and MLflow load.
    from harness.run.checkpoint import Preempted
    from harness.run.point import execute
    from harness.run.train import NonFiniteLoss

    try:
        summary = execute(cfg)
    except UserError as error:
        _stop(str(error), 2, error)
    except NonFiniteLoss as error:
        _stop(f"run failed: {error}", 1, error)
    except Preempted as error:
        _stop(f"{error}; run the same command again to resume", 128 + error.signum, error)
    return summary.get("best/val_acc", summary.get("best/val_loss"))


def cli() -> None:
    try:
        check_names(sys.argv[1:])
    except UserError as error:
        sys.exit(report_user_error(error))
    main()
