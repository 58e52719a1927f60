"""A synthetic MLflow store with known runs, shared by tests/test_report.py and tests/test_plots.py.

Contents of experiment `ssm-bench` (accuracies below as fractions). Runs of both generations of the
runner are mixed: every run with an even creation index logs its accuracies in percent with the tag
`acc_unit=percent` (as the runner does now), the others as fractions without the tag (as older
code did); a report must read both as the same percentages (`percent_run`).
- s4d_lin (init lin, freeze_A False): listops seeds 0,1,2 = .50 .52 .54; text seeds 0,1,2 =
  .80 .82 .87.
- s4d_inv (init inv, freeze_A True): listops seeds 0,1,2 = .51 .55 .56 (paired with s4d_lin).
- hope (init hope): listops seeds 0,1 = .55 .59, where seed 0 was first KILLED (preempted) and then
  resubmitted under the same config hash and FINISHED; text seed 0 FAILED
  (`non-finite loss at step 37`), text seed 1 = .70.
- s4_legs (init legs): seed 0 on all six LRA tasks = .40 .60 .70 .80 .90 .50 (LRA avg 65.00).
- digits_noise runs of s4d_lin and hope for noise lengths 0 and 64 (param task.noise_len),
  seeds 0, 1.
- adding (regression: tag objective=regression, metric best/test_loss, the test MSE): s4_legs
  (init legs, 6 epochs) seeds 0, 1 = .1587 .1558; s4d_legs (init legs, 2 epochs) seed 0 = .1577;
  hope (init random) seeds 0, 1 = .1612 .1598. The trivial predictor's MSE is 1/6.
Classification runs log val/acc at steps 0, 10, 20 (0.3, 0.4 + 0.1 * acc, acc), regression runs
val/loss (0.5, 0.3, loss); every finished run logs the perf metrics and `trivial/{val,test}_*`
(chance 1/10 for classification). The seed-2 run of s4d_lin on listops differs from its seeds in
operational keys only (trainer.progress, paths.runs_dir), which never split a cell.
All runs but the s4_legs ones are tagged sweep=sw1.
"""

from dataclasses import dataclass
from pathlib import Path

from mlflow.entities import Metric, Param, RunTag
from mlflow.tracking import MlflowClient

T0 = 1_790_000_000_000  # ms since the epoch: 2026-09-21


@dataclass(frozen=True)
class Spec:
    model: str
    init: str
    task: str
    seed: int
    acc: float | None  # best/test_acc, or best/test_loss of a regression task
    status: str = "FINISHED"
    reason: str | None = None
    freeze_a: bool = False
    noise_len: int | None = None
    sweep: str | None = "sw1"
    config_hash: str | None = None
    epochs: int | None = None
    regression: bool = False

    @property
    def kernel(self) -> str:
        return self.model.split("_")[0]


def specs() -> list[Spec]:
    """The runs of the store, in creation order."""
    out = []
    for seed, acc in enumerate([0.50, 0.52, 0.54]):
        out.append(Spec("s4d_lin", "lin", "listops", seed, acc))
    for seed, acc in enumerate([0.80, 0.82, 0.87]):
        out.append(Spec("s4d_lin", "lin", "text", seed, acc))
    for seed, acc in enumerate([0.51, 0.55, 0.56]):
        out.append(Spec("s4d_inv", "inv", "listops", seed, acc, freeze_a=True))
    out.append(Spec("hope", "hope", "listops", 0, None, "KILLED", "preempted", config_hash="dup0"))
    out.append(Spec("hope", "hope", "listops", 0, 0.55, config_hash="dup0"))
    out.append(Spec("hope", "hope", "listops", 1, 0.59))
    out.append(Spec("hope", "hope", "text", 0, None, "FAILED", "non-finite loss at step 37"))
    out.append(Spec("hope", "hope", "text", 1, 0.70))
    lra = ["listops", "text", "retrieval", "image", "pathfinder", "pathx"]
    for task, acc in zip(lra, [0.40, 0.60, 0.70, 0.80, 0.90, 0.50], strict=True):
        out.append(Spec("s4_legs", "legs", task, 0, acc, sweep=None))
    for model, init, base in (("s4d_lin", "lin", 0.9), ("hope", "hope", 0.8)):
        for noise_len, drop in ((0, 0.0), (64, 0.3 if model == "s4d_lin" else 0.1)):
            for seed in (0, 1):
                acc = base - drop + 0.01 * seed
                out.append(Spec(model, init, "digits_noise", seed, acc, noise_len=noise_len))
    for model, init, epochs, losses in (
        ("s4_legs", "legs", 6, [0.1587, 0.1558]),
        ("s4d_legs", "legs", 2, [0.1577]),
        ("hope", "random", 6, [0.1612, 0.1598]),
    ):
        for seed, loss in enumerate(losses):
            out.append(Spec(model, init, "adding", seed, loss, epochs=epochs, regression=True))
    return out


def percent_run(index: int) -> bool:
    """Whether the run created `index`-th logs percent (tag acc_unit=percent) or fractions."""
    return index % 2 == 0


TRIVIAL_ADDING_MSE = 1 / 6
TRIVIAL_ADDING_VAL_MSE = 0.17
CHANCE = 0.1


def build_store(root: Path) -> str:
    """Write the store under `root`; returns its tracking URI."""
    uri = f"sqlite:///{root / 'mlflow.db'}"
    client = MlflowClient(tracking_uri=uri)
    exp = client.create_experiment("ssm-bench", artifact_location=str(root / "artifacts"))
    client.create_experiment("other")
    for i, spec in enumerate(specs()):
        start = T0 + 60_000 * i
        run = client.create_run(exp, start_time=start)
        h = spec.config_hash or f"h{i:04d}"
        tags = {"task": spec.task, "model": spec.model, "init": spec.init, "seed": str(spec.seed)}
        tags |= {"kernel": spec.kernel}
        tags |= {"objective": "regression" if spec.regression else "classification"}
        tags |= {"config_hash": h} | ({"sweep": spec.sweep} if spec.sweep else {})
        tags |= {"status_reason": spec.reason} if spec.reason else {}
        params = {
            "task.name": spec.task,
            "model.name": spec.model,
            "model.layer.freeze_A": str(spec.freeze_a),
            "n_params": "1234",
        }
        if spec.noise_len is not None:
            params["task.noise_len"] = str(spec.noise_len)
        if spec.epochs is not None:
            params["trainer.max_epochs"] = str(spec.epochs)
        operational = spec.model == "s4d_lin" and spec.task == "listops" and spec.seed == 2
        params["trainer.progress"] = "true" if operational else "false"
        params["paths.runs_dir"] = f"/elsewhere/runs{spec.seed}" if operational else "/runs"
        metrics = []
        if spec.acc is not None and spec.regression:
            for step, value in ((0, 0.5), (10, 0.3), (20, spec.acc)):
                metrics.append(Metric("val/loss", value, start, step))
            final = {
                "best/test_loss": spec.acc,
                "best/val_loss": spec.acc - 0.001,
                "trivial/test_loss": TRIVIAL_ADDING_MSE,
                "trivial/val_loss": TRIVIAL_ADDING_VAL_MSE,
            }
        elif spec.acc is not None:
            for step, value in ((0, 0.3), (10, 0.4 + 0.1 * spec.acc), (20, spec.acc)):
                metrics.append(Metric("val/acc", value, start, step))
            final = {
                "best/test_acc": spec.acc,
                "best/val_acc": spec.acc + 0.01,
                "best/test_loss": 2.0 - spec.acc,
                "trivial/test_acc": CHANCE,
                "trivial/val_acc": CHANCE,
            }
        if spec.acc is not None:
            final |= {"wall_time_s": 10.0 + i, "perf/mean_samples_per_s": 100.0}
            metrics += [Metric(k, v, start, 20) for k, v in final.items()]
        if percent_run(i):
            tags["acc_unit"] = "percent"
            metrics = [
                Metric(m.key, m.value * 100, m.timestamp, m.step) if m.key.endswith("acc") else m
                for m in metrics
            ]
        client.log_batch(
            run.info.run_id,
            metrics=metrics,
            params=[Param(k, v) for k, v in params.items()],
            tags=[RunTag(k, v) for k, v in tags.items()],
        )
        client.set_terminated(run.info.run_id, spec.status, end_time=start + 30_000)
    return uri
