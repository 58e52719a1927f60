"""The resolved run configuration: its identity (`config_hash`), its MLflow params (`flatten`).

The identity covers what changes a run's result and nothing else: the dotted keys in
`OPERATIONAL_KEYS` (how a run is watched, stored and placed) are left out of the hash, so two
configs that differ only there are the same run. They are still logged as MLflow params.

Importing this module registers the OmegaConf resolver `${project_root:}` (the directory holding
`configs/`, found from this package's location, never from the working directory), which the
`paths` config group uses so that results land in the project whatever directory a run starts in.
"""

import hashlib
import json
from typing import TYPE_CHECKING, Any

from omegaconf import DictConfig, OmegaConf

from harness.layout import PROJECT_ROOT

if TYPE_CHECKING:
    from tasks import TaskInfo

# The one list of keys that say where and how a point runs, watched and stored, not what it
# computes (a key stands for its whole subtree; the launcher's settings are under `hydra`).
# `trainer.device` is not here: CPU and CUDA runs of one config do not give equal numbers.
OPERATIONAL_KEYS = (
    "hydra",
    "tracking",
    "paths",
    "resume",
    "force",
    "trainer.progress",
    "trainer.log_every",
    "trainer.checkpoint_every",
    "trainer.checkpoint_every_minutes",
    "trainer.num_workers",
    "trainer.pin_memory",
    "task.cache_dir",
)

OmegaConf.register_new_resolver("project_root", lambda: str(PROJECT_ROOT), replace=True)


def resolved(cfg: DictConfig | dict) -> dict[str, Any]:
    """The config as plain, fully interpolated Python containers."""
    if isinstance(cfg, DictConfig):
        return OmegaConf.to_container(cfg, resolve=True)
    return dict(cfg)


def is_operational(key: str) -> bool:
    """Whether the dotted `key` is one of `OPERATIONAL_KEYS` or lies below one."""
    return any(key == op or key.startswith(f"{op}.") for op in OPERATIONAL_KEYS)


def _without_operational(node: Any, prefix: str = "") -> Any:
    if not isinstance(node, dict):
        return node
    kept = {}
    for key, child in node.items():
        dotted = f"{prefix}.{key}" if prefix else str(key)
        if not is_operational(dotted):
            kept[key] = _without_operational(child, dotted)
    return kept


def config_hash(cfg: DictConfig | dict) -> str:
    """First 12 hex digits of SHA-256 of the canonical JSON of the resolved config.

    Canonical: sorted keys, no whitespace; the keys in `OPERATIONAL_KEYS` are dropped.
    """
    content = _without_operational(resolved(cfg))
    canonical = json.dumps(content, sort_keys=True, separators=(",", ":"), ensure_ascii=True)
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()[:12]


def _param_value(value: Any) -> str:
    """Strings stay as they are; every other value is written as JSON (`true`, `null`, `[1, 2]`)."""
    return value if isinstance(value, str) else json.dumps(value)


def flatten(cfg: DictConfig | dict) -> dict[str, str]:
    """The config as dotted keys and string values, e.g. `model.layer.lr` -> `"0.001"`.

    Mappings are walked; lists and scalars become leaves (non-strings JSON-encoded), so a report can
    read a value back with `json.loads` unless it is a plain string.
    """
    flat: dict[str, str] = {}

    def walk(prefix: str, node: Any) -> None:
        if isinstance(node, dict) and node:
            for key, child in node.items():
                walk(f"{prefix}.{key}" if prefix else str(key), child)
        else:
            flat[prefix] = _param_value(node)

    walk("", resolved(cfg))
    return flat


def model_args(cfg: DictConfig, info: "TaskInfo") -> dict[str, Any]:
    """The exact keyword arguments of `models.build_model` for this task and config."""
    return {
        "name": str(cfg.model.name),
        "d_input": info.d_input,
        "d_output": info.d_output,
        **resolved(cfg.backbone),
        "encoder": "embedding" if info.input_kind == "tokens" else "linear",
        "pooling": info.pooling,
        "pool_start": info.pool_start,
        "dual": info.dual,
        "pad_id": info.pad_id,
        "l_max": info.seq_len,
        "layer": resolved(cfg.model.layer),
    }
