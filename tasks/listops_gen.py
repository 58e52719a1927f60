"""ListOps generated offline with the Long Range Arena rules, read back by the `listops` loader.

The rules follow google-research/long-range-arena `lra_benchmarks/data/listops.py`:
- a node at depth d < max_depth is an operator with probability `operator_p` (LRA's VALUE_P,
  0.25), else a digit 0..9 drawn uniformly; a node at depth max_depth is always a digit (the
  root has depth 1);
- an operator takes a uniform number of arguments in [2, max_args], each a node at depth d + 1,
  and is one of MAX, MIN, MED (the median, truncated to an integer: int(np.median)), SM (sum
  modulo 10), drawn uniformly;
- the length of an expression counts its operators, digits and closing brackets (the tokens the
  loader keeps once parentheses are dropped), and a tree is kept only when
  min_length < length < max_length (strict, as LRA), by rejection; duplicates are dropped;
- the Source text nests every argument in parentheses as LRA's `to_string` does, e.g.
  `( ( ( [MAX 2 ) 9 ) ] )`, and Target is the value of the expression;
- the n_train + n_val + n_test distinct expressions are drawn in order from one generator seeded
  with `seed` and split in that order, so the splits are disjoint.
Label distribution and length statistics (`expression_statistics`) are logged per split.
The LRA release used 96000 / 2000 / 2000 examples, max_depth 10, max_args 10, lengths 500..2000.
"""

import csv
import logging
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from tqdm import tqdm

from common import UserError
from tasks.base import TASKS, TaskData
from tasks.generated import generated_release
from tasks.listops import load_listops

log = logging.getLogger(__name__)

OPERATORS = ("[MAX", "[MIN", "[MED", "[SM")


@dataclass(frozen=True)
class Expression:
    """One generated expression: its Source text, its value (the label) and its token length."""

    source: str
    value: int
    length: int


def apply_operator(op: str, args: list[int]) -> int:
    """The value of `op` on its argument values (LRA's `to_value`)."""
    if op == "[MAX":
        return max(args)
    if op == "[MIN":
        return min(args)
    if op == "[MED":
        return int(np.median(args))
    return sum(args) % 10


def random_expression(
    rng: np.random.Generator, depth: int, max_depth: int, max_args: int, operator_p: float
) -> Expression:
    """Draw one (sub)expression rooted at `depth` with the LRA rules (see the module docstring)."""
    if depth >= max_depth or rng.random() >= operator_p:
        digit = int(rng.integers(10))
        return Expression(str(digit), digit, 1)
    n_args = int(rng.integers(2, max_args + 1))
    args = [
        random_expression(rng, depth + 1, max_depth, max_args, operator_p) for _ in range(n_args)
    ]
    op = OPERATORS[int(rng.integers(len(OPERATORS)))]
    source = "( " * (n_args + 1) + op + " " + " ) ".join(arg.source for arg in args) + " ) ] )"
    value = apply_operator(op, [arg.value for arg in args])
    return Expression(source, value, 2 + sum(arg.length for arg in args))


def longest_expression(max_depth: int, max_args: int) -> int:
    """The most tokens an expression can have: l(d) = 2 + max_args l(d + 1), l(max_depth) = 1."""
    length = 1
    for _ in range(max_depth - 1):
        length = 2 + max_args * length
    return length


def generate_expressions(
    rng: np.random.Generator,
    n: int,
    min_length: int,
    max_length: int,
    max_depth: int,
    max_args: int,
    operator_p: float,
) -> list[Expression]:
    """`n` distinct expressions with min_length < length < max_length, drawn by rejection."""
    kept: dict[str, Expression] = {}
    with tqdm(total=n, desc="generating ListOps", unit="expr", leave=False) as progress:
        while len(kept) < n:
            expression = random_expression(rng, 1, max_depth, max_args, operator_p)
            if min_length < expression.length < max_length and expression.source not in kept:
                kept[expression.source] = expression
                progress.update()
    return list(kept.values())


def expression_statistics(expressions: list[Expression]) -> dict[str, object]:
    """Label distribution (fraction per class 0..9) and token-length statistics."""
    lengths = np.array([e.length for e in expressions])
    counts = Counter(e.value for e in expressions)
    return {
        "n": len(expressions),
        "label_fraction": {c: counts.get(c, 0) / len(expressions) for c in range(10)},
        "length_min": int(lengths.min()),
        "length_mean": float(lengths.mean()),
        "length_max": int(lengths.max()),
    }


def write_release(root: Path, splits: dict[str, list[Expression]]) -> None:
    """Write `root/basic_{train,val,test}.tsv` with the LRA header `Source<TAB>Target`."""
    root.mkdir(parents=True, exist_ok=True)
    for split, expressions in splits.items():
        with open(root / f"basic_{split}.tsv", "w", newline="") as f:
            writer = csv.writer(f, delimiter="\t")
            writer.writerow(["Source", "Target"])
            writer.writerows([e.source, e.value] for e in expressions)


@TASKS.register("listops_gen")
def listops_gen(
    cache_dir: str | None = None,
    seed: int = 0,
    n_train: int = 1000,
    n_val: int = 200,
    n_test: int = 200,
    min_length: int = 100,
    max_length: int = 500,
    max_depth: int = 10,
    max_args: int = 10,
    operator_p: float = 0.25,
    seq_len: int = 512,
    append_eos: bool = True,
    pad_to: str = "batch",
) -> TaskData:
    """Generated ListOps (module docstring), written as `basic_*.tsv` and read by `listops`.

    The n_train + n_val + n_test distinct expressions are drawn from one generator seeded with
    `seed` and split in that order. Items as `listops`: x (seq_len,) int64, y int64 in [0, 10);
    batches padded as `pad_to` says (see `listops`).
    """
    if seq_len < max_length - 1 + int(append_eos):
        raise UserError(
            f"task.seq_len={seq_len} would truncate expressions of up to {max_length - 1} tokens"
            f"{' plus <eos>' if append_eos else ''}; set task.seq_len >= "
            f"{max_length - 1 + int(append_eos)} or lower task.max_length"
        )
    sizes = {"train": n_train, "val": n_val, "test": n_test}
    longest = longest_expression(max_depth, max_args)
    if min_length + 1 >= min(max_length, longest + 1):
        raise UserError(
            f"task.min_length={min_length}, task.max_length={max_length}: no expression has a "
            f"length strictly between them (the longest with task.max_depth={max_depth}, "
            f"task.max_args={max_args} has {longest} tokens); use e.g. the LRA values "
            "min_length 500, max_length 2000, max_depth 10, max_args 10"
        )
    for split, n in sizes.items():
        if n < 1:
            raise UserError(f"task.n_{split}={n}; give at least 1 expression per split")
    config = {
        "seed": seed,
        **{f"n_{split}": n for split, n in sizes.items()},
        "min_length": min_length,
        "max_length": max_length,
        "max_depth": max_depth,
        "max_args": max_args,
        "operator_p": operator_p,
    }

    def write(root: Path) -> None:
        rng = np.random.default_rng(seed)
        rule = (min_length, max_length, max_depth, max_args, operator_p)
        expressions = generate_expressions(rng, sum(sizes.values()), *rule)
        splits, start = {}, 0
        for split, n in sizes.items():
            splits[split], start = expressions[start : start + n], start + n
            log.info("listops_gen %s: %s", split, expression_statistics(splits[split]))
        write_release(root, splits)

    root = generated_release("listops_gen", config, write, cache_dir)
    return load_listops(
        root,
        name="listops_gen",
        seq_len=seq_len,
        append_eos=append_eos,
        cache_dir=cache_dir,
        pad_to=pad_to,
    )
