"""The fused Triton kernels and the layers that use them, run by Triton's interpreter on CPU.

Triton builds its own library in one mode per process, so the interpreter must be on before
Triton is first imported: the checks run in one subprocess, `tests/triton_interp_worker.py`
(its docstring states the shapes and how every tolerance is derived), and the tests here assert
on its records, one test per compared quantity. Where Triton is not installed they are skipped
with that reason (`pip install -e '.[dev]'` installs it).
"""

import importlib.util
import json
import math
import subprocess
import sys
from pathlib import Path

import pytest
import triton_interp_worker as worker

pytestmark = pytest.mark.skipif(
    importlib.util.find_spec("triton") is None,
    reason="triton is not installed (pip install -e '.[dev]'): the fused kernels are unchecked",
)


@pytest.fixture(scope="module")
def records(tmp_path_factory) -> list[dict]:
    out = tmp_path_factory.mktemp("interp") / "records.json"
    script = Path(worker.__file__)
    proc = subprocess.run(
        [sys.executable, str(script), "--device", "cpu", "--json", str(out)],
        capture_output=True, text=True, timeout=600, env={**_env(), "TRITON_INTERPRET": "1"},
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-4000:]
    return json.loads(out.read_text())


def _env() -> dict:
    import os

    return {**os.environ, "OMP_NUM_THREADS": "1"}


def _select(records, **match) -> list[dict]:
    found = [r for r in records if all(r.get(k) == v for k, v in match.items())]
    assert found, f"no record {match}"
    return found


@pytest.mark.parametrize("case", range(len(worker.CASES)))
def test_fused_kernel_matches_float64_sums(records, case):
    kernel, lead, sizes = worker.CASES[case]
    for r in _select(records, group="kernel", case=case):
        assert r["ok"], (
            f"{kernel} lead={lead} {sizes} {r['quantity']}: error {r['err_units']:.3g} u*A "
            f"above the float32 bound {r['bound_units']:.0f} u*A"
        )
    assert [r["quantity"] for r in _select(records, group="kernel", case=case)] == list(
        worker.QUANTITIES[kernel]
    )


@pytest.mark.parametrize("index", range(len(worker.MUTATIONS)))
def test_broken_index_arithmetic_goes_red(records, index):
    """The same comparison with an off-by-one planted in a kernel's index or mask fails."""
    _, function, old, new, _, case, quantity = worker.MUTATIONS[index]
    (r,) = _select(records, group="mutation", mutation=f"{function}: {old} -> {new}")
    assert r["case"] == case and r["quantity"] == quantity
    assert not r["ok"] and r["err_units"] > 100 * r["bound_units"], r


@pytest.mark.parametrize("layer", [name for name, _ in worker.LAYERS])
def test_layer_fast_path_matches_cpu_path(records, layer):
    rows = _select(records, group="layer", layer=layer)
    assert {"output", "input", "ssm.log_dt", "D"} <= {r["quantity"] for r in rows}
    for r in rows:
        assert r["fused"], f"{layer}: the fused kernel was not in the graph"
        assert r["ok"], f"{layer} {r['quantity']}: fast vs cpu {r['rel_fast_vs_cpu']:.3g}, " + (
            f"cpu vs float64 {r['rel_cpu_vs_f64']:.3g}"
        )


def test_cases_cover_the_masking_edges():
    """N2 not a power of two, lengths not a multiple of any block, one and several residue rows,
    several blocks in a backward program and several backward programs, for every kernel."""
    import triton

    from models.kernels import fast_cauchy, fast_markov, fast_vandermonde

    seen = {}
    for kernel, lead, sizes in worker.CASES:
        n = sizes.get("N2", sizes.get("M"))
        L = sizes["L"]
        if kernel == "cauchy_conj":
            bn = triton.next_power_of_2(n)
            fwd, bwd = fast_cauchy.FWD_TILE // bn, max(16, fast_cauchy.BWD_TILE // bn)
            per_program = fast_cauchy.BLOCKS_PER_PROGRAM
        elif kernel == "vandermonde_conj":
            fwd = bwd = fast_vandermonde.BLOCK_POWERS
            per_program = fast_vandermonde.BLOCKS_PER_PROGRAM
        else:
            fwd = bwd = fast_markov._tile(n)[1]
            per_program = fast_markov.BLOCKS_PER_PROGRAM
        flags = seen.setdefault(kernel, set())
        checks = {
            "N2 not 2^k": n & (n - 1) != 0,
            "L % block": L % fwd != 0 and L % bwd != 0,
            "one row" if math.prod(lead) == 1 else "rows": True,
            "blocks": math.ceil(L / bwd) > 1,
            "programs": bwd * per_program < L,
        }
        flags |= {name for name, met in checks.items() if met}
    want = {"N2 not 2^k", "L % block", "one row", "rows", "blocks", "programs"}
    assert all(want == flags for flags in seen.values()), seen
    assert set(seen) == set(worker.QUANTITIES)
