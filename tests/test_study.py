"""`python -m harness.study`: every study's `--quick` version end to end (sweep through the local
launcher into a temporary store, report, files, learned kernels), a rerun that trains nothing,
the unknown-name error, the verdict rules against scipy's paired t-test, Holm-Bonferroni and the
detectable effect in float64 against closed forms and simulation, and the testability
criterion."""

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
from harness.study.specs import STUDIES, Check, Criterion
from harness.study.stats import detectable_effect, holm, seeds_needed, t_test_power
from harness.study.write import (
    NOT_TESTABLE_AT_SCALE,
    SUMMARY_COLUMNS,
    criterion_holds,
    evaluate,
    evaluate_all,
    learned_little,
    verdict,
)

FILES = ("summary.csv", "table.md", "table.tex", "figure.png", "figure.pdf", "README.md")
KERNEL_FILES = ("kernels.png", "kernels.pdf")
QUICK_MODELS = {
    "httyh_delay": {("s4_legs", "16"), ("s4_fout", "16")},
    "httyh_timescale": {("s4_legs", "0.0078125"), ("s4_legs", "0.125")},
    "hope_memory": {("hope", "0"), ("hope", "16"), ("s4d_lin", "0"), ("s4d_lin", "16")},
    "hope_stability": {
        ("hope", "0.001"),
        ("hope", "0.1"),
        ("s4d_lin", "0.001"),
        ("s4d_lin", "0.1"),
    },
    "init_ablation": {("s4_legs", "false"), ("hope", "false"), ("s4_legs", "true")},
}
"""The (model, setting) rows each quick study trains: one seed each."""


@pytest.fixture(autouse=True)
def one_thread(monkeypatch):
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)


def study_dir(root: Path, name: str) -> Path:
    return root / "results" / "studies" / name


QUICK_IN_CI = "httyh_delay"
"""The one study whose quick version the default suite runs (rerun included); the others are
`slow` (about a minute each on 2 cores)."""


@pytest.mark.parametrize(
    "name",
    [n if n == QUICK_IN_CI else pytest.param(n, marks=pytest.mark.slow) for n in sorted(STUDIES)],
)
def test_quick_study_writes_every_file_with_one_row_per_run(name, tmp_path, capsys):
    """Every file, one summary row per run; run again, it trains nothing and keeps the numbers."""
    assert command.main([name, "--quick", "--out", str(tmp_path)]) == 0
    out = study_dir(tmp_path, name)
    study = STUDIES[name]
    for file in FILES + (KERNEL_FILES if study.kernels else ()):
        assert (out / file).is_file() and (out / file).stat().st_size > 0, file
    assert (out / "kernels.png").exists() == study.kernels
    summary = pd.read_csv(out / "summary.csv", dtype={"setting": str})
    assert list(summary.columns) == SUMMARY_COLUMNS
    assert set(zip(summary["model"], summary["setting"], strict=True)) == QUICK_MODELS[name]
    assert len(summary) == len(QUICK_MODELS[name]) and set(summary["seed"]) == {0}
    assert np.isfinite(summary["value"]).all()
    assert set(summary["metric"]) == {STUDIES[name].metric or "best/test_acc"}
    if study.metric == "best/test_rmse":  # RMSE = sqrt(test MSE), read back from the store
        assert ((summary["value"] > 0) & (summary["value"] < 10)).all()
    else:
        assert summary["value"].between(0, 100).all()
    table = (out / "table.md").read_text()
    assert "Δ vs baseline" in table and "baseline" in table
    readme = (out / "README.md").read_text()
    assert f"python -m harness.study {name} --quick" in readme
    assert "smoke version" in readme and "## Verdict:" in readme
    assert study.claim[:40] in readme
    assert "## Calibration" in readme and "Testability criterion" in readme
    pilots = (command.PROJECT_ROOT / study.calibration).read_text().splitlines()
    assert pilots[2] in readme  # the pilot record, rendered
    for check in study.checks:
        assert check.text in readme and check.source in readme
    assert "95% CI" in table
    assert "not a result" in capsys.readouterr().out

    assert command.main([name, "--quick", "--out", str(tmp_path)]) == 0
    pd.testing.assert_frame_equal(summary, pd.read_csv(out / "summary.csv", dtype={"setting": str}))
    n = len(summary)
    assert (
        f"(0 points trained, {n} already finished and skipped)" in (out / "README.md").read_text()
    )


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
    better = evaluate(
        summary, Check(("hope", "max"), ("s4d_lin", "max"), "better", "t", "src"), "x_acc"
    )
    assert better.passed is True and f"p = {p:.2g}" in better.line
    # for an error metric lower is better: the same numbers fail
    as_error = evaluate(
        summary, Check(("hope", "max"), ("s4d_lin", "max"), "better", "t", "src"), "rmse"
    )
    assert as_error.passed is False
    # not_worse holds when the difference is not significant, fails when it is
    close = summary_of({("hope", "0"): [80.0, 70.0, 75.0], ("hope", "1024"): [74.0, 76.0, 73.0]})
    assert stats.ttest_rel([74.0, 76.0, 73.0], [80.0, 70.0, 75.0]).pvalue >= 0.05
    keeps = Check(("hope", "max"), ("hope", "min"), "not_worse", "t", "src")
    assert evaluate(close, keeps, "acc").passed is True
    lost = summary_of({("hope", "0"): a, ("hope", "1024"): b})
    assert evaluate(lost, keeps, "acc").passed is False
    # two rows that both learned little cannot test a claim
    little = frozenset({("hope", "1024"), ("s4d_lin", "1024")})
    untested = evaluate(
        summary, Check(("hope", "max"), ("s4d_lin", "max"), "better", "t", "src"), "acc", little
    )
    assert untested.passed is None and "learned little" in untested.line
    one = frozenset({("s4d_lin", "1024")})
    assert evaluate(
        summary, Check(("hope", "max"), ("s4d_lin", "max"), "better", "t", "src"), "acc", one
    ).passed
    missing = evaluate(
        summary, Check(("s4_legs", "max"), ("hope", "max"), "better", "t", "src"), "acc"
    )
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
                assert built.config.linear == (cfg.task.name == "delay")


def test_holm_matches_its_closed_form_and_keeps_nan_out_of_the_family():
    rng = np.random.default_rng(0)
    for m in (1, 2, 5, 9):
        p = rng.uniform(0, 0.2, m).astype(np.float64)
        order = np.argsort(p)
        expected = np.empty(m)
        for rank, i in enumerate(order):  # max over the smaller p's of min(1, (m - j) p_(j))
            expected[i] = max(min(1.0, (m - j) * p[order[j]]) for j in range(rank + 1))
        np.testing.assert_allclose(holm(p), expected, rtol=0, atol=1e-15)
    # 0.01 * 3 = 0.03, then max(0.03, 0.02 * 2) = 0.04, then max(0.04, 0.04 * 1)
    np.testing.assert_allclose(holm([0.04, 0.01, np.nan, 0.02]), [0.04, 0.03, np.nan, 0.04])
    assert holm([0.5, 0.6])[1] == 1.0 or holm([0.5, 0.6])[1] == pytest.approx(1.0)


def test_detectable_effect_has_the_stated_power_in_closed_form_and_in_simulation():
    sd, n, alpha = 0.3, 6, 0.05
    delta = detectable_effect(sd, n, alpha)
    assert t_test_power(delta, sd, n, alpha) == pytest.approx(0.8, abs=1e-9)
    assert t_test_power(0.9 * delta, sd, n, alpha) < 0.8
    # a paired t-test on n simulated differences N(delta, sd) rejects 80 % of the time
    rng = np.random.default_rng(1)
    d = rng.normal(delta, sd, size=(40000, n))
    t = d.mean(axis=1) / (d.std(axis=1, ddof=1) / np.sqrt(n))
    rejected = np.abs(t) > stats.t.ppf(1 - alpha / 2, n - 1)
    assert rejected.mean() == pytest.approx(0.8, abs=0.01)
    # for many seeds the normal approximation (z_{1 - alpha / 2} + z_{0.8}) sd / sqrt(n)
    z = stats.norm.ppf(0.975) + stats.norm.ppf(0.8)
    assert detectable_effect(1.0, 4000, alpha) == pytest.approx(z / np.sqrt(4000), rel=2e-3)
    assert np.isnan(detectable_effect(0.0, 5, alpha)) and np.isnan(detectable_effect(1.0, 1, alpha))
    # the fewest seeds: enough at n, not at n - 1
    n_needed = seeds_needed(1.0, 1.0, alpha)
    assert (
        t_test_power(1.0, 1.0, n_needed, alpha) >= 0.8 > t_test_power(1.0, 1.0, n_needed - 1, alpha)
    )


def test_better_checks_are_holm_adjusted_and_show_their_interval():
    base = [10.0, 11.0, 12.0, 13.0, 14.0]
    a = [b + d for b, d in zip(base, [2.0, 2.6, 0.6, 3.5, 0.4], strict=True)]  # p = 0.037
    c = [b + d for b, d in zip(base, [2.1, 2.5, 0.6, 3.3, 0.5], strict=True)]  # p = 0.030
    rows = {("a", "0"): a, ("c", "0"): c, ("base", "0"): base}
    summary = summary_of(rows)
    p_a, p_c = stats.ttest_rel(a, base).pvalue, stats.ttest_rel(c, base).pvalue
    assert p_a < 0.05 and p_c < 0.05 and holm([p_a, p_c]).min() >= 0.05
    checks = [
        Check(("a", "0"), ("base", "0"), "better", "a beats base", "paper A"),
        Check(("c", "0"), ("base", "0"), "better", "c beats base", "paper B"),
    ]
    alone = evaluate(summary, checks[0], "best/test_acc")
    assert alone.passed is True  # a family of one: the raw p
    family = evaluate_all(summary, checks, "best/test_acc")
    assert [o.passed for o in family] == [False, False]  # both fail after the adjustment
    assert family[0].holm_p == pytest.approx(holm([p_a, p_c])[0], rel=1e-12)
    ci = stats.ttest_rel(a, base).confidence_interval(0.95)
    assert (family[0].comparison.low, family[0].comparison.high) == pytest.approx((ci.low, ci.high))
    assert "95% CI [" in family[0].line and "Source: paper A." in family[0].line
    sd = float(np.std(np.subtract(a, base), ddof=1))
    assert family[0].detectable == pytest.approx(detectable_effect(sd, 5, 0.05 / 2), rel=1e-9)


def test_testability_criterion_decides_not_testable_at_this_scale():
    summary = summary_of({("s4_legs", "0"): [60.0, 70.0], ("hope", "0"): [20.0, 31.0]})
    chance = Reference(10.0, "chance")
    held, lines = criterion_holds(
        summary, chance, "best/test_acc", Criterion((("s4_legs", "min"),))
    )
    assert held and "s4_legs at 0" in lines[0] and "61%" in lines[0]  # (65 - 10) / 90
    held, lines = criterion_holds(
        summary, chance, "best/test_acc", Criterion((("s4_legs", "0"), ("hope", "0")))
    )
    assert not held and "fails" in lines[1]  # hope closes (25.5 - 10) / 90 = 17 %
    held, lines = criterion_holds(summary, chance, "best/test_acc", Criterion((("s4d", "0"),)))
    assert not held and "no finished run" in lines[0]
    good = evaluate(
        summary, Check(("s4_legs", "0"), ("hope", "0"), "better", "t", "s"), "best/test_acc"
    )
    assert verdict([good]) == "reproduced"
    assert verdict([good], testable=False) == NOT_TESTABLE_AT_SCALE


def test_study_figures_draw_settings_as_lines_and_errors_spanning_decades_on_log_axes(
    tmp_path, monkeypatch
):
    from harness.study import figures

    drawn = []
    monkeypatch.setattr(figures, "_save", lambda fig, stem: drawn.append(fig) or [stem])
    dts = ["0.00048828125", "0.0078125", "0.125"]
    rows = {(m, dt): [0.3 if dt != "0.0078125" else 0.02] * 2 for m in ("a", "b") for dt in dts}
    summary = summary_of(rows)
    level = figures.Level(0.59, "trivial")
    figures.metric_figure(summary, "RMSE ↓", "dt_min", "t", level, True, tmp_path / "f")
    ax = drawn[-1].axes[0]
    assert ax.get_yscale() == "log" and ax.get_xscale() == "log"  # 0.02..0.59; dt x256
    assert len(ax.containers) == 2  # one line (with error bars) per model
    assert {t.get_text() for t in ax.get_legend().get_texts()} >= {"a", "b", "trivial"}
    # accuracies, or errors within a decade: linear; two settings: categories, not a line
    close = summary_of({("a", "0"): [50.0, 60.0], ("a", "16"): [40.0, 45.0]})
    figures.metric_figure(close, "acc ↑", "noise_len", "t", None, False, tmp_path / "g")
    ax = drawn[-1].axes[0]
    assert ax.get_yscale() == "linear"
    assert [t.get_text() for t in ax.get_xticklabels()] == ["a\nnoise_len=0", "a\nnoise_len=16"]
