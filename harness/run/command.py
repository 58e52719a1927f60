"""Entry point: `python -m harness.run task=<name> model=<name> [overrides]`; `-m` for a sweep.

A user error (unknown name, missing data, bad option, a mistyped key or a wrong-typed value) prints
`error: <message>` and exits with status 2, before anything runs (`harness.run.preflight`). A run
that fails (non-finite loss) prints its reason and exits with status 1. In a sweep a failing
point's error is reported, the remaining points still run, and Hydra exits non-zero at the end. A
run stopped by a signal exits with 128 + the signal number after writing its checkpoint; starting
the same command again resumes it.
"""

import sys
from pathlib import Path

import hydra
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from omegaconf import DictConfig

from common import UserError
from harness.cli import report_user_error
from harness.layout import CONFIGS_DIR
from harness.run import preflight


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
    # Imported here: the trainer and MLflow load only once the command line checked out.
    from harness.run.checkpoint import Preempted
    from harness.run.leftovers import take_back
    from harness.run.metrics import validation_score
    from harness.run.point import execute
    from harness.run.train import NonFiniteLoss

    try:
        summary = execute(cfg)
    except UserError as error:
        if not _in_sweep():  # a sweep's folder and store belong to its other points
            take_back(cfg, Path(HydraConfig.get().runtime.output_dir))
        _stop(str(error), 2, error)
    except NonFiniteLoss as error:
        _stop(f"run failed: {error}", 1, error)
    except Preempted as error:
        _stop(f"{error}; run the same command again to resume", 128 + error.signum, error)
    return validation_score(summary)


def cli() -> None:
    """`python -m harness.run`: the command line checked against the schema, then Hydra."""
    try:
        preflight.check(sys.argv[1:])
    except UserError as error:
        sys.exit(report_user_error(error))
    main()
