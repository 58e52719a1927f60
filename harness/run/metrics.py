"""Training objectives and their running statistics, kept on the device to avoid syncs.

Every batch yields a statistics vector `[loss_sum, correct, count]` (float64, shape (3,)):
`count` is the number of scored targets (examples for pooled outputs, examples x steps for
`pooling: none`, target elements for regression), `loss_sum = mean loss * count`, and `correct`
is the number of correct argmax predictions (0 for regression). Sums of these vectors over batches
and ranks give exact dataset means: loss = loss_sum / count, accuracy = 100 * correct / count.

Accuracies are percentages everywhere a user sees them (MLflow, logs, tables, the sweep lines):
`ACC_UNIT`. Every run records its unit in the tag `acc_unit`; runs logged before it (no tag)
hold fractions, and `harness.report.load` converts them.
"""

import torch
import torch.nn.functional as F
from torch.utils.data import Dataset, TensorDataset

from common import OBJECTIVES, Objective
from tasks import TaskInfo

ACC_UNIT = "percent"
"""The unit of every accuracy a run logs (the tag `acc_unit`); "fraction" = runs of older code."""
ACC_SCALES = {"percent": 100.0, "fraction": 1.0}
"""Accuracy = ACC_SCALES[unit] * correct / count."""


def validation_score(summary: dict[str, object]) -> float | None:
    """The run's best validation score from its summary (None if it holds none): what
    `harness.run.command.main` returns, a tuning trial's value (`Objective.validation_score`)."""
    for key in (o.validation_score for o in OBJECTIVES.values()):
        if key in summary:
            return float(summary[key])  # type: ignore[arg-type]
    return None


def batch_loss(objective: Objective, output: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Mean loss of one batch.

    classification: cross-entropy of logits `output` (B, C) or (B, L', C) against int64 `y` (B,)
        or (B, L'), averaged over all scored positions.
    regression: mean squared error of `output` and `y`, both (B, D) or (B, L', D).
    """
    if objective.scores_accuracy:
        return F.cross_entropy(output.reshape(-1, output.shape[-1]).float(), y.reshape(-1))
    return F.mse_loss(output.float(), y.float())


@torch.no_grad()
def batch_stats(
    objective: Objective, loss: torch.Tensor, output: torch.Tensor, y: torch.Tensor
) -> torch.Tensor:
    """`[loss_sum, correct, count]` of one batch (float64, (3,), on the output's device)."""
    count = y.numel()
    if objective.scores_accuracy:
        correct = (output.argmax(dim=-1) == y).sum().double()
    else:
        correct = torch.zeros((), dtype=torch.float64, device=output.device)
    loss_sum = loss.detach().double() * count
    return torch.stack(
        [loss_sum, correct, torch.tensor(float(count), device=output.device).double()]
    )


def summarize(
    stats: torch.Tensor, objective: Objective, prefix: str, acc_unit: str = ACC_UNIT
) -> dict[str, float]:
    """`{prefix/loss, prefix/acc}` from summed statistics (`acc` only for classification, in
    `acc_unit`: percent, or fraction for a run resumed from a checkpoint of older code)."""
    loss_sum, correct, count = stats.tolist()
    count = max(count, 1.0)
    out = {f"{prefix}/loss": loss_sum / count}
    if objective.scores_accuracy:
        out[f"{prefix}/acc"] = ACC_SCALES[acc_unit] * correct / count
    return out


TRIVIAL_PREFIX = "trivial"
"""Metrics `trivial/<split>_acc` | `trivial/<split>_loss` (split val, test): the score of a
predictor that ignores its input, the level a report draws as chance (classification) or trivial
predictor (regression)."""


def trivial_metrics(info: TaskInfo, train: Dataset, splits: dict[str, Dataset]) -> dict[str, float]:
    """The score on each of `splits` (name -> dataset) of an input-blind predictor, logged once
    per run at step 0.

    classification: `trivial/<split>_acc` = 100 / C (%), uniform guessing among the `d_output`
        classes.
    regression: `trivial/<split>_loss` = mean((y - mean_i y_train[i])^2), the mean squared error
        of predicting the training targets' mean (per output element, mean over items i), when the
        splits hold their targets in memory (`TensorDataset`); otherwise nothing is logged.
    """
    if OBJECTIVES[info.objective].scores_accuracy:
        scale = ACC_SCALES[ACC_UNIT]
        return {f"{TRIVIAL_PREFIX}/{name}_acc": scale / info.d_output for name in splits}
    if not all(isinstance(d, TensorDataset) for d in (train, *splits.values())):
        return {}
    mean = train.tensors[1].double().mean(dim=0)  # (...) per output element
    return {
        f"{TRIVIAL_PREFIX}/{name}_loss": float((d.tensors[1].double() - mean).square().mean())
        for name, d in splits.items()
    }
