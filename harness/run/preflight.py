"""Check a command line against the config schema before Hydra runs anything.

`check(argv)` composes the config of every point the command line names (each sweep value in
turn) the way `harness.run` will, and turns what Hydra or OmegaConf would answer with a traceback
or with advice to append a key into one `UserError`:

    error: unknown key trainer.max_epoch; did you mean trainer.max_epochs?
    error: trainer.max_epochs: 'abc' is not a valid int; give a value of that type
    error: trainer.max_epochs: must be >= 1, got 0; give a positive number

A `+key` that the schema does not know is refused the same way (no code would read it). Then
`harness.run.schema.validate` checks ranges and choices. Nothing is generated, trained or logged.
"""

import difflib
import itertools
import re
from collections.abc import Iterator
from pathlib import Path

import yaml
from hydra import compose, initialize_config_dir
from hydra._internal.utils import get_args_parser
from hydra.core.config_store import ConfigStore
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.errors import HydraException
from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from common import UserError
from harness.layout import CONFIGS_DIR, plugin_config_dirs
from harness.run import schema

_ABSENT = object()
MAX_POINTS = 64  # beyond this many points, each swept key is checked on its own


def _points(overrides: list[str]) -> Iterator[list[str]]:
    """The override lists of the points a sweep command line names (one for a single run); of
    an `interval(a, b)` the ends a and b."""
    parsed = OverridesParser.create().parse_overrides(overrides)
    choices = []
    for override in parsed:
        key = override.get_key_element()
        if override.is_interval_sweep():  # a tuning range (hydra/sweeper=optuna): its ends
            interval = override.value()
            cast = int if "int" in interval.tags else float
            choices.append([f"{key}={cast(v)}" for v in (interval.start, interval.end)])
        elif override.is_sweep_override():
            choices.append([f"{key}={v}" for v in override.sweep_string_iterator()])
        else:
            choices.append([f"{key}={override.get_value_element_as_str()}"])
    if len(choices) and _product_size(choices) > MAX_POINTS:
        first = [c[0] for c in choices]
        for i, values in enumerate(choices):
            for value in values:
                yield [*first[:i], value, *first[i + 1 :]]
        return
    yield from (list(point) for point in itertools.product(*choices))


def _product_size(choices: list[list[str]]) -> int:
    size = 1
    for values in choices:
        size *= len(values)
    return size


def _dotted_keys(node: DictConfig, prefix: str = "") -> list[str]:
    keys = []
    for key in node:
        dotted = f"{prefix}.{key}" if prefix else str(key)
        child = node._get_node(key)
        keys += _dotted_keys(child, dotted) if isinstance(child, DictConfig) else [dotted]
    return keys


def _unknown_key(key: str, point: list[str]) -> UserError:
    """`unknown key K; did you mean ...?`, the suggestions from the point's own config."""
    base = [o for o in point if not o.lstrip("+~").startswith(f"{key}=")]
    try:
        known = _dotted_keys(_compose(base))
    except HydraException:
        known = []
    close = difflib.get_close_matches(key, known, n=1, cutoff=0.6)
    if close:
        return UserError(f"unknown key {key}; did you mean {close[0]}?")
    section = key.rpartition(".")[0]
    under = sorted(k for k in known if section and k.startswith(f"{section}."))
    listed = (
        f"the keys under {section} are: {', '.join(under)}" if under else "see `ssm-bench list`"
    )
    return UserError(f"unknown key {key}; {listed}")


def group_options(group: str) -> list[str]:
    """The option names of config group `group`: the schema's (every registered model and task)
    and the YAML files under it in `configs/` and in plugins' config directories."""
    stored = ConfigStore.instance().repo.get(group, {})
    names = {name.removesuffix(".yaml") for name in stored if isinstance(name, str)}
    for directory in (CONFIGS_DIR, *plugin_config_dirs()):
        root = directory / group
        names |= {str(p.relative_to(root).with_suffix("")) for p in root.rglob("*.yaml")}
    return sorted(names)


def _translate(error: Exception, point: list[str]) -> UserError:
    """One `UserError` for what Hydra or OmegaConf raised while composing `point`."""
    text = str(error)
    if isinstance(error.__cause__, OmegaConfBaseException):
        text = f"{text}\n{error.__cause__}"
    full_key = re.search(r"full_key: ([\w.]+)", text)
    missing = re.search(r"Key '(\w+)' (?:not in|is not in struct)", text)
    override = re.search(r"(?:override|append to your config[^']*) '?\+?([\w.]+)", text)
    if missing or "Could not append" in text or "Could not override" in text:
        key = full_key.group(1) if full_key else (override.group(1) if override else "?")
        return _unknown_key(key, point)
    converted = re.search(r"Value '(.*?)' (?:of type '\w+' )?could not be converted to (\w+)", text)
    converted = converted or re.search(r"Value '(.*?)' is not a valid (\w+)", text)
    if converted and full_key:
        value, kind = converted.groups()
        kind = {"bool": "boolean"}.get(kind.lower(), kind)
        return UserError(
            f"{full_key.group(1)}: {value!r} is not a valid {kind.lower()}; give a value of "
            "that type"
        )
    option = re.search(r"Could not find '([\w/]+)'", text)
    if option:
        group, _, name = option.group(1).rpartition("/")
        valid = ", ".join(group_options(group))
        return UserError(f"unknown {group} {name!r}; valid {group} names are: {valid}")
    return UserError(f"{text.splitlines()[0]}; check the command line's overrides")


def _bad_yaml(error: yaml.YAMLError) -> UserError:
    """One line for a config file YAML refused: the file, the line and what was wrong."""
    mark = getattr(error, "problem_mark", None) or getattr(error, "context_mark", None)
    where = f"{mark.name}, line {mark.line + 1}" if mark else "a config file"
    problem = getattr(error, "problem", None) or str(error).splitlines()[0]
    return UserError(f"{where}: not valid config YAML ({problem}); fix or remove that file")


def _compose(point: list[str], config_name: str = "config") -> DictConfig:
    with initialize_config_dir(str(CONFIGS_DIR), version_base="1.3"):
        return compose(config_name, overrides=point)


def check(argv: list[str]) -> None:
    """Compose and validate every point of the command line `argv`.

    `argv` is split the way Hydra splits it (`hydra._internal.utils.get_args_parser`): its own
    flags (`--cfg job`, `--config-dir D`, `--multirun`, ...) are not overrides. A command that
    only asks Hydra something (`--help`, `--hydra-help`, `--info`, `--shell-completion`,
    `--version`, which exits while parsing) is left to Hydra. `hydra.*` / `hydra/...` overrides
    are Hydra's own, except `hydra.searchpath`, which adds config folders (such as the ones
    `ssm-bench tune --out` writes), as `--config-dir` does. A config file YAML refuses (a Python
    tag, a syntax error, binary bytes) is one error naming the file and line.
    """
    args = get_args_parser().parse_args(argv)
    if args.help or args.hydra_help or args.info or args.shell_completion:
        return
    search = [a for a in args.overrides if a.startswith("hydra.searchpath=")]
    if args.config_dir:
        search.append(f"hydra.searchpath=[file://{Path(args.config_dir).resolve()}]")
    overrides = [a for a in args.overrides if not a.startswith("hydra")] + search
    schema.register()
    try:
        points = list(_points(overrides))
    except HydraException as error:
        first = str(error).splitlines()[0]
        raise UserError(
            f"cannot read the overrides ({first}); write each as key=value with ASCII key and "
            "names, quoting values with spaces or special characters"
        ) from None
    for point in points:
        try:
            cfg = _compose(point, args.config_name or "config")
        except (HydraException, OmegaConfBaseException) as error:
            raise _translate(error, point) from None
        except yaml.YAMLError as error:  # a Python tag, a syntax error: nothing was constructed
            raise _bad_yaml(error) from None
        except UnicodeDecodeError:
            raise UserError(
                "a config file this command line names is not UTF-8 text (binary or damaged); "
                "check the experiment and other config files you added"
            ) from None
        _refuse_added_keys(cfg, point)
        schema.validate(cfg)


def _refuse_added_keys(cfg: DictConfig, point: list[str]) -> None:
    """A `+key=value` that the schema does not hold would be carried along and read by nothing."""
    added = [o[1:].partition("=")[0] for o in point if o.startswith("+") and o[1] != "+"]
    if not added:
        return
    base = _compose([o for o in point if not o.startswith("+")])
    for key in added:
        if OmegaConf.select(base, key, default=_ABSENT) is _ABSENT:
            raise _unknown_key(key, point)
