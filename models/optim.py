"""AdamW parameter groups: ordinary weights, no-decay parameters, and the SSM's own settings.

- `default`: ordinary parameters, with the optimizer's learning rate and weight decay;
- `no_decay`: biases and the parameters of normalization and embedding modules, with the
  optimizer's learning rate and weight decay 0, searched in the scope `no_decay` names:
    backbone  the residual stack and its final norm only (`module.backbone_modules`, the whole
              module when it has none): state-spaces/s4 `add_optimizer_hooks(self.model)` in
              train.py, so the encoder (embedding weight, linear bias) and the decoder bias keep
              the weight decay;
    all       every module (biases, norms and embeddings anywhere);
    none      nothing: AnnanYu/HOPE-SSM noisycifar_HOPE.py decays every bias and LayerNorm;
- one group per distinct `param._optim` setting that the SSM layers attach to their parameters
  (`{"lr": ..., "weight_decay": 0.0}`, see `models.kernels.params`); a key missing from the
  setting takes the default. The group is named `ssm` when there is one such setting, else
  `ssm_<key><value>_...`.
Frozen parameters (requires_grad False) are in no group; `describe_groups` counts them.
"""

import logging
from typing import Any

from torch import nn

from common import UserError

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


NO_DECAY_SCOPES = ("backbone", "all", "none")


def _no_decay_params(module: nn.Module, scope: str) -> set[int]:
    """Ids of the biases and of the parameters of norm and embedding modules inside `scope`."""
    if scope not in NO_DECAY_SCOPES:
        raise UserError(
            f"optimizer.no_decay={scope!r} is unknown; use one of {', '.join(NO_DECAY_SCOPES)}"
        )
    if scope == "none":
        return set()
    roots = getattr(module, "backbone_modules", [module]) if scope == "backbone" else [module]
    found = set()
    for root in roots:
        for sub in root.modules():
            for param_name, param in sub.named_parameters(recurse=False):
                if param_name.endswith("bias") or isinstance(sub, NO_DECAY_MODULES):
                    found.add(id(param))
    return found


def _group_name(setting: tuple[tuple[str, Any], ...], n_settings: int) -> str:
    if n_settings == 1:
        return "ssm"
    return "ssm_" + "_".join(f"{key}{value}" for key, value in setting)


def param_groups(
    module: nn.Module, lr: float, weight_decay: float, no_decay: str = "backbone"
) -> list[dict[str, Any]]:
    """AdamW parameter groups of `module`; each dict has `name`, `params`, `lr`, `weight_decay`.

    no_decay: where biases and norms lose their weight decay (see the module docstring).
    Every trainable parameter lands in exactly one group; empty groups are left out. Groups come
    in a fixed order: `default`, `no_decay`, then the SSM settings sorted.
    """
    exempt = _no_decay_params(module, no_decay)
    default: list[nn.Parameter] = []
    plain: list[nn.Parameter] = []
    special: dict[tuple[tuple[str, Any], ...], list[nn.Parameter]] = {}
    n_frozen = 0
    for param in module.parameters():
        if not param.requires_grad:
            n_frozen += 1
            continue
        setting = getattr(param, "_optim", None)
        if setting is not None:
            special.setdefault(tuple(sorted(setting.items())), []).append(param)
        elif id(param) in exempt:
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
