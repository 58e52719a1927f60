"""Parameter groups: which parameter gets which learning rate and weight decay, checked both
by membership and by what one AdamW step actually does to each parameter."""

import re

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


# --- The published recipes' groups against the reference configs ---------------------------
#
# parameter -> (lr, weight decay) as state-spaces/s4 (e757cef) trains an S4 model from its LRA
# configs, worked out by hand here: train.py configure_optimizers puts every parameter without
# `_optim` into the optimizer's (lr, weight_decay), adds one group per distinct `_optim` dict
# on top of the optimizer's settings, and `add_optimizer_hooks(self.model)` first gives every
# bias and norm parameter of the backbone (self.model; not the encoder or decoder) `_optim =
# {"weight_decay": 0.0}`. Kernel.register (src/models/sequence/kernels/kernel.py) tags dt, A, B
# (and P, with A's settings) with {"lr": lr[name], "weight_decay": 0.0}, dropping a None lr, and
# C with {"lr": lr["C"]} (wd None): a plain-number `layer.lr` is every name's lr, C's too; the
# dict `lr: {dt: null, A: 0.001, B: 0.001}` of s4-listops/imdb/aan leaves dt and C without lr.
# D and the GLU projection weight are untagged.

DICT_LR = {  # s4-listops.yaml, s4-imdb.yaml, s4-aan.yaml: optimizer lr 0.01, wd 0.05
    r"^encoder\.": (0.01, 0.05),
    r"^head\.": (0.01, 0.05),
    r"\.output_linear\.weight$": (0.01, 0.05),
    r"\.output_linear\.bias$": (0.01, 0.0),
    r"\.layer\.D$": (0.01, 0.05),
    r"norm\.norm\.(weight|bias)$": (0.01, 0.0),
    r"\.ssm\.log_dt$": (0.01, 0.0),
    r"\.ssm\.(log_A_real|A_imag|B|P)$": (0.001, 0.0),
    r"\.ssm\.C$": (0.01, 0.05),
}


def number_lr(base: float) -> dict[str, tuple[float, float]]:
    """s4-cifar/pathfinder/pathx.yaml: `layer.lr: 0.001`, optimizer lr `base`, wd 0.05."""
    return {
        r"^encoder\.": (base, 0.05),
        r"^head\.": (base, 0.05),
        r"\.output_linear\.weight$": (base, 0.05),
        r"\.output_linear\.bias$": (base, 0.0),
        r"\.layer\.D$": (base, 0.05),
        r"norm\.norm\.(weight|bias)$": (base, 0.0),
        r"\.ssm\.log_dt$": (0.001, 0.0),
        r"\.ssm\.(log_A_real|A_imag|B|P)$": (0.001, 0.0),
        r"\.ssm\.C$": (0.001, 0.05),
    }


REFERENCE_GROUPS = {
    "lra_listops": DICT_LR,
    "lra_text": DICT_LR,
    "lra_retrieval": DICT_LR,
    "lra_image": number_lr(0.01),
    "lra_pathfinder": number_lr(0.004),
    "lra_pathx": number_lr(0.001),
}


def recipe_model_and_optimizer(experiment: str, model: str):
    """The recipe's model (narrowed to width 8, 2 blocks: groups do not depend on size) and the
    AdamW the trainer builds for it."""
    from hydra import compose, initialize_config_dir

    import models
    from harness.layout import PROJECT_ROOT
    from harness.run.config import model_args
    from harness.run.train import build_optimizer
    from tasks import TaskInfo

    with initialize_config_dir(str(PROJECT_ROOT / "configs"), version_base="1.3"):
        overrides = [f"experiment={experiment}", f"model={model}", "backbone.d_model=8"]
        cfg = compose("config", overrides=[*overrides, "backbone.n_layers=2"])
    tokens = experiment in ("lra_listops", "lra_text", "lra_retrieval")
    info = TaskInfo(
        name="t", input_kind="tokens" if tokens else "real", d_input=5, d_output=3, seq_len=16,
        dual=experiment == "lra_retrieval", pad_id=0 if tokens else None,
    )  # fmt: skip
    module = models.build_model(**model_args(cfg, info))
    return module, build_optimizer(module, cfg.optimizer)


def settings_by_name(module, optimizer):
    by_id = {
        id(p): (g["lr"], g["weight_decay"]) for g in optimizer.param_groups for p in g["params"]
    }
    return {name: by_id.get(id(p)) for name, p in module.named_parameters()}


@pytest.mark.parametrize("experiment", sorted(REFERENCE_GROUPS))
def test_lra_recipe_groups_equal_the_reference_configs(experiment):
    module, optimizer = recipe_model_and_optimizer(experiment, "s4_legs")
    settings = settings_by_name(module, optimizer)
    for name, got in settings.items():
        matches = [
            v for pattern, v in REFERENCE_GROUPS[experiment].items() if re.search(pattern, name)
        ]
        assert len(matches) == 1, (name, matches)
        assert got == pytest.approx(matches[0]), name
    assert any(name.startswith("head.") for name in settings)
    assert any(name.endswith("encoder.proj.bias") for name in settings) != (
        experiment in ("lra_listops", "lra_text", "lra_retrieval")
    )  # an embedding has no bias


def test_hope_recipe_decays_every_non_ssm_parameter():
    """AnnanYu/HOPE-SSM noisycifar_HOPE.py: AdamW(lr 0.01, wd 0.01) over every parameter without
    `_optim` (biases and LayerNorms included), H at {"lr": min(0.001, lr), "weight_decay": 0.0}
    (--wd 0), log_dt a buffer (lr_dt 0)."""
    module, optimizer = recipe_model_and_optimizer("hope_noisy_scifar", "hope")
    for name, got in settings_by_name(module, optimizer).items():
        if name.endswith(".ssm.log_dt"):
            assert got is None, name  # frozen: in no group
        elif name.endswith(".ssm.markov"):
            assert got == pytest.approx((0.001, 0.0)), name
        else:
            assert got == pytest.approx((0.01, 0.01)), name
