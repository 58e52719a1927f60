"""The two task objectives, and everything that depends on which one a task has.

A task names its objective (`tasks.TaskInfo.objective`, logged as the MLflow tag `objective`);
the trainer, the tables, the figures, the studies and the tuner read what follows from it here,
never from strings of their own:

- classification: cross-entropy loss, accuracy in percent (higher is better), the validation
  accuracy picks the best evaluation, tables rank by test accuracy, chance = 1/C;
- regression: mean squared error (lower is better), the validation MSE picks the best
  evaluation, tables rank by test MSE, the trivial predictor is the training targets' mean.
"""

from dataclasses import dataclass

from common.errors import UserError


@dataclass(frozen=True)
class Objective:
    """What a task objective means for training and reporting.

    name: `classification` | `regression` (the tag and `TaskInfo.objective`).
    scores_accuracy: the runs log accuracies (argmax against integer targets).
    maximize: the validation score is better high (accuracy) rather than low (MSE).
    monitor: the validation metric that picks the best evaluation (`val/acc` | `val/loss`).
    validation_score: the summary metric a finished run returns (a tuning trial's value).
    test_metric: the metric a table ranks the task by.
    curve_label: the axis label of its learning curves.
    loss_label: what its loss is called in captions.
    """

    name: str
    scores_accuracy: bool
    maximize: bool
    monitor: str
    validation_score: str
    test_metric: str
    curve_label: str
    loss_label: str

    @property
    def direction(self) -> str:
        """Optuna's name for which way is better: `maximize` | `minimize`."""
        return "maximize" if self.maximize else "minimize"


CLASSIFICATION = Objective(
    name="classification",
    scores_accuracy=True,
    maximize=True,
    monitor="val/acc",
    validation_score="best/val_acc",
    test_metric="best/test_acc",
    curve_label="validation accuracy (%)",
    loss_label="cross-entropy",
)
REGRESSION = Objective(
    name="regression",
    scores_accuracy=False,
    maximize=False,
    monitor="val/loss",
    validation_score="best/val_loss",
    test_metric="best/test_loss",
    curve_label="validation MSE",
    loss_label="MSE",
)
OBJECTIVES = {o.name: o for o in (CLASSIFICATION, REGRESSION)}
"""Every objective by name."""


def objective_named(name: str) -> Objective:
    """`OBJECTIVES[name]`; a `UserError` naming the valid ones otherwise."""
    if name not in OBJECTIVES:
        raise UserError(f"task objective {name!r} is not one of {', '.join(OBJECTIVES)}")
    return OBJECTIVES[name]
