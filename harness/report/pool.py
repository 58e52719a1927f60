"""Which runs one table cell may pool: runs of the same experiment that differ in the seed alone.

Two runs are the same experiment when every param they logged (the flattened resolved config,
`harness.run.config.flatten`) agrees, except
- the seed (`seed`; `task.seed`, the data generation seed, is part of the experiment),
- the table's grouping keys (a tag such as `model` stands for its param `model.name`),
- the keys pooled on purpose (`--pool KEY`: KEY and every key under it, so `--pool model` pools
  `model.name` and the `model.layer.*` options that come with each model),
- the operational keys (`harness.run.config.is_operational`: paths, tracking, progress bars, ...),
- `n_params`, which the config determines.
A key one run logs and another does not counts as a difference (`(unset)`). When a key's
difference follows from another one (`model.layer.disc` is only set for S4D models), only the
root (`model`) is named.

`refuse_mixed` stops a table whose cells mix experiments, `variant_labels` splits them instead.
"""

from dataclasses import dataclass

import numpy as np
import pandas as pd

from common import UserError
from harness.run.config import is_operational

SEED_KEY = "seed"
DERIVED_PARAMS = ("n_params",)
TAG_PARAMS = {"model": "model.name", "task": "task.name"}
"""Tags that name a config value: the tag `model` is the param `model.name`."""
UNSET = "(unset)"


def experiment_keys(runs: pd.DataFrame) -> list[str]:
    """The params (without the `params.` prefix) that define what a run computes."""
    names = (c.removeprefix("params.") for c in runs.columns if c.startswith("params."))
    return sorted(
        k for k in names if k not in (SEED_KEY, *DERIVED_PARAMS) and not is_operational(k)
    )


def display_key(param: str) -> str:
    """The name a user types for a param: `model.name` -> `model`, others as they are."""
    return next((tag for tag, p in TAG_PARAMS.items() if p == param), param)


def _under(key: str, roots) -> bool:
    return any(key == root or key.startswith(root + ".") for root in roots)


def compared_keys(runs: pd.DataFrame, group_keys: list[str], pool: list[str]) -> list[str]:
    """The experiment keys whose values must agree inside one cell."""
    grouped = {TAG_PARAMS.get(k, k) for k in group_keys}
    pooled = {*pool, *(TAG_PARAMS[k] for k in pool if k in TAG_PARAMS)}
    return [k for k in experiment_keys(runs) if k not in grouped and not _under(k, pooled)]


def differences(runs: pd.DataFrame, keys: list[str]) -> dict[str, tuple[str, ...]]:
    """Key -> its sorted distinct values, for the `keys` on which `runs` disagree."""
    found = {}
    for key in keys:
        values = set(runs[f"params.{key}"].astype("string").fillna(UNSET))
        if len(values) > 1:
            found[key] = tuple(sorted(values))
    roots = [p.rsplit(".", 1)[0] for p in TAG_PARAMS.values() if p in found]
    return {k: v for k, v in found.items() if k in TAG_PARAMS.values() or not _under(k, roots)}


@dataclass(frozen=True)
class MixedCell:
    """A table cell whose runs are not one experiment: its labels and the keys that differ."""

    cell: dict[str, str]
    differing: dict[str, tuple[str, ...]]

    def describe(self) -> str:
        """`cell (init=legs, task=adding) mixes model=s4_legs|s4d_legs`."""
        cell = ", ".join(f"{k}={v}" for k, v in self.cell.items())
        mix = ", ".join(f"{display_key(k)}={'|'.join(v)}" for k, v in self.differing.items())
        return f"cell ({cell}) mixes {mix}"


def mixed_cells(
    runs: pd.DataFrame, labels: pd.DataFrame, values: pd.Series, pool: list[str]
) -> list[MixedCell]:
    """The cells (combinations of the `labels` columns, one column per grouping key, indexed like
    `runs`) whose runs with a finite value differ in a compared key (`compared_keys`)."""
    keys = list(labels.columns)
    compared = compared_keys(runs, keys, pool)
    cells = labels[np.isfinite(values.astype(float))]
    mixed = []
    for group, part in cells.groupby(keys, dropna=False, sort=True):
        group = group if isinstance(group, tuple) else (group,)
        differing = differences(runs.loc[part.index], compared)
        if differing:
            mixed.append(MixedCell(dict(zip(keys, map(str, group), strict=True)), differing))
    return mixed


def refuse_mixed(mixed: list[MixedCell]) -> None:
    """`UserError` naming the first mixed cell and the keys that would separate (or pool) all."""
    if not mixed:
        return
    names = ",".join(sorted({display_key(k) for m in mixed for k in m.differing}))
    more = f" (and {len(mixed) - 1} more cells)" if len(mixed) > 1 else ""
    raise UserError(
        f"{mixed[0].describe()}{more}; add {names} to --group-by or pass --pool {names}"
    )


def variant_labels(mixed: list[MixedCell], runs: pd.DataFrame, labels: pd.DataFrame) -> pd.Series:
    """Per run, `key=value, ...` of the keys its cell's runs differ in ('' in a cell that is one
    experiment), so that grouping by the labels and the variant splits every mixed cell."""
    variant = pd.Series("", index=runs.index, dtype=object)
    for cell in mixed:
        inside = np.logical_and.reduce([labels[k].astype(str) == v for k, v in cell.cell.items()])
        variant[inside] = [
            ", ".join(
                f"{display_key(k)}={v if isinstance(v, str) else UNSET}"
                for k, v in zip(cell.differing, values, strict=True)
            )
            for values in runs.loc[inside, [f"params.{k}" for k in cell.differing]].itertuples(
                index=False
            )
        ]
    return variant
