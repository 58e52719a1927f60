"""The fused Triton kernels checked against the float64 sums: a script run in its own process.

    python tests/triton_interp_worker.py [--device cpu|cuda] [--only GROUP ...] [--json OUT]

On `cpu` it turns Triton's interpreter on (`TRITON_INTERPRET=1`, set here before anything imports
Triton, which is why this runs as its own process: Triton builds its own library in one mode per
process) so that `models.kernels.ops` sends CPU tensors to the fused kernels; on `cuda` the
compiled kernels run on the GPU. `tests/test_triton_interpreter.py` runs it and asserts on its
records; `harness.bench.gpu` runs it on the GPU. Each record is one compared quantity:

kernel    every fused sum (`fast_cauchy`, `fast_vandermonde`, `fast_markov`), forward and every
          gradient, against `models.kernels.naive` in float64 from the same float32 inputs, at
          shapes chosen for the masking edges (see CASES). The error of each element is measured
          in units of u * A, u = 2^-24 (float32's unit roundoff), A = sum of |terms| of that
          element's sum in float64 (MAGNITUDES), and must stay below the bound K of the record:
          a sum of n terms, each computed with relative error <= k u, has error <= (k + n) u A
          (Higham, recursive summation; the kernels' tree and blocked sums do no worse), doubled
          because the real and imaginary parts are rounded separately: K = 2 (k + n). k counts
          the roundings along one term (`_bound_*`, with 2 ulp for the GPU's approximate
          reciprocal, exp and sin/cos).
mutation  the same comparison with a copy of a kernel whose index arithmetic or mask is broken on
          purpose (MUTATIONS): it must exceed its bound, which proves the comparison can fail.
layer     whole layers (s4_legs, s4_fout, s4d_lin, hope) with fast paths on against fast paths
          off (the CPU path): output, input gradient and every parameter's gradient. The two are
          the same float32 function in another rounding order, so they may differ by about the
          CPU path's own float32 error, measured against the same layer in float64:
          |fast - cpu| <= 8 |cpu - f64| + 16 eps32 |f64| (Frobenius norms; 8 = twice the sum of
          two errors of which one may be 3 times the other, as S4-FouT's ill-conditioned
          gradients show; the floor covers quantities the CPU path gets almost exactly).
          `fused` says whether the fused autograd node was in the fast run's graph.
"""

import argparse
import ast
import copy
import importlib.util
import json
import math
import os
import sys
import tempfile
import time
import warnings
from pathlib import Path

U32 = 2.0**-24  # float32 unit roundoff
EPS32 = 2.0**-23
ROOT = Path(__file__).resolve().parents[1]

# (kernel, lead, sizes): lead () is one residue row, (3,) and (2,) several. The block sizes they
# meet (fast_*.py constants): Cauchy N2=5 -> BLOCK_N 8, points per forward program 256, per
# backward block 64, 16 blocks per backward program; N2=33 -> BLOCK_N 64, 32 / 16 points, L=300
# two backward programs. Vandermonde: 64 powers a block, 16 blocks a program; L=1100 two
# programs, the second partial. Markov M=5 -> BLOCK_M 8, 256 points; M=37 -> BLOCK_M 64, 32
# points, 8 blocks per backward program, L=280 two backward programs.
CASES = [
    ("cauchy_conj", (), {"H": 2, "N2": 5, "L": 300}),
    ("cauchy_conj", (3,), {"H": 2, "N2": 33, "L": 300}),
    ("vandermonde_conj", (), {"H": 2, "N2": 5, "L": 300}),
    ("vandermonde_conj", (2,), {"H": 2, "N2": 33, "L": 1100}),
    ("markov_response", (3,), {"C": 2, "M": 5, "L": 300}),
    ("markov_response", (), {"C": 2, "M": 37, "L": 280}),
]
GRAD_INPUTS = {"cauchy_conj": (0, 2), "vandermonde_conj": (0, 1), "markov_response": (0, 1)}
QUANTITIES = {
    "cauchy_conj": ("out", "grad_v", "grad_w"),
    "vandermonde_conj": ("out", "grad_c", "grad_log_z"),
    "markov_response": ("out", "grad_h", "grad_z"),
}
# (module, function, old, new, count, case index, quantity): each breaks one index or mask
MUTATIONS = [
    # the pole mask one short: the last pole of every channel is dropped
    ("fast_cauchy", "_cauchy_fwd_kernel", "mask_n = n < N", "mask_n = n < N - 1", 1, 0, "out"),
    # grad_w with every residue row's v read from row 0: wrong only with several rows
    ("fast_cauchy", "_cauchy_bwd_kernel", "(row * N + n)", "(h * N + n)", 2, 1, "grad_w"),
    # the first power of a backward program one block short of its place: wrong only from the
    # second program of powers on
    (
        "fast_vandermonde",
        "_vandermonde_bwd_kernel",
        "l_first = chunk * BLOCKS * BLOCK_L",
        "l_first = chunk * (BLOCKS - 1) * BLOCK_L",
        1,
        3,
        "grad_log_z",
    ),
    # the exponents one too high: y^(m+2) in place of y^(m+1)
    (
        "fast_markov",
        "_powers",
        "e = tl.arange(0, BLOCK_M)[:, None] + 1",
        "e = tl.arange(0, BLOCK_M)[:, None] + 2",
        1,
        4,
        "out",
    ),
]
LAYERS = [
    ("s4_legs", {"bidirectional": True}),
    ("s4_fout", {}),
    ("s4d_lin", {"bidirectional": True}),
    ("hope", {}),
]
FUSED_NODES = {
    "s4_legs": "_CauchyConjBackward",
    "s4_fout": "_CauchyConjBackward",
    "s4d_lin": "_VandermondeConjBackward",
    "hope": "_MarkovResponseBackward",
}


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--device", default="cpu", choices=("cpu", "cuda"))
    p.add_argument(
        "--only", nargs="+", default=("kernel", "mutation", "layer"),
        choices=("kernel", "mutation", "layer"),
    )  # fmt: skip
    p.add_argument("--json", type=Path, default=None, help="write the records here")
    return p.parse_args(argv)


# ---------------------------------------------------------------------------------- inputs


def make_inputs(kernel: str, lead: tuple, sizes: dict, device: str, seed: int) -> list:
    """Random float32 inputs of the shapes the layers pass (S4: stable poles and points on the
    imaginary axis; S4D: decaying powers; HOPE: points near the unit circle)."""
    import torch

    g = torch.Generator().manual_seed(seed)

    def crandn(*shape, scale=1.0):
        return torch.complex(torch.randn(shape, generator=g), torch.randn(shape, generator=g))

    if kernel == "cauchy_conj":
        H, N, L = sizes["H"], sizes["N2"], sizes["L"]
        w = torch.complex(-torch.rand(H, N, generator=g) - 0.05, 3 * torch.randn(H, N, generator=g))
        tan = torch.tan(math.pi * torch.arange(L, dtype=torch.float64) / (2 * L))
        z = torch.complex(torch.zeros_like(tan), 2 * tan).to(torch.complex64)  # (L,) as dplr
        inputs = [crandn(*lead, H, N), z, w]
    elif kernel == "vandermonde_conj":
        H, N, L = sizes["H"], sizes["N2"], sizes["L"]
        log_z = torch.complex(
            -0.05 * torch.rand(H, N, generator=g), 0.3 * torch.randn(H, N, generator=g)
        )
        inputs = [crandn(*lead, H, N), log_z, L]
    else:
        C, M, L = sizes["C"], sizes["M"], sizes["L"]
        radius = 1 + 0.01 * torch.rand(C, L, generator=g)
        z = torch.polar(radius, 2 * math.pi * torch.rand(C, L, generator=g))
        inputs = [0.2 * crandn(*lead, C, M), z]
    return [x.to(device=device, dtype=torch.complex64) if torch.is_tensor(x) else x for x in inputs]


def values_and_grads(fn, inputs, grad_idx, cotangent):
    """fn(*inputs) and the gradients of Re<out, cotangent> w.r.t. the inputs at grad_idx."""
    import torch

    leaves = [x.detach().clone().requires_grad_(i in grad_idx) if torch.is_tensor(x) else x
              for i, x in enumerate(inputs)]  # fmt: skip
    out = fn(*leaves)
    cot = cotangent.to(out.device)
    cot = cot if out.is_complex() else cot.real
    loss = (out * cot.to(out.dtype).conj()).real.sum()
    grads = torch.autograd.grad(loss, [leaves[i] for i in grad_idx])
    return [out.detach(), *[g.detach() for g in grads]]


# ------------------------------------------------------------------- term magnitudes, bounds


def _magnitudes_cauchy(v, z, w, g):
    """A of out, grad_v, grad_w: sum of |terms| (see the module docstring), float64."""
    lead, (H, N) = v.shape[:-2], w.shape
    a = 1 / (z[:, None, None] - w).abs()  # (L, H, N) |1/(z - w)|
    c = 1 / (z[:, None, None] - w.conj()).abs()
    v, g = v.abs().reshape(-1, H, N), g.abs().reshape(-1, H, z.shape[0])  # (R, H, N), (R, H, L)
    out = (v[:, None] * (a + c)).sum(-1).movedim(1, -1)  # (R, H, L)
    grad_v = (g.movedim(-1, 1)[..., None] * (a + c)).sum(1)  # (R, H, N)
    grad_w = (v * (g.movedim(-1, 1)[..., None] * (a**2 + c**2)).sum(1)).sum(0)  # (H, N)
    return out.reshape(*lead, H, -1), grad_v.reshape(*lead, H, N), grad_w


def _magnitudes_vandermonde(c, log_z, L, g):
    import torch

    ell = torch.arange(L, dtype=torch.float64)
    powers = torch.exp(log_z.real[..., None] * ell)  # (H, N, L) |x^l|
    lead, (H, N) = c.shape[:-2], log_z.shape
    c, g = c.abs().reshape(-1, H, N), g.real.abs().reshape(-1, H, L)  # (R, H, N), (R, H, L)
    out = 2 * (c[..., None] * powers).sum(-2)  # (R, H, L)
    grad_c = 2 * (g[:, :, None, :] * powers).sum(-1)  # (R, H, N)
    grad_log_z = 2 * (c * (g[:, :, None, :] * ell * powers).sum(-1)).sum(0)  # (H, N)
    return out.reshape(*lead, H, L), grad_c.reshape(*lead, H, N), grad_log_z


def _magnitudes_markov(h, z, g):
    import torch

    j = torch.arange(1, h.shape[-1] + 1, dtype=torch.float64)
    powers = z.abs()[:, None, :] ** (-j[:, None])  # (C, M, L) |z|^-j
    lead, (C, M), L = h.shape[:-2], h.shape[-2:], z.shape[-1]
    h, g = h.abs().reshape(-1, C, M), g.abs().reshape(-1, C, L)  # (R, C, M), (R, C, L)
    out = (h[..., None] * powers).sum(-2)  # (R, C, L)
    grad_h = (g[:, :, None, :] * powers).sum(-1)  # (R, C, M)
    grad_z = (g * ((j * h)[..., None] * powers).sum(-2)).sum(0) / z.abs()  # (C, L)
    return out.reshape(*lead, C, L), grad_h.reshape(*lead, C, M), grad_z


def _bound_cauchy(lead, sizes) -> list[float]:
    """K of out, grad_v, grad_w. One Cauchy entry a = 1/(z - w): 2 subtractions, 2 squares, an
    addition, a reciprocal (2 ulp on the GPU), a multiply: 8; the pair sum a + c and the product
    with v (2 multiplies, an add): 11 for a term of out and, with g for v, of grad_v; a^2 doubles
    the entry's error and adds 3, then the pair sum, g and v: 8 * 2 + 3 + 1 + 3 + 3 = 26 for
    grad_w. Terms: 2 N2 (out), 2 L' (grad_v), 2 L' R (grad_w)."""
    R, N, L = math.prod(lead), sizes["N2"], sizes["L"]
    return [2 * (11 + 2 * N), 2 * (11 + 2 * L), 2 * (26 + 2 * L * R)]


def _bound_vandermonde(lead, sizes) -> list[float]:
    """K of out, grad_c, grad_log_z. A power x^l = x^l0 x^t: x^t and x^l_first each from
    `_exp_times` (exp and sin/cos at 2 ulp, 4 products and sums: 8), then x^l0 stepped from
    x^l_first by up to s complex multiplies (3 each) with the step x^64 (8), whose error each step
    repeats: 11 s; the product with c (3) and the dot over the tile (2): 21 + 11 s. grad_c adds
    the multiply by g (1), grad_log_z the factor l (l0 I + J: 4) and c (3). Terms: N2 (out), L
    (grad_c), L + R (grad_log_z)."""
    R, N, L = math.prod(lead), sizes["N2"], sizes["L"]
    steps = min(16, math.ceil(L / 64)) - 1
    k = 21 + 11 * steps
    return [2 * (k + N), 2 * (k + 1 + L), 2 * (k + 7 + L + R)]


def _bound_markov(lead, sizes) -> list[float]:
    """K of out, grad_h, grad_z. y^j = exp(-j u), u = log z taken by torch in float32 (error
    <= u |log z| + u <= 4.2 u, |log z| <= pi + 0.01 here) and y = exp(-u) (exp, cos, sin and two
    products: 5 u): the relative error of y^j is j (4.2 + 5) u, plus the binary powering's
    multiplies (2 per bit, 3 u each): 9.2 M + 6 BITS; the coefficient product and sum (3).
    grad_z adds the factor j (1) and the division by conj(z) (torch, 3). Terms: M (out),
    L' (grad_h), R M (grad_z)."""
    R, M, L = math.prod(lead), sizes["M"], sizes["L"]
    k = 9.2 * M + 6 * M.bit_length() + 3
    return [2 * (k + M), 2 * (k + 1 + L), 2 * (k + 4 + R * M)]


MAGNITUDES = {
    "cauchy_conj": (_magnitudes_cauchy, _bound_cauchy),
    "vandermonde_conj": (_magnitudes_vandermonde, _bound_vandermonde),
    "markov_response": (_magnitudes_markov, _bound_markov),
}


# ---------------------------------------------------------------------------------- checks


def _to64(x):
    import torch

    if not torch.is_tensor(x):
        return x
    return x.detach().cpu().to(torch.complex128 if x.is_complex() else torch.float64)


def compare_kernel(fn, kernel: str, lead: tuple, sizes: dict, device: str, case: int) -> list:
    """Records of fn (a fused function or `ops.<kernel>`) against the float64 naive sums."""
    import torch

    from models.kernels import naive

    inputs = make_inputs(kernel, lead, sizes, device, seed=case)
    exact = values_and_grads(
        getattr(naive, kernel),
        [_to64(x) for x in inputs],
        GRAD_INPUTS[kernel],
        _cot(kernel, inputs),
    )
    start = time.process_time()
    fast = values_and_grads(fn, inputs, GRAD_INPUTS[kernel], _cot(kernel, inputs))
    seconds = time.process_time() - start
    magnitudes, bound = MAGNITUDES[kernel]
    amounts = magnitudes(*[_to64(x) for x in inputs], _cot(kernel, inputs))
    records = []
    for quantity, f, e, a, k in zip(
        QUANTITIES[kernel], fast, exact, amounts, bound(lead, sizes), strict=True
    ):
        assert f.shape == e.shape, (quantity, f.shape, e.shape)
        err = (_to64(f) - e).abs()
        units = (err / (U32 * a.clamp_min(torch.finfo(torch.float64).tiny))).max().item()
        records.append({
            "group": "kernel", "kernel": kernel, "case": case, "lead": list(lead), **sizes,
            "quantity": quantity, "max_abs_err": err.max().item(),
            "max_abs_exact": e.abs().max().item(), "err_units": units, "bound_units": k,
            "ok": bool(units <= k), "cpu_s": seconds,
        })  # fmt: skip
    return records


def _cot(kernel: str, inputs: list):
    """A fixed random cotangent of the output's shape, complex128 (the real part for a real
    output)."""
    import torch

    lead = inputs[0].shape[:-1]
    L = inputs[2] if kernel == "vandermonde_conj" else inputs[1].shape[-1]
    g = torch.Generator().manual_seed(1234)
    shape = (*lead, L)
    return torch.complex(
        torch.randn(shape, generator=g, dtype=torch.float64),
        torch.randn(shape, generator=g, dtype=torch.float64),
    )


def mutant_module(module: str, function: str, old: str, new: str, count: int, folder: Path):
    """A copy of `models/kernels/<module>.py` with `old` replaced by `new` inside `function`
    (exactly `count` times, else ValueError: the kernel changed and the mutation needs
    updating), imported from `folder`."""
    path = ROOT / "models" / "kernels" / f"{module}.py"
    source = path.read_text()
    tree = ast.parse(source)
    nodes = [n for n in ast.walk(tree) if isinstance(n, ast.FunctionDef) and n.name == function]
    if len(nodes) != 1:
        raise ValueError(f"{path.name}: no single function {function!r} to mutate")
    segment = ast.get_source_segment(source, nodes[0])
    if segment.count(old) != count:
        raise ValueError(f"{path.name}:{function}: {old!r} found {segment.count(old)} times, "
                         f"expected {count}; update the mutation")  # fmt: skip
    mutated = source.replace(segment, segment.replace(old, new))
    target = folder / f"{module}_mutant.py"
    target.write_text(mutated)
    spec = importlib.util.spec_from_file_location(f"{module}_mutant", target)
    loaded = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(loaded)
    return loaded


def check_kernels(device: str) -> list:
    from models.kernels import ops

    records = []
    with ops.fast_paths(True):
        for case, (kernel, lead, sizes) in enumerate(CASES):
            records += compare_kernel(getattr(ops, kernel), kernel, lead, sizes, device, case)
    return records


def check_mutations(device: str) -> list:
    records = []
    with tempfile.TemporaryDirectory() as folder:
        for module, function, old, new, count, case, quantity in MUTATIONS:
            kernel, lead, sizes = CASES[case]
            broken = mutant_module(module, function, old, new, count, Path(folder))
            for record in compare_kernel(
                getattr(broken, kernel), kernel, lead, sizes, device, case
            ):
                if record["quantity"] == quantity:
                    records.append({**record, "group": "mutation", "mutation": f"{function}: "
                                    f"{old} -> {new}"})  # fmt: skip
    return records


def _graph_names(tensor) -> set[str]:
    """Names of every autograd node behind `tensor`."""
    seen, todo, names = set(), [tensor.grad_fn], set()
    while todo:
        node = todo.pop()
        if node is None or node in seen:
            continue
        seen.add(node)
        names.add(type(node).__name__)
        todo += [child for child, _ in node.next_functions]
    return names


def _layer_run(layer, x, out_grad) -> tuple[dict, set[str]]:
    """{'output', 'input', parameter name: gradient} of one forward/backward, and graph nodes."""
    x = x.detach().clone().requires_grad_(True)
    y = layer(x)
    y.backward(out_grad.to(y.dtype))
    values = {"output": y.detach(), "input": x.grad}
    values |= {name: p.grad for name, p in layer.named_parameters() if p.requires_grad}
    return values, _graph_names(y)


def check_layers(device: str) -> list:
    import torch

    import models
    from models.kernels import ops

    records = []
    for name, options in LAYERS:
        torch.manual_seed(0)
        base = models.build_layer(name, 2, 8, **options).eval()  # H=2, N=8 (N2=4)
        x = torch.randn(2, 2, 50)  # (B, H, L): 50 points, not a multiple of any block
        out_grad = torch.randn(2, 2, 50)
        runs = {}
        for label, fast, dtype in (("fast", True, None), ("cpu", False, None),
                                   ("f64", False, torch.float64)):  # fmt: skip
            layer = copy.deepcopy(base).to(device=device, dtype=dtype)
            with ops.fast_paths(fast):
                start = time.process_time()
                runs[label] = _layer_run(layer, x.to(device, dtype), out_grad.to(device, dtype))
                runs[label] += (time.process_time() - start,)
        (fast, fast_nodes, seconds), (cpu, cpu_nodes, _), (f64, _, _) = (
            runs["fast"], runs["cpu"], runs["f64"],
        )  # fmt: skip
        assert fast.keys() == cpu.keys() == f64.keys()
        for key, ref in f64.items():
            ref = ref.double().cpu()
            err_fast = (fast[key].double().cpu() - ref).norm().item()
            err_cpu = (cpu[key].double().cpu() - ref).norm().item()
            allowed = 8 * err_cpu + 16 * EPS32 * ref.norm().item()
            diff = (fast[key].double() - cpu[key].double()).norm().item()
            records.append({
                "group": "layer", "layer": name, **options, "quantity": key,
                "rel_fast_vs_cpu": diff / max(cpu[key].double().norm().item(), 1e-300),
                "rel_fast_vs_f64": err_fast / max(ref.norm().item(), 1e-300),
                "rel_cpu_vs_f64": err_cpu / max(ref.norm().item(), 1e-300),
                "ok": bool(diff <= allowed),
                "fused": FUSED_NODES[name] in fast_nodes and FUSED_NODES[name] not in cpu_nodes,
                "cpu_s": seconds,
            })  # fmt: skip
    return records


def main(argv=None) -> int:
    args = parse_args(argv)
    if args.device == "cpu":
        os.environ["TRITON_INTERPRET"] = "1"  # before anything imports Triton
    sys.path.insert(0, str(ROOT))
    warnings.filterwarnings("ignore", message=".*encountered in.*")  # masked lanes: 0 * inf
    import torch

    torch.set_num_threads(1)
    from models.kernels import ops

    if not ops.HAVE_TRITON:
        print("triton is not installed", file=sys.stderr)
        return 3
    checks = {"kernel": check_kernels, "mutation": check_mutations, "layer": check_layers}
    records = []
    for group in args.only:
        start = time.perf_counter()
        records += checks[group](args.device)
        print(f"{group}: {time.perf_counter() - start:.1f} s", file=sys.stderr)
    for r in records:
        print(json.dumps(r))
    if args.json:
        args.json.write_text(json.dumps(records, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
