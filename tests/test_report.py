"""Reports from a synthetic MLflow store with known runs (tests/report_store.py).

Expected numbers are computed here from the raw per-seed values with the `statistics` module and
the t-test closed forms, independently of the pandas/scipy code under test.
"""

import json
import math
import re
import shutil
import statistics
import subprocess
from datetime import datetime

import numpy as np
import pandas as pd
import pytest
from mlflow.tracking import MlflowClient
from report_store import build_store, specs
from scipy import stats

from common import UserError
from harness.report import command as report
from harness.report.format import to_csv, to_frame, to_latex, to_markdown, to_terminal
from harness.report.load import RunFilter, dedup, load_histories, load_runs, sweep_hashes
from harness.report.published import load_published
from harness.report.stats import compare, lra_average
from harness.report.tables import ablation_table, excluded_table, leaderboard_table

S4D_LIN_LISTOPS = [50.0, 52.0, 54.0]
S4D_LIN_TEXT = [80.0, 82.0, 87.0]
S4D_INV_LISTOPS = [51.0, 55.0, 56.0]
HOPE_LISTOPS = [55.0, 59.0]


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    return build_store(tmp_path_factory.mktemp("store"))


@pytest.fixture(scope="module")
def runs(store):
    return dedup(load_runs(store))


@pytest.fixture(scope="module")
def board(runs):
    return leaderboard_table(runs.kept, "best/test_acc", load_published(), min_seeds=3)


@pytest.fixture(scope="module")
def auto_board(runs):
    """The leaderboard scoring each task by its objective (no --metric)."""
    return leaderboard_table(runs.kept, None, load_published(), min_seeds=3)


def _fmt(values, places):
    """`mean ± std` at `places` decimals, from the statistics module (the places are worked out
    by hand in each test: 3 significant digits of the mean, or the std's first digit)."""
    return f"{statistics.mean(values):.{places}f} ± {statistics.stdev(values):.{places}f}"


def test_load_is_typed_and_dedup_keeps_the_finished_resubmission(runs):
    assert len(runs.kept) + len(runs.dropped) == len(specs())
    assert len(runs.dropped) == 1
    dropped = runs.dropped.iloc[0]
    assert dropped["status"] == "KILLED" and dropped["config_hash"] == "dup0"
    kept = runs.kept[runs.kept["config_hash"] == "dup0"]
    assert kept["status"].tolist() == ["FINISHED"]
    assert dropped["kept_run_id"] == kept["run_id"].iloc[0]
    assert "kept" in dropped["reason"] and "FINISHED" in dropped["reason"]
    assert str(runs.kept["seed"].dtype) == "Int64"
    assert runs.kept["best_test_acc"].dtype == float
    assert runs.kept["n_params"].dropna().eq(1234).all()


def test_dedup_without_finished_run_keeps_the_latest():
    frame = pd.DataFrame(
        {
            "run_id": ["a", "b", "c"],
            "config_hash": ["h", "h", None],
            "status": ["FAILED", "KILLED", "FAILED"],
            "start_time": pd.to_datetime([1, 2, 3], unit="s", utc=True),
        }
    )
    result = dedup(frame)
    assert sorted(result.kept["run_id"]) == ["b", "c"]
    assert result.dropped["run_id"].tolist() == ["a"]
    assert "latest" in result.dropped["reason"].iloc[0]


def test_leaderboard_numbers_in_csv(board):
    frame = pd.read_csv(pd.io.common.StringIO(to_csv(board)))
    ours = frame[~frame["published"]].set_index("model")
    assert ours.loc["s4d_lin", "listops_mean"] == pytest.approx(statistics.mean(S4D_LIN_LISTOPS))
    assert ours.loc["s4d_lin", "listops_std"] == pytest.approx(statistics.stdev(S4D_LIN_LISTOPS))
    assert ours.loc["s4d_lin", "text_std"] == pytest.approx(statistics.stdev(S4D_LIN_TEXT))
    assert ours.loc["hope", "listops_mean"] == pytest.approx(statistics.mean(HOPE_LISTOPS))
    assert ours.loc["hope", "listops_n"] == 2 and ours.loc["s4d_lin", "listops_n"] == 3
    # The failed seed-0 run of hope on text is not counted: one seed, no std.
    assert ours.loc["hope", "text_n"] == 1 and math.isnan(ours.loc["hope", "text_std"])
    assert ours["listops_best"].sum() == 1 and bool(ours.loc["hope", "listops_best"])
    assert bool(ours.loc["s4d_lin", "text_best"])
    assert (
        bool(ours.loc["hope", "listops_few_seeds"]) and not ours.loc["s4d_lin", "listops_few_seeds"]
    )
    # LRA average: only s4_legs ran all six tasks.
    assert ours.loc["s4_legs", "LRA avg_mean"] == pytest.approx(
        statistics.mean([40, 60, 70, 80, 90, 50])
    )
    assert ours.drop(index="s4_legs")["LRA avg_mean"].isna().all()
    pub = frame[frame["published"]].set_index("model")
    assert pub.loc["S4D-Lin [4]", "listops_mean"] == 60.52
    assert pub.loc["S4D-Lin [4]", "listops_std"] == 0.51
    assert math.isnan(pub.loc["S4D-Lin [4]", "pathx_mean"])  # reported as failed ("x")
    assert pub.loc["S4-LegS [1]", "LRA avg_mean"] == pytest.approx(
        statistics.mean([59.60, 86.82, 90.90, 88.65, 94.20, 96.35])
    )


def test_leaderboard_in_markdown_terminal_and_latex(board):
    md, term, tex = to_markdown(board), to_terminal(board), to_latex(board)
    hope = _fmt(HOPE_LISTOPS, 1)  # 57.0 ± 2.8: three digits of 57
    assert f"| hope | **{hope}** (2)† |" in md
    row = f"| s4d_lin | {_fmt(S4D_LIN_LISTOPS, 1)} (3) | **{_fmt(S4D_LIN_TEXT, 1)}** (3) |"
    assert row in md
    assert "*S4D-Lin [4] (published)*" in md and "60.52 ± 0.51" in md  # as the paper prints it
    assert "[4] S4D 2206.11893" in md
    assert "1-3 seeds per cell" in md  # the digits_noise cells are split by noise length
    assert "LRA avg: mean over the six LRA tasks, computed only for rows that have all six" in md
    assert re.search(rf"hope\s+\*{re.escape(hope)}\* \(2\)†", term)
    assert "s4d_inv" in term and "54.0 ± 2.6 (3)" in term
    assert r"hope & $\mathbf{57.0 \pm 2.8}$\,{\scriptsize (2)}$^\dagger$" in tex
    assert r"\textit{S4D-Lin [4] (published)} & $60.52 \pm 0.51$" in tex
    assert "best/test\\_acc" in tex and "1-3 seeds per cell" in tex


def _check_latex_structure(tex: str) -> None:
    """ASCII only (pdflatex needs no extra packages), balanced environments and braces,
    booktabs rules in order, equal cells per row."""
    assert tex.isascii(), [ch for ch in tex if not ch.isascii()]
    stack = []
    for kind, env in re.findall(r"\\(begin|end)\{(\w+)\}", tex):
        if kind == "begin":
            stack.append(env)
        else:
            assert stack and stack.pop() == env
    assert not stack
    body = tex[tex.index(r"\begin{tabular}") : tex.index(r"\end{tabular}")]
    assert body.count("{") == body.count("}")
    rules = [r for r in re.findall(r"\\(toprule|midrule|bottomrule)", body)]
    assert rules[0] == "toprule" and rules[-1] == "bottomrule" and "midrule" in rules
    spec = re.search(r"\\begin\{tabular\}\{(\w+)\}", body).group(1)
    rows = [line for line in body.splitlines() if line.endswith(r"\\")]
    assert rows and all(line.count("&") == len(spec) - 1 for line in rows)


def test_latex_compiles_or_is_balanced(board, tmp_path):
    tex = to_latex(board)
    _check_latex_structure(tex)
    engine = shutil.which("pdflatex")
    if engine is not None:
        doc = tmp_path / "doc.tex"
        doc.write_text(
            "\\documentclass{article}\\usepackage{booktabs}\\usepackage{amsmath}"
            f"\\begin{{document}}{tex}\\end{{document}}"
        )
        done = subprocess.run(
            [engine, "-interaction=nonstopmode", "-halt-on-error", doc.name],
            cwd=tmp_path,
            capture_output=True,
            timeout=60,
        )
        assert done.returncode == 0, done.stdout[-2000:]


def _paired_p(a, b):
    d = [x - y for x, y in zip(a, b, strict=True)]
    t = statistics.mean(d) / (statistics.stdev(d) / math.sqrt(len(d)))
    return 2 * stats.t.sf(abs(t), len(d) - 1)


def _welch_p(a, b):
    va, vb = statistics.variance(a) / len(a), statistics.variance(b) / len(b)
    t = (statistics.mean(a) - statistics.mean(b)) / math.sqrt(va + vb)
    df = (va + vb) ** 2 / (va**2 / (len(a) - 1) + vb**2 / (len(b) - 1))
    return 2 * stats.t.sf(abs(t), df)


def test_ablation_against_baseline(runs):
    lra = runs.kept[runs.kept["task"] != "digits_noise"]  # whose cells mix two noise lengths
    table = ablation_table(lra, "best/test_acc", ["init", "task"], {"init": "lin"}, 3)
    frame = to_frame(table).set_index(["init", "task"])
    inv = frame.loc[("inv", "listops")]
    assert inv["best/test_acc_mean"] == pytest.approx(statistics.mean(S4D_INV_LISTOPS))
    assert inv["Δ vs baseline"] == pytest.approx(2.0)
    assert inv["test"] == "paired t"
    assert inv["p"] == pytest.approx(_paired_p(S4D_INV_LISTOPS, S4D_LIN_LISTOPS), rel=1e-10)
    hope = frame.loc[("hope", "listops")]
    assert hope["test"] == "Welch t"
    assert hope["p"] == pytest.approx(_welch_p(HOPE_LISTOPS, S4D_LIN_LISTOPS), rel=1e-10)
    assert frame.loc[("hope", "text"), "test"] == "none (n<2)"
    assert frame.loc[("lin", "listops"), "test"] == "baseline"
    assert frame.loc[("legs", "image"), "test"] == "no baseline row"
    # Bold: best init per task.
    assert bool(frame.loc[("hope", "listops"), "best/test_acc_best"])
    assert not frame.loc[("inv", "listops"), "best/test_acc_best"]
    md = to_markdown(table)
    # d = (1, 3, 2): mean 2, sd 1, 95% CI 2 +- t_{0.975, 2} / sqrt(3) = [-0.5, +4.5]
    assert "| inv | listops | 54.0 ± 2.6 (3) | +2.0 | [-0.5, +4.5] | paired t |" in md
    assert "paired t-test on matched seeds" in md
    _check_latex_structure(to_latex(table))


def test_ablation_on_a_numeric_param(store):
    kept = dedup(load_runs(store, RunFilter(tags={"task": "digits_noise"}))).kept
    table = ablation_table(kept, "best/val_acc", ["model", "task.noise_len"], {}, 2)
    labels = [r.labels for r in table.rows]
    assert labels == [("hope", "0"), ("hope", "64"), ("s4d_lin", "0"), ("s4d_lin", "64")]
    means = [r.cells[0].mean for r in table.rows]
    assert means == pytest.approx([81.5, 71.5, 91.5, 61.5])
    assert [r.cells[0].bold for r in table.rows] == [False, True, True, False]
    assert "Best model per task.noise_len in bold" in table.caption


def test_compare_closed_forms():
    a = pd.Series([1.0, 2.0, 4.0], index=[0, 1, 2])
    b = pd.Series([0.5, 1.0, 2.0], index=[2, 0, 1])  # same seeds, other order
    matched = compare(a, b)
    assert matched.test == "paired t"
    assert matched.p_value == pytest.approx(_paired_p([1, 2, 4], [1.0, 2.0, 0.5]), rel=1e-12)
    d = np.array([1, 2, 4], dtype=np.float64) - np.array([1.0, 2.0, 0.5])
    half = stats.t.ppf(0.975, 2) * d.std(ddof=1) / math.sqrt(3)
    assert (matched.low, matched.high) == pytest.approx((d.mean() - half, d.mean() + half))
    welch = compare(a, pd.Series([0.5, 1.0], index=[7, 8]))
    assert welch.test == "Welch t"
    assert welch.p_value == pytest.approx(_welch_p([1, 2, 4], [0.5, 1.0]), rel=1e-12)
    va, vb = np.var([1, 2, 4], ddof=1) / 3, np.var([0.5, 1.0], ddof=1) / 2
    df = (va + vb) ** 2 / (va**2 / 2 + vb**2 / 1)
    half = stats.t.ppf(0.975, df) * math.sqrt(va + vb)
    assert (welch.low, welch.high) == pytest.approx((welch.diff - half, welch.diff + half))
    single = compare(a, pd.Series([0.5], index=[7]))
    assert math.isnan(single.low) and math.isnan(single.high)


def test_lra_average_needs_complete_rows():
    tasks = ["listops", "text", "retrieval", "image", "pathfinder", "pathx"]
    means = pd.DataFrame([[1, 2, 3, 4, 5, 9], [1, 2, 3, 4, 5, float("nan")]], columns=tasks)
    avg = lra_average(means)
    assert avg[0] == pytest.approx(4.0) and math.isnan(avg[1])
    assert lra_average(means.drop(columns="pathx")).isna().all()


def test_excluded_runs_are_listed_with_reasons(runs):
    table = excluded_table(runs.kept, runs.dropped, None)
    reasons = {(r.labels[1], r.labels[2], r.labels[4]): r.labels[5] for r in table.rows}
    assert reasons[("text", "hope", "FAILED")] == "non-finite loss at step 37"
    assert reasons[("listops", "hope", "KILLED")].startswith("resubmission of dup0")
    assert len(table.rows) == 2  # every task scored by its objective: nothing else left out
    forced = excluded_table(runs.kept, runs.dropped, "best/test_acc")
    no_acc = [r.labels for r in forced.rows if r.labels[5] == "metric best/test_acc not logged"]
    assert len(no_acc) == 5 and {r[1] for r in no_acc} == {"adding"}


def test_filters(store):
    sweep = load_runs(store, RunFilter(sweeps=("sw1",)))
    assert len(sweep) == len(specs()) - 6 and sweep["sweep"].eq("sw1").all()
    assert set(sweep.loc[sweep["model"] == "s4_legs", "task"]) == {"adding"}
    hope = load_runs(store, RunFilter(tags={"model": "hope"}))
    assert set(hope["model"]) == {"hope"}
    failed = load_runs(store, RunFilter(statuses=("FAILED",)))
    assert failed["status_reason"].tolist() == ["non-finite loss at step 37"]
    late = load_runs(store, RunFilter(since=datetime(2026, 9, 21, 14, 30)))
    assert 0 < len(late) < len(specs())
    with pytest.raises(UserError, match="match the filters"):
        load_runs(store, RunFilter(since=datetime(2030, 1, 1)))
    with pytest.raises(UserError, match=r"unknown experiment 'nope'.*ssm-bench"):
        load_runs(store, RunFilter(experiments=("nope",)))
    with pytest.raises(UserError, match="no runs in the MLflow store"):
        load_runs(store, RunFilter(experiments=("other",)))


def test_published_file(tmp_path):
    csv = tmp_path / "pub.csv"
    csv.write_text(
        "paper,table,model,task,metric,value,notes\n"
        "P1,T1,S4D-Lin,ListOps,test acc,60.52,sd 0.51; S[B]+[C]\n"
        "P1,T1,S4D-Lin,Path-X,test acc,x,S[B]\n"
        "P1,T1,S4D-Lin,Avg,test acc,78.39,S[B]\n"
        "P1,T2,Other,sMNIST,test acc,99.0,P[A]\n"
    )
    pub = load_published(csv)
    assert pub["task"].tolist() == ["listops", "pathx"]
    assert pub["registered"].tolist() == ["s4d_lin", "s4d_lin"]
    assert pub["std"].iloc[0] == 0.51 and math.isnan(pub["mean"].iloc[1])
    assert pub["source"].iloc[0] == "P1, T1; S[B]+[C]"
    with pytest.raises(UserError, match="does not exist"):
        load_published(tmp_path / "missing.csv")


def test_cli_writes_tables_and_reports_user_errors(store, tmp_path, capsys):
    out = tmp_path / "results"
    args = ["--tracking-uri", store, "--out", str(out), "--seeds", "3"]
    keys = "kernel,init,task,task.noise_len"
    assert report.main([*args, "--group-by", keys, "--baseline", "init=lin"]) == 0
    printed = capsys.readouterr().out
    assert "Leaderboard" in printed and "*57.0 ± 2.8* (2)†" in printed
    assert "non-finite loss at step 37" in printed
    for name in ("leaderboard", "ablation_kernel_init_task_task-noise_len"):
        for ext in ("md", "tex", "csv"):
            assert (out / f"{name}.{ext}").stat().st_size > 0
    assert "non-finite loss at step 37" in (out / "leaderboard.md").read_text()
    assert "% excluded:" in (out / "leaderboard.tex").read_text()
    assert len(pd.read_csv(out / "excluded_runs.csv")) == 2
    assert report.main([*args, "--format", "latex"]) == 0
    assert r"\begin{tabular}" in capsys.readouterr().out
    for bad, message in (
        (["--tracking-uri", str(tmp_path / "none.db")], "no MLflow store"),
        ([*args, "--metric", "best/nope"], "unknown metric 'best/nope'"),
        ([*args, "--group-by", "colour"], "unknown grouping key 'colour'"),
        ([*args, "--group-by", "init", "--baseline", "task=text"], "--baseline keys"),
        ([*args, "--experiment", "nope"], "unknown experiment"),
    ):
        assert report.main(bad) == 2
        err = capsys.readouterr().err
        assert err.startswith("error: ") and message in err, err


def test_store_where_every_run_failed(tmp_path, capsys):
    """No FINISHED run: the tables are empty with a note, and the failure is listed (exit 0)."""
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    client = MlflowClient(tracking_uri=uri)
    run = client.create_run(
        client.create_experiment("ssm-bench"),
        tags={"task": "copying", "model": "hope", "seed": "0", "status_reason": "OOM at step 3"},
    )
    client.set_terminated(run.info.run_id, "FAILED")
    assert report.main(["--tracking-uri", uri, "--out", str(tmp_path / "out")]) == 0
    md = (tmp_path / "out" / "leaderboard.md").read_text()
    assert "No FINISHED run logs best/test_acc; see the excluded runs" in md
    assert "| hope | 0 | FAILED | OOM at step 3 |" in md


ADDING_S4_LEGS = [0.1587, 0.1558]  # 6 epochs
ADDING_S4D_LEGS = [0.1577]  # 2 epochs
ADDING_HOPE = [0.1612, 0.1598]


def test_the_issue_command_refuses_a_cell_of_two_model_families(store, tmp_path, capsys):
    """`--group-by init,task --baseline init=legs`: s4_legs and s4d_legs share init=legs on adding
    (and trained 6 vs 2 epochs): exit 2 naming the cell and the fix, and no file written."""
    out = tmp_path / "out"
    argv = ["--tracking-uri", store, "--out", str(out), "--tag", "task=adding"]
    assert report.main([*argv, "--group-by", "init,task", "--baseline", "init=legs"]) == 2
    err = capsys.readouterr().err.strip()
    assert err == (
        "error: cell (init=legs, task=adding) mixes model=s4_legs|s4d_legs, "
        "trainer.max_epochs=2|6; add model,trainer.max_epochs to --group-by or pass "
        "--pool model,trainer.max_epochs"
    )
    assert not out.exists()


def test_pool_pools_on_purpose_and_group_by_model_separates(runs):
    adding = runs.kept[runs.kept["task"] == "adding"]
    pooled = ablation_table(adding, None, ["init", "task"], {}, 1, ["model", "trainer.max_epochs"])
    legs = to_frame(pooled).set_index("init").loc["legs"]
    assert legs["best/test_loss_n"] == 3
    assert legs["best/test_loss_mean"] == pytest.approx(
        statistics.mean(ADDING_S4_LEGS + ADDING_S4D_LEGS)
    )
    assert "Pooled on purpose (--pool): model, trainer.max_epochs." in pooled.notes
    with pytest.raises(UserError, match=r"mixes trainer.max_epochs=2\|6"):
        ablation_table(adding, None, ["init", "task"], {}, 1, ["model"])
    split = to_frame(ablation_table(adding, None, ["model", "task"], {}, 1)).set_index("model")
    assert split["best/test_loss_n"].to_dict() == {"hope": 2, "s4_legs": 2, "s4d_legs": 1}


def test_operational_keys_never_split_a_cell(board):
    """s4d_lin's listops seed 2 logged another trainer.progress and paths.runs_dir."""
    labels = [r.labels[0] for r in board.rows if not r.published]
    assert "s4d_lin" in labels and not any(lab.startswith("s4d_lin [trainer") for lab in labels)
    assert to_frame(board).set_index("model").loc["s4d_lin", "listops_n"] == 3


def test_leaderboard_splits_a_mixed_cell_by_the_differing_key(board):
    """The digits_noise runs of one model ran at noise lengths 0 and 64: two rows, not one."""
    frame = to_frame(board).set_index("model")
    for length, drop in ((0, 0.0), (64, 0.3)):
        row = frame.loc[f"s4d_lin [task.noise_len={length}]"]
        assert row["digits_noise_n"] == 2
        assert row["digits_noise_mean"] == pytest.approx(
            statistics.mean([90 - drop * 100, 91 - drop * 100])
        )
    assert math.isnan(frame.loc["s4d_lin", "digits_noise_mean"])
    assert any("mixes task.noise_len=0|64" in note for note in board.notes)


def test_classification_and_regression_each_with_their_own_metric(auto_board):
    board = auto_board
    frame = to_frame(board).set_index("model")
    assert frame.loc["s4d_lin", "listops_mean"] == pytest.approx(statistics.mean(S4D_LIN_LISTOPS))
    assert frame.loc["s4_legs", "adding_mean"] == pytest.approx(statistics.mean(ADDING_S4_LEGS))
    assert frame.loc["hope", "adding_std"] == pytest.approx(statistics.stdev(ADDING_HOPE))
    # Lower is better for the MSE: s4_legs (0.15725) is bold, not hope (0.1605).
    assert bool(frame.loc["s4_legs", "adding_best"]) and not frame.loc["hope", "adding_best"]
    assert "test MSE, lower is better (MLflow metric best/test_loss" in board.caption
    assert "higher is better (MLflow metric best/test_acc" in board.caption
    assert board.caption.index("best/test_loss") < board.caption.index("on adding")


def test_significant_digits_in_every_text_format(auto_board):
    """0.1577 (one seed) prints as 0.158; 0.15725 ± 0.00205 as 0.157 ± 0.002 (the std's first
    digit sets the place), the same in Markdown, LaTeX and the terminal; --digits 4 keeps more."""
    board = auto_board
    md, tex, term = to_markdown(board), to_latex(board), to_terminal(board)
    assert "| s4d_legs |" in md and "0.158 (1)" in md
    assert "**0.157 ± 0.002** (2)" in md
    assert r"$\mathbf{0.157 \pm 0.002}$" in tex and "$0.158$" in tex
    assert "*0.157 ± 0.002* (2)" in term and "0.158 (1)" in term
    assert "0.1605 ± 0.0010 (2)" in md  # std 0.00099: its first digit is in the 4th place
    board.digits = 4
    try:
        assert "**0.1573 ± 0.0021** (2)" in to_markdown(board) and "0.1577 (1)" in to_terminal(
            board
        )
    finally:
        board.digits = 3


def test_delta_and_paired_test_follow_a_lower_is_better_metric(runs):
    adding = runs.kept[runs.kept["task"] == "adding"]
    table = ablation_table(adding, None, ["model", "task"], {"model": "s4_legs"}, 2)
    frame = to_frame(table).set_index("model")
    hope = frame.loc["hope"]
    assert hope["Δ vs baseline"] == pytest.approx(
        statistics.mean(ADDING_HOPE) - statistics.mean(ADDING_S4_LEGS)
    )
    assert hope["test"] == "paired t"
    assert hope["p"] == pytest.approx(_paired_p(ADDING_HOPE, ADDING_S4_LEGS), rel=1e-10)
    assert bool(frame.loc["s4_legs", "best/test_loss_best"])  # the lowest loss
    # d = (0.0025, 0.0040): 95% CI 0.00325 +- t_{0.975, 1} 0.00106 / sqrt(2)
    md = to_markdown(table)
    assert "| hope | adding | 0.1605 ± 0.0010 (2) | +0.0033 | [-0.0063, +0.0128] | paired t |" in md


def test_an_empty_requested_table_exits_2(store, tmp_path, capsys):
    out = tmp_path / "out"
    argv = ["--tracking-uri", store, "--out", str(out), "--tag", "task=adding"]
    assert report.main([*argv, "--metric", "best/test_acc"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: no FINISHED run logs best/test_acc (--metric)")
    assert "best/test_loss" in err and not out.exists()
    assert report.main([*argv]) == 0  # scored by its objective: the MSE
    assert "0.157 ± 0.002" in (out / "leaderboard.md").read_text()


def test_sweep_resolves_through_its_manifest_like_status(store, tmp_path):
    """A resubmitted finished sweep (new id, nothing submitted) lists the points it covers in its
    manifest: `--sweep <new id>` finds their runs, tagged with the first sweep's id, and
    `harness.cluster.status` shows the same runs."""
    from harness.cluster.status import status_table
    from harness.layout import RUN_ID_FILE

    runs = load_runs(store, RunFilter(tags={"task": "adding"}))
    points = []
    for i, run in enumerate(runs.itertuples()):
        directory = tmp_path / "runs" / run.config_hash
        directory.mkdir(parents=True)
        (directory / RUN_ID_FILE).write_text(run.run_id)
        points.append(
            {"index": i, "config_hash": run.config_hash, "run_dir": str(directory)}
            | {"label": f"model={run.model} seed={run.seed}", "action": "skip"}
        )
    manifest = tmp_path / "sweeps" / "resubmitted" / "sweep.json"
    manifest.parent.mkdir(parents=True)
    manifest.write_text(
        json.dumps({"sweep": "resubmitted", "tracking_uri": store, "points": points})
    )
    hashes = sweep_hashes(tmp_path / "sweeps", ("resubmitted",))
    found = load_runs(store, RunFilter(sweeps=("resubmitted",), sweep_points=hashes))
    assert set(found["run_id"]) == set(runs["run_id"]) and set(found["sweep"]) == {"sw1"}
    status = status_table(manifest)
    assert set(status["hash"]) == set(found["config_hash"])
    assert set(status["state"]) == {"finished"}
    with pytest.raises(UserError, match="match the filters"):
        load_runs(store, RunFilter(sweeps=("resubmitted",)))  # the tag alone knows no such sweep


def test_a_file_that_is_no_store_and_an_uncreatable_out_are_one_error(store, tmp_path, capsys):
    plain = tmp_path / "notes.txt"
    plain.write_text("not a store")
    out = ["--out", str(tmp_path / "out")]
    for bad, message in (
        (["--tracking-uri", str(plain), *out], "is a file, not an MLflow store folder"),
        (["--tracking-uri", f"sqlite:///{plain}", *out], "is not a SQLite database"),
        (["--tracking-uri", store, "--out", str(plain / "tables")], f"--out {plain / 'tables'}"),
    ):
        assert report.main(bad) == 2
        err = capsys.readouterr().err
        assert err.startswith("error: ") and message in err and str(plain) in err, err
        assert len(err.strip().splitlines()) == 1


def test_histories_hold_one_value_per_run_and_step(tmp_path):
    """A store written by a resume that logged steps again: the history keeps the last value."""
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    client = MlflowClient(tracking_uri=uri)
    run = client.create_run(
        client.create_experiment("ssm-bench"), tags={"task": "copying", "model": "hope"}
    )
    points = [(1, 0.1, 1000), (2, 0.2, 2000), (3, 0.3, 3000), (2, 0.25, 4000), (3, 0.35, 5000)]
    for step, value, stamp in points:
        client.log_metric(run.info.run_id, "val/acc", value, timestamp=stamp, step=step)
    client.set_terminated(run.info.run_id, "FINISHED")
    history = load_histories(uri, load_runs(uri), "val/acc")
    assert history["step"].tolist() == [1, 2, 3]
    # An untagged run (older code) logged fractions: read in percent.
    assert history["value"].tolist() == pytest.approx([10.0, 25.0, 35.0])


def test_accuracies_of_both_units_read_as_percent(store) -> None:
    """Runs tagged acc_unit=percent and untagged runs of older code (fractions) give the same
    percentages: metrics, the chance level and histories alike."""
    loaded = load_runs(store)
    cell = (loaded["model"] == "s4d_lin") & (loaded["task"] == "listops")
    both = loaded[cell].sort_values("seed")
    assert set(both["acc_unit"]) == {"percent", "fraction"}, "the store mixes both generations"
    assert both["best_test_acc"].tolist() == pytest.approx([50.0, 52.0, 54.0])
    assert both["metrics.best/test_acc"].tolist() == pytest.approx([50.0, 52.0, 54.0])
    assert both["metrics.trivial/test_acc"].tolist() == pytest.approx([10.0] * 3)
    history = load_histories(store, both, "val/acc")
    finals = history[history["step"] == 20].sort_values("seed")["value"].tolist()
    assert finals == pytest.approx([50.0, 52.0, 54.0])
    # Losses are never scaled.
    assert both["metrics.best/test_loss"].tolist() == pytest.approx([1.5, 1.48, 1.46])


@pytest.mark.parametrize("state", [7, 0, -2])
def test_an_odd_basis_state_is_refused_before_any_file(store, tmp_path, capsys, state):
    out = tmp_path / "results"
    argv = ["--tracking-uri", store, "--out", str(out), "--plots", "--basis-state", str(state)]
    assert report.main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith(f"error: --basis-state {state}: the state size must be a positive even")
    assert not out.exists()


@pytest.mark.parametrize("length", [0, -5])
def test_a_kernel_length_below_one_is_refused_before_any_file(store, tmp_path, capsys, length):
    out = tmp_path / "results"
    argv = ["--tracking-uri", store, "--out", str(out), "--plots", "--kernel-len", str(length)]
    assert report.main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith(f"error: --kernel-len {length}: a kernel needs at least one step")
    assert not out.exists()
