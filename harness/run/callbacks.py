"""Hydra callbacks, registered in `configs/config.yaml` under `hydra.callbacks`.

`PrepareTrackingStore` runs in the launching process before any job starts (single run and
multirun alike): it creates the MLflow store and the experiment, so jobs running in parallel
never race to create them (see `harness.run.tracking`). Before that it makes sure Hydra's output
folder can be created: one that cannot (an unwritable `paths.results_dir`) ends the command
with `error: ...` and exit status 2 instead of Hydra's traceback.
"""

import logging
import sys
from pathlib import Path
from typing import Any

from hydra.experimental.callback import Callback
from omegaconf import DictConfig

from common import UserError
from harness.cli import make_folder, report_user_error
from harness.run import tracking

log = logging.getLogger(__name__)


class PrepareTrackingStore(Callback):
    """Create the tracking store and experiment once, in the launching process."""

    @staticmethod
    def _check_output_dir(output_dir: str) -> None:
        fix = "set paths.results_dir (or paths.root) to a writable folder"
        try:
            make_folder(Path(output_dir).parent, "the output folder", fix)
        except UserError as error:
            sys.exit(report_user_error(error))

    def _prepare(self, config: DictConfig) -> None:
        uri = tracking.resolve_uri(config.tracking.uri)
        try:
            experiment_id = tracking.prepare_store(uri, config.tracking.experiment)
        except UserError as error:
            # The job reports it (with exit status 2); a traceback from here would hide it.
            log.error("%s", error)
            return
        log.info(
            "tracking store %s, experiment %r (id %s)",
            uri,
            config.tracking.experiment,
            experiment_id,
        )

    def on_run_start(self, config: DictConfig, **kwargs: Any) -> None:
        self._check_output_dir(config.hydra.run.dir)
        self._prepare(config)

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        self._check_output_dir(config.hydra.sweep.dir)
        self._prepare(config)
