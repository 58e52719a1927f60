"""Parameter groups: which parameter gets which learning rate and weight decay, checked both
by membership and by what one AdamW step actually does to each parameter."""

import pytest
import torch
from torch import nn

from models.optim import describe_groups, param_groups

LR, WD = 0.1, 0.5


class Toy(nn.Module):
    """Every kind of parameter the optimizer must sort: weights, biases, norm and embedding
    parameters, two SSM settings, one frozen tensor."""

    def __init__(self):
        super().__init__()
        self.embed = nn.Embedding(7, 4)
        self.proj = nn.Linear(4, 4)
        self.layer_norm = nn.LayerNorm(4)
        self.batch_norm = nn.BatchNorm1d(4)
        self.skip = nn.Parameter(torch.ones(4))  # an ordinary weight without a module
        self.A = nn.Parameter(torch.ones(4, 2))
        self.A._optim = {"lr": 1e-3, "weight_decay": 0.0}
        self.B = nn.Parameter(torch.ones(4, 2))
        self.B._optim = {"weight_decay": 0.0, "lr": 1e-3}  # same setting, other key order
        self.dt = nn.Parameter(torch.ones(4))
        self.dt._optim = {"lr": 2e-3, "weight_decay": 0.0}
        self.frozen = nn.Parameter(torch.ones(3, 3), requires_grad=False)


def by_name(groups):
    return {group["name"]: group for group in groups}


def ids(params):
    return {id(p) for p in params}


def test_groups_sort_every_parameter():
    toy = Toy()
    groups = by_name(param_groups(toy, LR, WD))
    assert set(groups) == {
        "default",
        "no_decay",
        "ssm_lr0.001_weight_decay0.0",
        "ssm_lr0.002_weight_decay0.0",
    }
    assert ids(groups["default"]["params"]) == ids([toy.proj.weight, toy.skip])
    no_decay = [
        toy.embed.weight,
        toy.proj.bias,
        *toy.layer_norm.parameters(),
        *toy.batch_norm.parameters(),
    ]
    assert ids(groups["no_decay"]["params"]) == ids(no_decay)
    assert ids(groups["ssm_lr0.001_weight_decay0.0"]["params"]) == ids([toy.A, toy.B])
    assert ids(groups["ssm_lr0.002_weight_decay0.0"]["params"]) == ids([toy.dt])
    assert (groups["default"]["lr"], groups["default"]["weight_decay"]) == (LR, WD)
    assert (groups["no_decay"]["lr"], groups["no_decay"]["weight_decay"]) == (LR, 0.0)
    assert groups["ssm_lr0.002_weight_decay0.0"]["lr"] == 2e-3
    all_grouped = [p for group in groups.values() for p in group["params"]]
    assert id(toy.frozen) not in ids(all_grouped)
    assert len(all_grouped) == len(ids(all_grouped))


def test_single_ssm_setting_is_named_ssm_and_missing_keys_take_defaults():
    module = nn.Linear(3, 3)
    module.weight._optim = {"lr": 1e-3}
    groups = by_name(param_groups(module, LR, WD))
    assert set(groups) == {"ssm", "no_decay"}
    assert (groups["ssm"]["lr"], groups["ssm"]["weight_decay"]) == (1e-3, WD)


def test_one_adamw_step_applies_each_groups_settings():
    """With zero gradients AdamW's update is pure decoupled weight decay: p *= 1 - lr * wd.
    So default weights shrink by exactly that factor and every other group stays put."""
    toy = Toy()
    for p in toy.parameters():
        with torch.no_grad():
            p.fill_(2.0)
        if p.requires_grad:
            p.grad = torch.zeros_like(p)
    before = {name: p.detach().clone() for name, p in toy.named_parameters()}
    optimizer = torch.optim.AdamW(param_groups(toy, LR, WD))
    optimizer.step()
    decayed = {"proj.weight", "skip"}
    for name, p in toy.named_parameters():
        expected = before[name] * (1 - LR * WD) if name in decayed else before[name]
        torch.testing.assert_close(p.detach(), expected, rtol=0, atol=0, msg=name)


def test_describe_groups_counts_tensors_elements_and_frozen():
    toy = Toy()
    groups = param_groups(toy, LR, WD)
    rows = {row["name"]: row for row in describe_groups(toy, groups)}
    assert rows["default"] == {
        "name": "default",
        "tensors": 2,
        "elements": 16 + 4,
        "trainable": 20,
        "lr": LR,
        "weight_decay": WD,
    }
    assert rows["no_decay"]["tensors"] == 6
    assert rows["no_decay"]["elements"] == 28 + 4 + 8 + 8
    assert rows["ssm_lr0.001_weight_decay0.0"]["elements"] == 16
    assert rows["frozen"] == {
        "name": "frozen",
        "tensors": 1,
        "elements": 9,
        "trainable": 0,
        "lr": None,
        "weight_decay": None,
    }
    total = sum(row["elements"] for row in rows.values())
    assert total == sum(p.numel() for p in toy.parameters())


def test_describe_groups_rejects_groups_that_miss_a_parameter():
    toy = Toy()
    groups = param_groups(toy, LR, WD)
    with pytest.raises(ValueError, match="exactly once"):
        describe_groups(toy, groups[1:])
    with pytest.raises(ValueError, match="exactly once"):
        describe_groups(toy, [*groups, groups[0]])
