"""The benchmark CLI on CPU: a tiny config runs every suite and writes well-formed CSVs
(numbers are written with 6 significant digits, hence the relative tolerances).

Timings on a shared CPU are noise, so nothing here asserts a time; the tests check the schema,
the floor ratios (computed against the floor row of the same shape), the floor layer itself,
and the user errors.
"""

import math

import pandas as pd
import pytest
import torch

import models
from harness.bench import command as bench
from harness.bench import curve as bench_curve
from harness.bench import floor as bench_floor
from harness.bench import timing as bench_timing

TINY = ["--lengths", "24", "--batch", "2", "--d-model", "4", "--d-state", "4",
        "--model-lengths", "16", "--model-batch", "2", "--model-d-model", "4",
        "--model-layers", "1", "--warmup", "0", "--reps", "1", "--device", "cpu"]  # fmt: skip


def test_tiny_run_writes_one_well_formed_csv_per_suite(tmp_path, capsys):
    names = ["s4d_lin", "hope", "floor"]
    argv = ["--suite", "kernel", "layer", "model", "--models", *names, "--dtypes", "fp32",
            "bf16", "--floor-of", "s4d_lin", "--out", str(tmp_path), *TINY]  # fmt: skip
    assert bench.main(argv) == 0
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "kernel_cpu.csv", "layer_cpu.csv", "model_cpu.csv"
    ]  # fmt: skip
    for suite in ("kernel", "layer", "model"):
        table = pd.read_csv(tmp_path / f"{suite}_cpu.csv")
        assert list(table.columns) == bench.COLUMNS
        assert (table["status"] == "ok").all()
        assert (table["suite"] == suite).all() and (table["device"] == "cpu").all()
        assert (table["ms"] > 0).all() and (table["ms_min"] <= table["ms_max"]).all()
        expected = {n for n in names if not (suite == "kernel" and n == "floor")}
        assert set(table["model"]) == expected
        # the kernel suite always runs in fp32 (kernels never run in bf16); the others in both
        assert set(table["dtype"]) == ({"fp32"} if suite == "kernel" else {"fp32", "bf16"})
    layer = pd.read_csv(tmp_path / "layer_cpu.csv")
    for _, group in layer.groupby("dtype"):
        floor_ms = group.loc[group["model"] == "floor", "ms"].item()
        assert group["ms_vs_floor"].to_numpy() == pytest.approx(group["ms"] / floor_ms, rel=1e-4)
    model = pd.read_csv(tmp_path / "model_cpu.csv")
    assert (model["L"] == 16).all() and (model["B"] == 2).all()
    assert model["samples_per_s"].to_numpy() == pytest.approx(2e3 / model["ms"], rel=1e-4)
    assert "wrote" in capsys.readouterr().out


def test_floor_layer_is_the_same_layer_with_a_fixed_kernel():
    torch.manual_seed(0)
    layer = models.build_layer("s4_legs", 4, d_state=4, bidirectional=True)
    x = torch.randn(2, 4, 12)  # (B, H, L)
    expected = layer(x)
    kernel = layer.kernel(12)
    floor = bench_floor.floor_layer(layer, 12)
    assert isinstance(floor.ssm, bench_floor.FixedKernel)
    assert torch.equal(floor.kernel(12), kernel) and floor.ssm.weight.requires_grad
    torch.testing.assert_close(floor(x), expected)
    with pytest.raises(ValueError, match="length 12, not 13"):
        floor.kernel(13)


def test_measure_reports_median_and_spread():
    calls = []
    result = bench_timing.measure(lambda: calls.append(1), torch.device("cpu"), warmup=2, reps=5)
    assert len(calls) == 7
    assert 0 <= result.ms_min <= result.ms <= result.ms_max
    assert math.isnan(result.peak_bytes)


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--models", "s5"], "unknown model 's5'"),
        (["--layer-option", "disc"], "--layer-option 'disc' must look like KEY=VALUE"),
        (["--models", "s4d_lin", "--layer-option", "colour=red"], "unknown layer option"),
    ],
)
def test_user_errors_exit_2_with_one_line(tmp_path, capsys, argv, message):
    assert bench.main([*argv, "--suite", "kernel", "--out", str(tmp_path), *TINY]) == 2
    err = capsys.readouterr().err
    last = err.strip().splitlines()[-1]  # after the progress bar, if any
    assert last.startswith("error: ") and message in last and "Traceback" not in err


def test_cuda_request_without_gpu_is_a_user_error(tmp_path, capsys):
    if torch.cuda.is_available():
        pytest.skip("this machine has a CUDA device")
    assert bench.main(["--out", str(tmp_path), *TINY[:-2], "--device", "cuda"]) == 2
    assert "use --device cpu" in capsys.readouterr().err


def test_plot_from_a_bench_csv_writes_pdf_and_png(tmp_path):
    csv = tmp_path / "layer_cpu.csv"
    argv = ["--suite", "layer", "--models", "s4d_lin", "floor", "--floor-of", "s4d_lin",
            "--out", str(tmp_path), *TINY]  # fmt: skip
    assert bench.main(argv) == 0
    assert bench.main(["--plot-from", str(csv)]) == 0
    for suffix in (".pdf", ".png"):
        assert csv.with_suffix(suffix).stat().st_size > 0
    (tmp_path / "other.csv").write_text("a,b\n1,2\n")
    assert bench.main(["--plot-from", str(tmp_path / "other.csv")]) == 2


def test_curve_runs_fp32_twice_and_bf16_on_the_same_batches(tmp_path, capsys):
    argv = ["--model", "s4d_lin", "--steps", "3", "--batch", "2", "--length", "16",
            "--d-model", "4", "--d-state", "4", "--layers", "1", "--n-batches", "2",
            "--device", "cpu", "--out", str(tmp_path)]  # fmt: skip
    assert bench_curve.main(argv) == 0
    curves = pd.read_csv(tmp_path / "curve_s4d_lin_cpu.csv")
    runs = curves.groupby(["dtype", "seed"])["step"].apply(list).to_dict()
    assert runs == {("bf16", 0): [0, 1, 2], ("fp32", 0): [0, 1, 2], ("fp32", 1): [0, 1, 2]}
    assert curves["loss"].notna().all() and (curves["ms"] > 0).all()
    summary = bench_curve.summarize(curves)
    fp32 = curves[(curves["dtype"] == "fp32") & (curves["seed"] == 0)]["loss"].to_numpy()
    bf16 = curves[curves["dtype"] == "bf16"]["loss"].to_numpy()
    assert summary["bf16_vs_fp32_gap"] == pytest.approx(abs(bf16 - fp32).mean(), rel=1e-4)
    assert "bf16 speedup" in capsys.readouterr().out
