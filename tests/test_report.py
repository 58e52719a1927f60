"""Reports from a synthetic MLflow store with known runs (tests/report_store.py).

Expected numbers are computed here from the raw per-seed values with the `statistics` module and
the t-test closed forms, independently of the pandas/scipy code under test.
"""

import math
import re
import shutil
import statistics
import subprocess
from datetime import datetime

import pandas as pd
import pytest
from mlflow.tracking import MlflowClient
from report_store import build_store, specs
from scipy import stats

from common import UserError
from harness import report
from harness.published import load_published
from harness.report_format import to_csv, to_frame, to_latex, to_markdown, to_terminal
from harness.report_load import RunFilter, dedup, load_histories, load_runs
from harness.report_stats import compare, lra_average
from harness.report_tables import ablation_table, excluded_table, leaderboard_table

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


def _fmt(values):
    """`mean ± std` as the tables print it, from the statistics module."""
    return f"{statistics.mean(values):.2f} ± {statistics.stdev(values):.2f}"


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
    assert ours["listops_best"].to_dict() == {
        "hope": True,
        "s4_legs": False,
        "s4d_inv": False,
        "s4d_lin": False,
    }
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
    assert pub.loc["S4D-Lin [3]", "listops_mean"] == 60.52
    assert pub.loc["S4D-Lin [3]", "listops_std"] == 0.51
    assert math.isnan(pub.loc["S4D-Lin [3]", "pathx_mean"])  # reported as failed ("x")
    assert pub.loc["S4-LegS [1]", "LRA avg_mean"] == pytest.approx(
        statistics.mean([59.60, 86.82, 90.90, 88.65, 94.20, 96.35])
    )


def test_leaderboard_in_markdown_terminal_and_latex(board):
    md, term, tex = to_markdown(board), to_terminal(board), to_latex(board)
    hope = _fmt(HOPE_LISTOPS)
    assert f"| hope | **{hope}** (2)† |" in md
    assert f"| s4d_lin | {_fmt(S4D_LIN_LISTOPS)} (3) | **{_fmt(S4D_LIN_TEXT)}** (3) |" in md
    assert "*S4D-Lin [3] (published)*" in md and "60.52 ± 0.51" in md
    assert "[3] S4D 2206.11893" in md
    assert "1-4 seeds per cell" in md  # digits_noise: 2 noise lengths x 2 seeds per model
    assert "LRA avg: mean over the six LRA tasks, computed only for rows that have all six" in md
    assert re.search(rf"hope\s+\*{re.escape(hope)}\* \(2\)†", term)
    assert "s4d_inv" in term and "54.00 ± 2.65 (3)" in term
    assert r"hope & $\mathbf{57.00 \pm 2.83}$\,{\scriptsize (2)}$^\dagger$" in tex
    assert r"\textit{S4D-Lin [3] (published)} & $60.52 \pm 0.51$" in tex
    assert "best/test\\_acc" in tex and "1-4 seeds per cell" in tex


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
    table = ablation_table(runs.kept, "best/test_acc", ["init", "task"], {"init": "lin"}, 3)
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
    assert "| inv | listops | 54.00 ± 2.65 (3) | +2.00 | paired t |" in md
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
    welch = compare(a, pd.Series([0.5, 1.0], index=[7, 8]))
    assert welch.test == "Welch t"
    assert welch.p_value == pytest.approx(_welch_p([1, 2, 4], [0.5, 1.0]), rel=1e-12)


def test_lra_average_needs_complete_rows():
    tasks = ["listops", "text", "retrieval", "image", "pathfinder", "pathx"]
    means = pd.DataFrame([[1, 2, 3, 4, 5, 9], [1, 2, 3, 4, 5, float("nan")]], columns=tasks)
    avg = lra_average(means)
    assert avg[0] == pytest.approx(4.0) and math.isnan(avg[1])
    assert lra_average(means.drop(columns="pathx")).isna().all()


def test_excluded_runs_are_listed_with_reasons(runs):
    table = excluded_table(runs.kept, runs.dropped, "best/test_acc")
    reasons = {(r.labels[1], r.labels[2], r.labels[4]): r.labels[5] for r in table.rows}
    assert reasons[("text", "hope", "FAILED")] == "non-finite loss at step 37"
    assert reasons[("listops", "hope", "KILLED")].startswith("resubmission of dup0")
    assert len(table.rows) == 2


def test_filters(store):
    sweep = load_runs(store, RunFilter(sweeps=("sw1",)))
    assert "s4_legs" not in set(sweep["model"]) and len(sweep) == len(specs()) - 6
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
    assert report.main([*args, "--group-by", "init,task", "--baseline", "init=lin"]) == 0
    printed = capsys.readouterr().out
    assert "Leaderboard" in printed and "*57.00 ± 2.83* (2)†" in printed
    assert "non-finite loss at step 37" in printed
    for name in ("leaderboard", "ablation_init_task"):
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
    assert "No FINISHED run logs the metric best/test_acc" in md
    assert "| hope | 0 | FAILED | OOM at step 3 |" in md


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
    assert history["value"].tolist() == [0.1, 0.25, 0.35]
