"""The config schema: typed option dataclasses, the one source of every default.

`register()` puts them into Hydra's ConfigStore, where the config groups find them:

- `trainer=default`: `TrainerOptions`; `optimizer=adamw`: `AdamWOptions`;
  `scheduler=cosine|constant|plateau`: `CosineOptions`, `ConstantOptions`, `PlateauOptions`;
- `backbone=default`: the config-level fields of `models.backbone.BackboneConfig` (its defaults);
- `model=<name>` for every registered model: its name and its registry spec's layer options;
- `task=<name>` for every registered task: its name and the options of its signature.

YAML files hold only what differs (`configs/experiment/`, `configs/task/quickstart/`, the root
config). Hydra then checks each override's type and key at composition (a typed, struct config).
`validate(cfg)` checks what types cannot (ranges, choices, divisibility) before any data is
generated or any run is created: every failure is a `UserError` naming the key and the fix.
"""

import dataclasses
import inspect
import math
from dataclasses import dataclass, field, fields
from typing import Any

from hydra.core.config_store import ConfigStore
from omegaconf import DictConfig, OmegaConf

import models
import tasks
from common import UserError
from harness.run.distributed import DEVICE_CHOICES
from harness.run.precision import PRECISIONS
from models.backbone import BackboneConfig
from models.optim import NO_DECAY_SCOPES
from models.registry import resolve_options

PROGRESS = ("auto", True, False)
INTERVALS = ("step", "epoch")
# Fields of BackboneConfig that the runner fills in from the task (not config keys).
TASK_DERIVED = ("encoder", "pooling", "pool_start", "dual", "pad_id", "l_max", "layer")


def _at_least(section: str, key: str, value: Any, minimum: float, fix: str) -> None:
    if value is not None and value < minimum:
        raise UserError(f"{section}.{key}: must be >= {minimum}, got {value!r}; {fix}")


def _one_of(section: str, key: str, value: Any, valid: tuple) -> None:
    if value not in valid:
        names = ", ".join(str(v).lower() if isinstance(v, bool) else str(v) for v in valid)
        raise UserError(f"{section}.{key}: {value!r} is not one of {names}; pick one of them")


@dataclass
class TrainerOptions:
    """The training loop (`harness.run.train.Trainer`). Training stops at `max_epochs` or
    `max_steps` (optimizer steps), whichever comes first."""

    max_epochs: int = 10
    max_steps: int | None = None  # optimizer steps; None: no limit besides max_epochs
    batch_size: int = 32  # per process; effective = batch_size * world_size * grad_accum
    eval_batch_size: int | None = None  # None: batch_size
    grad_accum: int = 1  # loader batches per optimizer step
    grad_clip: float = 0.0  # max global gradient norm; 0: no clipping
    precision: str = "fp32"  # fp32 | tf32 (TF32 matmuls/convolutions on GPU) | bf16 (autocast
    #   on CUDA; kernel generation and the FFT convolution stay in fp32)
    compile: bool = False  # torch.compile the training step's model (evaluation runs eager)
    device: str = "auto"  # auto (CUDA if visible) | cpu | cuda
    eval_every_steps: int | None = None  # None: evaluate val and test at every epoch's end
    early_stopping_patience: int | None = None  # stop after this many evaluations without a
    #   better val score
    checkpoint_every: int = 1000  # optimizer steps between checkpoints (also on SIGTERM/USR1/USR2)
    checkpoint_every_minutes: float | None = 10  # also one when this much time passed since the
    #   last (None: off); and always one at the end of each epoch
    log_every: int = 50  # optimizer steps per logged window of train metrics
    deterministic: bool = False  # torch deterministic algorithms (resumed == uninterrupted on CPU)
    num_workers: int = 0  # DataLoader worker processes
    pin_memory: bool = True  # pinned host memory (only used on CUDA)
    progress: Any = "auto"  # auto: a bar on a terminal, else a line every 10 s (none under CI)

    def __post_init__(self) -> None:
        fix = "give a positive number"
        for key in ("max_epochs", "batch_size", "grad_accum", "log_every", "checkpoint_every"):
            _at_least("trainer", key, getattr(self, key), 1, fix)
        for key in ("max_steps", "eval_batch_size", "eval_every_steps", "early_stopping_patience"):
            _at_least("trainer", key, getattr(self, key), 1, f"{fix} or null")
        _at_least("trainer", "grad_clip", self.grad_clip, 0, "0 turns clipping off")
        _at_least("trainer", "num_workers", self.num_workers, 0, "0 loads in the main process")
        if self.checkpoint_every_minutes is not None and self.checkpoint_every_minutes <= 0:
            raise UserError(
                f"trainer.checkpoint_every_minutes: must be > 0, got "
                f"{self.checkpoint_every_minutes!r}; give minutes or null"
            )
        _one_of("trainer", "precision", self.precision, PRECISIONS)
        _one_of("trainer", "device", self.device, DEVICE_CHOICES)
        _one_of("trainer", "progress", self.progress, PROGRESS)


@dataclass
class AdamWOptions:
    """AdamW over the parameter groups of `models.param_groups`: `default` (lr, weight_decay),
    `no_decay` (weight decay 0 for biases and norms in the `no_decay` scope) and the SSM groups
    (the layer's own lr, weight decay 0)."""

    name: str = "adamw"
    lr: float = 0.01
    weight_decay: float = 0.05
    betas: list[float] = field(default_factory=lambda: [0.9, 0.999])
    eps: float = 1.0e-08
    no_decay: str = "backbone"  # biases and norms without weight decay: inside the residual stack
    #   only (backbone: the S4 reference) | everywhere, embeddings too (all) | none (the HOPE
    #   noisy-sCIFAR script decays everything)

    def __post_init__(self) -> None:
        _at_least("optimizer", "lr", self.lr, 0, "give a learning rate (0 freezes the weights)")
        _at_least("optimizer", "weight_decay", self.weight_decay, 0, "0 turns it off")
        if len(self.betas) != 2 or not all(0 <= b < 1 for b in self.betas):
            raise UserError(f"optimizer.betas: {self.betas!r} must be two numbers in [0, 1)")
        if self.eps <= 0:
            raise UserError(f"optimizer.eps: must be > 0, got {self.eps!r}")
        _one_of("optimizer", "no_decay", self.no_decay, NO_DECAY_SCOPES)


@dataclass
class _Warmup:
    warmup_steps: int = 0  # linear warmup from 0 over this many steps (epochs with interval epoch)
    interval: str = "step"  # step: per optimizer step (S4 reference) | epoch: warmup_steps and
    #   total_steps count epochs, lr constant in an epoch (HOPE reference)

    def __post_init__(self) -> None:
        _at_least("scheduler", "warmup_steps", self.warmup_steps, 0, "0 turns warmup off")
        _one_of("scheduler", "interval", self.interval, INTERVALS)


@dataclass
class CosineOptions(_Warmup):
    """Linear warmup from 0, then a half cosine down to `min_lr_ratio * lr`, as state-spaces/s4's
    cosine_warmup (transformers.get_cosine_schedule_with_warmup)."""

    name: str = "cosine"
    total_steps: int | None = None  # length of the cosine; None: the run's planned steps (epochs)
    min_lr_ratio: float = 0.0

    def __post_init__(self) -> None:
        super().__post_init__()
        _at_least("scheduler", "total_steps", self.total_steps, 1, "give steps or null")
        if not 0 <= self.min_lr_ratio <= 1:
            raise UserError(f"scheduler.min_lr_ratio: {self.min_lr_ratio!r} must be in [0, 1]")


@dataclass
class ConstantOptions(_Warmup):
    """Linear warmup from 0, then the optimizer's lr."""

    name: str = "constant"


@dataclass
class PlateauOptions:
    """ReduceLROnPlateau on the validation score, stepped at each evaluation."""

    name: str = "plateau"
    factor: float = 0.5
    patience: int = 5
    min_lr: float = 0.0

    def __post_init__(self) -> None:
        if not 0 < self.factor < 1:
            raise UserError(f"scheduler.factor: {self.factor!r} must be in (0, 1)")
        _at_least("scheduler", "patience", self.patience, 0, "0 reduces at once")
        _at_least("scheduler", "min_lr", self.min_lr, 0, "0 lets it reach 0")


SCHEDULERS = {"cosine": CosineOptions, "constant": ConstantOptions, "plateau": PlateauOptions}
SECTIONS = {"trainer": TrainerOptions, "optimizer": AdamWOptions}


def _editable(node: Any) -> DictConfig:
    """A typed node that overrides may change (frozen dataclasses make read-only nodes)."""
    config = OmegaConf.structured(node)
    OmegaConf.set_readonly(config, False)
    return config


def backbone_node() -> DictConfig:
    """The `backbone` keys: `BackboneConfig`'s fields but those the runner takes from the task."""
    kept = [(f.name, f.type, f) for f in fields(BackboneConfig) if f.name not in TASK_DERIVED]
    schema = dataclasses.make_dataclass("BackboneOptions", kept)
    return _editable(schema)


def model_node(name: str) -> DictConfig:
    """`model=<name>`: the name and the registry spec's layer options."""
    return OmegaConf.create({"name": name, "layer": _editable(models.MODELS[name]().options)})


def task_node(name: str) -> DictConfig:
    """`task=<name>`: the name and the task's options with their defaults, typed by its
    signature."""
    params = inspect.signature(tasks.TASKS[name]).parameters.values()
    spec = [("name", str, field(default=name))]
    spec += [(p.name, p.annotation, field(default=p.default)) for p in params]
    return _editable(dataclasses.make_dataclass(f"{name}_options", spec))


def register() -> None:
    """Store every schema node in Hydra's ConfigStore (again: later names are added)."""
    store = ConfigStore.instance()
    store.store(group="trainer", name="default", node=TrainerOptions)
    store.store(group="optimizer", name="adamw", node=AdamWOptions)
    for name, schema in SCHEDULERS.items():
        store.store(group="scheduler", name=name, node=schema)
    store.store(group="backbone", name="default", node=backbone_node())
    for name in models.MODELS.names():
        store.store(group="model", name=name, node=model_node(name))
    for name in tasks.TASKS.names():
        store.store(group="task", name=name, node=task_node(name))


def validate(cfg: DictConfig) -> None:
    """Check the composed config's values against the schema; `UserError` naming the key.

    Types and keys were checked by Hydra at composition; here the rules of each section's
    `__post_init__`, the backbone's and the layer options' (`models.resolve_options`).
    """
    _check_numbers(OmegaConf.to_container(cfg, resolve=True))
    seed = cfg.get("seed")
    if not isinstance(seed, int) or isinstance(seed, bool):
        raise UserError(f"seed: {seed!r} is not a valid int; give an integer seed such as seed=0")
    for section, schema in SECTIONS.items():
        schema(**OmegaConf.to_container(cfg[section], resolve=True))
    scheduler = OmegaConf.to_container(cfg.scheduler, resolve=True)
    if scheduler.get("name") not in SCHEDULERS:
        raise UserError(
            f"scheduler.name: {scheduler.get('name')!r} is not a scheduler; use scheduler="
            f"{'|'.join(SCHEDULERS)}"
        )
    SCHEDULERS[scheduler["name"]](**scheduler)
    BackboneConfig(**OmegaConf.to_container(cfg.backbone, resolve=True))
    layer = OmegaConf.to_container(cfg.model.layer, resolve=True)
    resolve_options(str(cfg.model.name), **layer)


MAX_INT = 2**31 - 1
"""The largest integer any option takes: counts, sizes and seeds beyond it mean nothing here
(a budget of 2^31 epochs never ends; numpy seeds stop at 2^32)."""


def _check_numbers(node: object, key: str = "") -> None:
    """Every number of the composed config is finite and every integer at most `MAX_INT` in
    size: NaN or inf reaches no option as a meaningful value (a NaN learning rate, timescale or
    checkpoint interval only fails later, inside a run). `hydra` settings are Hydra's own."""
    if isinstance(node, dict):
        for name, child in node.items():
            if not key and name == "hydra":
                continue
            _check_numbers(child, f"{key}.{name}" if key else str(name))
    elif isinstance(node, list):
        for i, child in enumerate(node):
            _check_numbers(child, f"{key}[{i}]")
    elif isinstance(node, float) and not math.isfinite(node):
        raise UserError(f"{key}: must be a finite number, got {node}; give a finite value")
    elif isinstance(node, int) and not isinstance(node, bool) and abs(node) > MAX_INT:
        raise UserError(
            f"{key}: {node} is out of range (at most {MAX_INT} in size); give a smaller value"
        )
