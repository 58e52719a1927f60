"""AdamW parameter groups: ordinary weights, no-decay parameters, and the SSM's own settings.

As state-spaces/s4 trains its models (`src/utils/optim_groups.py` and the S4 example):
- `default`: ordinary parameters, with the optimizer's learning rate and weight decay;
- `no_decay`: biases and the parameters of normalization and embedding modules, with the
  optimizer's learning rate and weight decay 0;
- one group per distinct `param._optim` setting that the SSM layers attach to their parameters
  (`{"lr": ..., "weight_decay": 0.0}`); a key missing from the setting takes the default. The
  group is named `ssm` when there is one such setting, else `ssm_<key><value>_...`.
Frozen parameters (requires_grad False) are in no group; `describe_groups` counts them.
"""

import logging
from typing import Any

from torch import nn

logger = logging.getLogger(__name__)

NO_DECAY_MODULES = (
    nn.Embedding,
    nn.BatchNorm1d,
    nn.BatchNorm2d,
    nn.BatchNorm3d,
    nn.SyncBatchNorm,
    nn.GroupNorm,
    nn.InstanceNorm1d,
    nn.InstanceNorm2d,
    nn.InstanceNorm3d,
    nn.LayerNorm,
    nn.LocalResponseNorm,
)


def _no_decay_names(module: nn.Module) -> set[str]:
    """Full names of the biases and of the parameters owned by norm and embedding modules."""
    names = set()
    for module_name, sub in module.named_modules():
        for param_name, _ in sub.named_parameters(recurse=False):
            full = f"{module_name}.{param_name}" if module_name else param_name
            if param_name.endswith("bias") or isinstance(sub, NO_DECAY_MODULES):
                names.add(full)
    return names


def _group_name(setting: tuple[tuple[str, Any], ...], n_settings: int) -> str:
    if n_settings == 1:
        return "ssm"
    return "ssm_" + "_".join(f"{key}{value}" for key, value in setting)


def param_groups(module: nn.Module, lr: float, weight_decay: float) -> list[dict[str, Any]]:
    """AdamW parameter groups of `module`; each dict has `name`, `params`, `lr`, `weight_decay`.

    Every trainable parameter lands in exactly one group; empty groups are left out. Groups come
    in a fixed order: `default`, `no_decay`, then the SSM settings sorted.
    """
    no_decay = _no_decay_names(module)
    default: list[nn.Parameter] = []
    plain: list[nn.Parameter] = []
    special: dict[tuple[tuple[str, Any], ...], list[nn.Parameter]] = {}
    n_frozen = 0
    for name, param in module.named_parameters():
        if not param.requires_grad:
            n_frozen += 1
            continue
        setting = getattr(param, "_optim", None)
        if setting is not None:
            special.setdefault(tuple(sorted(setting.items())), []).append(param)
        elif name in no_decay:
            plain.append(param)
        else:
            default.append(param)

    groups = [
        {"name": "default", "params": default, "lr": lr, "weight_decay": weight_decay},
        {"name": "no_decay", "params": plain, "lr": lr, "weight_decay": 0.0},
    ]
    for setting in sorted(special):
        hyper = {"lr": lr, "weight_decay": weight_decay, **dict(setting)}
        name = _group_name(setting, len(special))
        groups.append({"name": name, "params": special[setting], **hyper})
    if n_frozen:
        logger.info("%d frozen parameter tensors are left out of the optimizer", n_frozen)
    return [group for group in groups if group["params"]]


def describe_groups(module: nn.Module, groups: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One row per group (name, tensors, elements, trainable, lr, weight_decay) plus `frozen`.

    The `frozen` row counts the parameters with requires_grad False (lr and weight_decay None).
    Raises ValueError when the groups do not hold every trainable parameter exactly once.
    """
    grouped = [id(p) for group in groups for p in group["params"]]
    trainable = {id(p) for p in module.parameters() if p.requires_grad}
    if len(grouped) != len(set(grouped)) or set(grouped) != trainable:
        raise ValueError("parameter groups must hold every trainable parameter exactly once")

    rows = []
    for group in groups:
        params = group["params"]
        rows.append(
            {
                "name": group["name"],
                "tensors": len(params),
                "elements": sum(p.numel() for p in params),
                "trainable": sum(p.numel() for p in params if p.requires_grad),
                "lr": group["lr"],
                "weight_decay": group["weight_decay"],
            }
        )
    frozen = [p for p in module.parameters() if not p.requires_grad]
    rows.append(
        {
            "name": "frozen",
            "tensors": len(frozen),
            "elements": sum(p.numel() for p in frozen),
            "trainable": 0,
            "lr": None,
            "weight_decay": None,
        }
    )
    return rows
