"""`python -m harness.study`: every study's `--quick` version end to end (sweep through the local
launcher into a temporary store, report, files), a rerun that trains nothing, the unknown-name
error, and the verdict rules against scipy's paired t-test."""

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hydra import compose, initialize_config_dir
from hydra.core.override_parser.overrides_parser import OverridesParser
from omegaconf import OmegaConf
from scipy import stats

import models
from harness.report.plots import Reference
from harness.study import command
from harness.study.specs import STUDIES, Check
from harness.study.write import SUMMARY_COLUMNS, evaluate, learned_little, verdict

FILES = ("summary.csv", "table.md", "table.tex", "figure.png", "figure.pdf", "README.md")
QUICK_MODELS = {
    "httyh_delay": {("s4_legs", "16"), ("s4_fout", "16")},
    "hope_memory": {("hope", "0"), ("hope", "16"), ("s4d_lin", "0"), ("s4d_lin", "16")},
    "init_ablation": {("s4_legs", "false"), ("hope", "false"), ("s4_legs", "true")},
}
"""The (model, setting) rows each quick study trains: one seed each."""


@pytest.fixture(autouse=True)
def one_thread(monkeypatch):
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)


def study_dir(root: Path, name: str) -> Path:
    return root / "results" / "studies" / name


@pytest.mark.parametrize("name", sorted(STUDIES))
def test_quick_study_writes_every_file_with_one_row_per_run(name, tmp_path, capsys):
    assert command.main([name, "--quick", "--out", str(tmp_path)]) == 0
    out = study_dir(tmp_path, name)
    for file in FILES:
        assert (out / file).is_file() and (out / file).stat().st_size > 0, file
    summary = pd.read_csv(out / "summary.csv", dtype={"setting": str})
    assert list(summary.columns) == SUMMARY_COLUMNS
    assert set(zip(summary["model"], summary["setting"], strict=True)) == QUICK_MODELS[name]
    assert len(summary) == len(QUICK_MODELS[name]) and set(summary["seed"]) == {0}
    assert np.isfinite(summary["value"]).all()
    assert set(summary["metric"]) == {STUDIES[name].metric or "best/test_acc"}
    if name == "httyh_delay":  # RMSE = sqrt(test MSE), read back from the store
        assert ((summary["value"] > 0) & (summary["value"] < 10)).all()
    else:
        assert summary["value"].between(0, 100).all()
    table = (out / "table.md").read_text()
    assert "Δ vs baseline" in table and "baseline" in table
    readme = (out / "README.md").read_text()
    assert f"python -m harness.study {name} --quick" in readme
    assert "smoke version" in readme and "## Verdict:" in readme
    assert STUDIES[name].claim[:40] in readme
    assert "not a result" in capsys.readouterr().out


def test_rerun_trains_nothing_and_keeps_the_numbers(tmp_path):
    name = "httyh_delay"
    assert command.main([name, "--quick", "--out", str(tmp_path)]) == 0
    first = pd.read_csv(study_dir(tmp_path, name) / "summary.csv")
    assert command.main([name, "--quick", "--out", str(tmp_path)]) == 0
    again = pd.read_csv(study_dir(tmp_path, name) / "summary.csv")
    pd.testing.assert_frame_equal(first, again)
    readme = (study_dir(tmp_path, name) / "README.md").read_text()
    assert "(0 points trained, 2 already finished and skipped)" in readme


def test_unknown_study_is_a_user_error_and_writes_nothing(tmp_path, capsys):
    assert command.main(["hope_memroy", "--out", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == ["error: unknown study 'hope_memroy'; valid studies are: " + ", ".join(STUDIES)]
    assert not any(tmp_path.iterdir())


def summary_of(rows: dict[tuple[str, str], list[float]]) -> pd.DataFrame:
    records = [
        {"model": m, "setting": s, "seed": seed, "metric": "best/test_acc", "value": v}
        for (m, s), values in rows.items()
        for seed, v in enumerate(values)
    ]
    return pd.DataFrame.from_records(records, columns=SUMMARY_COLUMNS)


def test_checks_follow_the_paired_t_test_and_the_metric_direction():
    a, b = [80.0, 82.0, 85.0], [60.0, 70.0, 61.0]
    summary = summary_of({("hope", "1024"): a, ("s4d_lin", "1024"): b, ("s4d_lin", "0"): a})
    p = stats.ttest_rel(a, b).pvalue
    assert p < 0.05
    better = evaluate(summary, Check(("hope", "max"), ("s4d_lin", "max"), "better", "t"), "x_acc")
    assert better.passed is True and f"p = {p:.2g}" in better.line
    # for an error metric lower is better: the same numbers fail
    as_error = evaluate(summary, Check(("hope", "max"), ("s4d_lin", "max"), "better", "t"), "rmse")
    assert as_error.passed is False
    # not_worse holds when the difference is not significant, fails when it is
    close = summary_of({("hope", "0"): [80.0, 70.0, 75.0], ("hope", "1024"): [74.0, 76.0, 73.0]})
    assert stats.ttest_rel([74.0, 76.0, 73.0], [80.0, 70.0, 75.0]).pvalue >= 0.05
    keeps = Check(("hope", "max"), ("hope", "min"), "not_worse", "t")
    assert evaluate(close, keeps, "acc").passed is True
    lost = summary_of({("hope", "0"): a, ("hope", "1024"): b})
    assert evaluate(lost, keeps, "acc").passed is False
    # two rows that both learned little cannot test a claim
    little = frozenset({("hope", "1024"), ("s4d_lin", "1024")})
    untested = evaluate(
        summary, Check(("hope", "max"), ("s4d_lin", "max"), "better", "t"), "acc", little
    )
    assert untested.passed is None and "learned little" in untested.line
    one = frozenset({("s4d_lin", "1024")})
    assert evaluate(
        summary, Check(("hope", "max"), ("s4d_lin", "max"), "better", "t"), "acc", one
    ).passed
    missing = evaluate(summary, Check(("s4_legs", "max"), ("hope", "max"), "better", "t"), "acc")
    assert missing.passed is None and "not testable" in missing.line
    assert verdict([better, better]) == "reproduced"
    assert verdict([better, as_error]) == "partly reproduced"
    assert verdict([as_error]) == "not reproduced"
    assert verdict([missing, untested]) == "not testable"


def test_learned_little_is_the_fraction_of_the_gap_closed():
    summary = summary_of({("a", "0"): [12.0, 14.0], ("b", "0"): [30.0, 40.0]})
    chance = Reference(10.0, "chance")
    # a closes (13 - 10) / 90 = 3.3 % of the gap, b (35 - 10) / 90 = 28 %
    assert learned_little(summary, chance, "best/test_acc") == [("a", "0")]
    errors = summary_of({("a", "0"): [0.55, 0.53], ("b", "0"): [0.1, 0.2]})
    trivial = Reference(0.6, "trivial")  # a closes (0.6 - 0.54) / 0.6 = 10 %, b 75 %
    assert learned_little(errors, trivial, "best/test_rmse") == [("a", "0")]


@pytest.mark.parametrize(
    "config", sorted(p.stem for p in (command.PROJECT_ROOT / "configs/experiment/study").glob("*"))
)
def test_every_study_config_composes_and_builds_its_models(config):
    """Each study's sweep and paper-scale config, with each part's overrides, composes for every
    swept model; the CPU-sized ones also build it (the delay study's linear backbone too)."""
    name = config.removesuffix("_paper")
    with initialize_config_dir(str(command.PROJECT_ROOT / "configs"), version_base="1.3"):
        swept = compose("config", [f"experiment=study/{config}"], return_hydra_config=True)
        for part in STUDIES[name].parts:
            grid = dict(swept.hydra.sweeper.params)
            fixed = [o for o in part.overrides if "," not in o]
            for parsed in OverridesParser.create().parse_overrides(list(part.overrides)):
                if parsed.is_sweep_override():
                    grid[parsed.key_or_group] = ",".join(parsed.sweep_string_iterator())
            for model in grid["model"].split(","):
                cfg = compose("config", [f"experiment=study/{config}", *fixed, f"model={model}"])
                OmegaConf.to_container(cfg, resolve=True)
                if config != name:
                    continue  # paper scale: too large to build in a test
                backbone = dict(cfg.backbone)
                built = models.build_model(model, 1, 10, layer=dict(cfg.model.layer), **backbone)
                assert built.config.linear == (name == "httyh_delay")
