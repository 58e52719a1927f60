"""The resolved run configuration: its identity (`config_hash`), its MLflow params (`flatten`).

Importing this module registers the OmegaConf resolver `${project_root:}` (the directory holding
`configs/`, found from this package's location, never from the working directory), which the
`paths` config group uses so that results land in the project whatever directory a run starts in.
"""

import hashlib
import json
from typing import Any

from omegaconf import DictConfig, OmegaConf

from harness.layout import PROJECT_ROOT

# Top-level keys that say where and how a point runs, not what it computes.
EXCLUDED_FROM_HASH = ("launcher", "tracking", "paths", "hydra", "resume", "force")

OPERATIONAL_KEYS = (
    *EXCLUDED_FROM_HASH,
    "trainer.progress",
    "trainer.log_every",
    "trainer.checkpoint",
    "trainer.num_workers",
    "trainer.pin_memory",
    "task.cache_dir",
)
"""Config keys (and key prefixes) that say where and how a run executes, not what it computes."""


def is_operational(key: str) -> bool:
    """Whether a flattened config key (`trainer.log_every`, `paths.runs_dir`, ...) is operational:
    equal to or under an `OPERATIONAL_KEYS` entry, or a key name starting with one
    (`trainer.checkpoint` covers `trainer.checkpoint_every`). Reports ignore these keys when they
    decide whether two runs are the same experiment."""
    return any(key.startswith(prefix) for prefix in OPERATIONAL_KEYS)


OmegaConf.register_new_resolver("project_root", lambda: str(PROJECT_ROOT), replace=True)


def resolved(cfg: DictConfig | dict) -> dict[str, Any]:
    """The config as plain, fully interpolated Python containers."""
    if isinstance(cfg, DictConfig):
        return OmegaConf.to_container(cfg, resolve=True)
    return dict(cfg)


def config_hash(cfg: DictConfig | dict) -> str:
    """First 12 hex digits of SHA-256 of the canonical JSON of the resolved config.

    Canonical: sorted keys, no whitespace; the top-level keys in `EXCLUDED_FROM_HASH` are dropped.
    """
    content = {k: v for k, v in resolved(cfg).items() if k not in EXCLUDED_FROM_HASH}
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
