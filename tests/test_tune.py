"""Tuning (`hydra/sweeper=optuna`, `ssm-bench tune`): the README's example at a tiny budget.

One model, 3 trials of the adding problem (a regression task: the objective, best/val_loss, is
minimized), everything under the test's own root; the trials run in the sweeper's process
(Hydra's basic launcher), and as local submitit jobs (the README's `hydra/launcher=local`) in the
slow suite. Then: a rerun trains nothing; the written experiment config composes to the best
trial's point (its seed-0 run is reused) and trains seed 1 at the tuned learning rate.
"""

import optuna
import pytest
from omegaconf import OmegaConf

from common import UserError
from harness import console
from harness.run import preflight
from harness.tune.space import parse
from harness.tune.sweeper import TAG_STUDY, TAG_TRIAL, ended, retry_interrupted
from tests.sweep_helpers import harness_run, manifest, runs, tiny

STUDY = "demo/s4d_lin"
SPACE = "optimizer.lr=tag(log, interval(1e-3, 1e-1))"


def _tune(root, launcher: list[str], capsys) -> str:
    """`ssm-bench tune` in this process (it starts each study as `python -m harness.run`)."""
    args = ["tune", "demo", "--trials", "3", "--out", str(root / "configs"), "model=s4d_lin"]
    assert console.main([*args, *launcher, *tiny(root), SPACE]) == 0, capsys.readouterr().err
    return capsys.readouterr().out


def _study(root) -> optuna.Study:
    storage = f"sqlite:///{root / 'results' / 'optuna.db'}"
    return optuna.load_study(study_name=STUDY, storage=storage)


@pytest.mark.parametrize(
    "launcher", [[], pytest.param(["hydra/launcher=local"], marks=pytest.mark.slow)]
)
def test_tune_three_trials_rerun_and_tuned_comparison(tmp_path, launcher, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    first = _tune(tmp_path, launcher, capsys)
    if launcher:  # one batch per trial; the sweep's manifest lists all three (ssm-bench status)
        assert [p["index"] for p in manifest(tmp_path)["points"]] == [0, 1, 2]

    trained = {r.info.run_id: r for r in runs(tmp_path)}
    assert len(trained) == 3
    assert {r.data.tags[TAG_STUDY] for r in trained.values()} == {STUDY}
    assert sorted(r.data.tags[TAG_TRIAL] for r in trained.values()) == ["0", "1", "2"]
    assert {r.info.status for r in trained.values()} == {"FINISHED"}

    study = _study(tmp_path)
    assert study.direction == optuna.study.StudyDirection.MINIMIZE  # MSE, from the task
    assert len(study.trials) == 3
    by_run = {t.user_attrs["mlflow_run_id"]: t for t in study.trials}
    assert set(by_run) == set(trained)
    for run_id, trial in by_run.items():  # each trial's objective is its run's best/val_loss
        assert trial.value == pytest.approx(trained[run_id].data.metrics["best/val_loss"])
    losses = [r.data.metrics["best/val_loss"] for r in trained.values()]
    assert study.best_value == pytest.approx(min(losses))
    best = study.best_trial
    assert f"best best/val_loss {best.value:.6g}" in first

    _tune(tmp_path, launcher, capsys)  # the study has its 3 trials: nothing is asked or trained
    assert {r.info.run_id: r.info.end_time for r in runs(tmp_path)} == {
        i: r.info.end_time for i, r in trained.items()
    }
    assert len(_study(tmp_path).trials) == 3

    tuned = OmegaConf.load(tmp_path / "configs" / "tuned" / "demo" / "s4d_lin.yaml")
    assert tuned.optimizer.lr == pytest.approx(best.params["optimizer.lr"])
    search = f"hydra.searchpath=[file://{tmp_path / 'configs'}]"
    where = [o for o in tiny(tmp_path) if o.split("=")[0] in ("paths.root", "tracking.uri")]
    cache = f"task.cache_dir={tmp_path / 'cache'}"
    compare = ["-m", "experiment=tuned/demo", "seed=0,1", search, cache, *where]
    done = harness_run(compare, tmp_path, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    new = [r for r in runs(tmp_path) if r.info.run_id not in trained]
    assert len(new) == 1, "seed 0 is the best trial's own point (skipped); seed 1 trains"
    (run,) = new
    assert run.data.tags["seed"] == "1"
    assert float(run.data.params["optimizer.lr"]) == pytest.approx(best.params["optimizer.lr"])
    assert run.data.params["trainer.max_steps"] == "4"  # the study's fixed settings came along


def test_search_space_syntax():
    space = parse(
        {"backbone.d_model": "16,32"},
        [
            "optimizer.lr=tag(log, interval(1e-4, 1e-1))",
            "backbone.n_layers=tag(int, interval(1, 4))",
            "trainer.max_steps=7",
            "backbone.d_model=choice(8, 64)",  # the command line wins over hydra.sweeper.params
        ],
    )
    lr = space.dimensions["optimizer.lr"]
    assert isinstance(lr, optuna.distributions.FloatDistribution) and lr.log
    assert (lr.low, lr.high) == (1e-4, 1e-1)
    layers = space.dimensions["backbone.n_layers"]
    assert isinstance(layers, optuna.distributions.IntDistribution) and not layers.log
    assert space.dimensions["backbone.d_model"].choices == (8, 64)  # Hydra's parsed values
    assert space.fixed == ["trainer.max_steps=7"]
    trial = {"optimizer.lr": 0.003, "backbone.n_layers": 2, "backbone.d_model": "64"}
    assert space.overrides(trial) == [
        "trainer.max_steps=7",
        "optimizer.lr=0.003",
        "backbone.n_layers=2",
        "backbone.d_model=64",
    ]
    extremes = space.extremes()  # every end of every dimension is composed before a trial runs
    assert "optimizer.lr=0.1" in {o for point in extremes for o in point}
    assert "backbone.n_layers=4" in {o for point in extremes for o in point}


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ([SPACE], "error: hydra.sweeper.study_name is not set"),
        (["hydra.sweeper.study_name=x", "optimizer.lr=interval(0.1, 0.01)"], "lower bound below"),
    ],
)
def test_sweeper_user_errors_leave_nothing(tmp_path, overrides, message):
    done = harness_run(["-m", "hydra/sweeper=optuna", *tiny(tmp_path), *overrides], tmp_path, 300)
    assert done.returncode == 2, done.stderr[-3000:]
    assert done.stderr.strip().splitlines()[-1].startswith("error: ")
    assert message in done.stderr
    assert not (tmp_path / "results" / "optuna.db").exists()
    assert not (tmp_path / "results" / "runs").exists() or not any(
        (tmp_path / "results" / "runs").iterdir()
    )


def test_interrupted_trial_is_asked_again(tmp_path):
    storage = f"sqlite:///{tmp_path / 'optuna.db'}"
    space = {"optimizer.lr": optuna.distributions.FloatDistribution(1e-4, 1e-1, log=True)}
    study = optuna.create_study(study_name="s", storage=storage)
    study.tell(study.ask(space), 0.5)
    lost = study.ask(space)  # the sweeper was killed while this trial's run trained
    again = optuna.load_study(study_name="s", storage=storage)  # the next sweeper
    retry_interrupted(again)
    assert ended(again) == 1  # the closed trial does not count towards n_trials
    retried = again.ask(space)
    assert retried.params == lost.params  # same point: its run resumes from its checkpoint
    assert retried.user_attrs["retry_of"] == lost.number
    again.tell(retried, 0.25)
    assert ended(again) == 2
    assert again.best_value == 0.25


def test_tune_command_user_errors(capsys):
    assert console.main(["tune", "demo", "model=s4_legz", SPACE]) == 2
    assert "error: unknown model 's4_legz'" in capsys.readouterr().err
    assert console.main(["tune", "demo", SPACE]) == 2
    assert "error: no model to tune" in capsys.readouterr().err
    assert console.main(["tune", "de mo", "model=s4d_lin"]) == 2
    assert "error: tuning name 'de mo'" in capsys.readouterr().err


def test_preflight_checks_both_ends_of_a_range():
    preflight.check(["-m", "hydra/sweeper=optuna", "optimizer.lr=tag(log, interval(1e-4, 0.1))"])
    with pytest.raises(UserError, match=r"trainer.max_epochs: must be >= 1, got 0"):
        preflight.check(["-m", "trainer.max_epochs=tag(int, interval(0, 3))"])
