"""`ssm-bench bench gpu` on CPU: its arguments, the benchmark CSVs it names and writes, and how
it turns the kernel checks' records into a CSV and a verdict (the checks themselves need a GPU
or the interpreter: tests/test_triton_interpreter.py)."""

import json
import subprocess

import pandas as pd
import pytest

from harness.bench import gpu


def test_defaults_run_the_layer_suite_and_the_s4_legs_model_step_fp32_and_bf16():
    layer, model = gpu.bench_argvs(gpu.parse_args([]))
    assert layer[:2] == ["--suite", "layer"] and "--models" not in layer
    assert model[model.index("--models") + 1 : model.index("--models") + 3] == ["s4_legs", "floor"]
    for argv in (layer, model):
        i = argv.index("--dtypes")
        assert argv[i + 1 : i + 3] == ["fp32", "bf16"]
        assert argv[argv.index("--tag") + 1] == "check"


def test_writes_csvs_named_by_device_with_floor_ratios(tmp_path):
    small = ["--device", "cpu", "--out", str(tmp_path), "--skip-kernel-checks", "--lengths", "32"]
    small += ["--batch", "1", "--d-model", "4", "--model-lengths", "16", "--model-batch", "2"]
    small += ["--model-d-model", "4", "--model-layers", "1", "--warmup", "0", "--reps", "1"]
    assert gpu.main(small) == 0
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "layer_cpu_check.csv",
        "model_cpu_check.csv",
    ]
    model = pd.read_csv(tmp_path / "model_cpu_check.csv")
    assert sorted(set(model["model"])) == ["floor", "s4_legs"]
    assert sorted(set(model["dtype"])) == ["bf16", "fp32"]
    assert (model["status"] == "ok").all()
    floor = model[model["model"] == "floor"]
    assert (floor["ms_vs_floor"] == 1).all()
    layer = pd.read_csv(tmp_path / "layer_cpu_check.csv")
    assert {"s4_legs", "s4d_lin", "hope", "floor"} <= set(layer["model"])
    assert (layer["L"] == 32).all()


def _fake_runs(records, test_rc=0):
    def run(argv, **kwargs):
        if "--json" in argv:
            path = argv[argv.index("--json") + 1]
            with open(path, "w") as f:
                json.dump(records, f)
            return subprocess.CompletedProcess(argv, 0)
        return subprocess.CompletedProcess(argv, test_rc)

    return run


GOOD = [
    {"group": "kernel", "kernel": "cauchy_conj", "quantity": "out", "ok": True},
    {"group": "mutation", "kernel": "cauchy_conj", "quantity": "out", "ok": False},
    {"group": "layer", "layer": "hope", "quantity": "output", "ok": True, "fused": True},
]


@pytest.mark.parametrize(
    ("records", "test_rc", "passed"),
    [
        (GOOD, 0, True),
        (GOOD, 1, False),  # a GPU test failed
        ([{**GOOD[0], "ok": False}, *GOOD[1:]], 0, False),  # a kernel beyond its bound
        ([GOOD[0], {**GOOD[1], "ok": True}, GOOD[2]], 0, False),  # a mutation not caught
        ([*GOOD[:2], {**GOOD[2], "fused": False}], 0, False),  # the layer never took the kernel
    ],
)
def test_kernel_check_records_become_a_csv_and_a_verdict(
    tmp_path, monkeypatch, records, test_rc, passed
):
    monkeypatch.setattr(gpu.subprocess, "run", _fake_runs(records, test_rc))
    assert gpu.kernel_checks("cuda", tmp_path, "nvidia-h200", "check") is passed
    assert [p.name for p in tmp_path.iterdir()] == ["kernel_check_nvidia-h200_check.csv"]
    table = pd.read_csv(tmp_path / "kernel_check_nvidia-h200_check.csv")
    assert list(table["group"]) == [r["group"] for r in records]


def test_imports_nothing_a_bare_gpu_machine_lacks():
    """A GPU machine's image has torch, triton, pandas, tqdm, PyYAML; not Hydra or MLflow."""
    import sys

    code = (
        "import sys, harness.bench.gpu, harness.bench.command\n"
        "bad = {m.split('.')[0] for m in sys.modules}\n"
        "bad &= {'hydra', 'omegaconf', 'submitit', 'mlflow'}\n"
        "assert not bad, bad"
    )
    subprocess.run([sys.executable, "-c", code], check=True, cwd=gpu.PROJECT_ROOT)
