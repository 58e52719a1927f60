"""The search space of a tuning study, written in Hydra's override syntax.

The syntax is the one of Hydra's own Optuna sweeper (hydra-optuna-sweeper), so a command line or
`hydra.sweeper.params` written for it reads the same here:

    optimizer.lr=tag(log, interval(1e-4, 1e-1))   -> FloatDistribution(1e-4, 1e-1, log=True)
    model.layer.dt_max=interval(0.01, 1.0)        -> FloatDistribution(0.01, 1.0)
    backbone.n_layers=tag(int, interval(1, 4))    -> IntDistribution(1, 4)
    backbone.d_model=16,32  or  choice(16, 32)    -> CategoricalDistribution([16, 32])
    trainer.batch_size=range(16, 65, 16)          -> CategoricalDistribution([16, 32, 48, 64])
    trainer.max_epochs=3                          -> fixed: the same in every trial

Categorical values are kept as Hydra's encoded values (`16`, `"'a b'"`: quoted where the text
needs it), so a trial's value is written back verbatim. Anything else is fixed and passed to
every trial as is.
"""

from dataclasses import dataclass

from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.core.override_parser.types import IntervalSweep, Override, Transformer
from optuna.distributions import (
    BaseDistribution,
    CategoricalDistribution,
    FloatDistribution,
    IntDistribution,
)

from common import UserError


@dataclass
class SearchSpace:
    """What varies between trials (`dimensions`) and what every trial gets (`fixed`)."""

    dimensions: dict[str, BaseDistribution]  # override key -> distribution
    fixed: list[str]  # overrides passed to every trial unchanged

    def overrides(self, params: dict[str, object]) -> list[str]:
        """A trial's overrides: the fixed ones, then one `key=value` per dimension."""
        return [*self.fixed, *(f"{key}={override_text(params[key])}" for key in self.dimensions)]

    def extremes(self) -> list[list[str]]:
        """Override lists that reach every dimension's ends (every choice of a categorical),
        the other dimensions at their first value: what is composed and validated before any
        trial runs."""
        ends = {key: _ends(dist) for key, dist in self.dimensions.items()}
        first = {key: values[0] for key, values in ends.items()}
        points = [self.overrides(first)]
        for key, values in ends.items():
            points += [self.overrides(first | {key: value}) for value in values[1:]]
        return points

    def describe(self) -> dict[str, str]:
        """{key: distribution as text}: what the study records to recognise its own space."""
        return {key: repr(dist) for key, dist in self.dimensions.items()}


def _ends(dist: BaseDistribution) -> list[object]:
    if isinstance(dist, CategoricalDistribution):
        return list(dist.choices)
    return [dist.low, dist.high]  # type: ignore[attr-defined]


def override_text(value: object) -> str:
    """A sampled value as override text (`0.0031`, `4`, or a categorical's encoded text)."""
    if isinstance(value, float):
        return repr(value)
    return str(value)


def _distribution(override: Override) -> BaseDistribution:
    key = override.get_key_element()
    if override.is_interval_sweep():
        interval = override.value()
        assert isinstance(interval, IntervalSweep)
        log = "log" in interval.tags
        if interval.start is None or interval.end is None or interval.start >= interval.end:
            raise UserError(
                f"search space {key}: interval({interval.start}, {interval.end}) needs a lower "
                "bound below the upper bound"
            )
        if log and interval.start <= 0:
            raise UserError(
                f"search space {key}: tag(log, interval(...)) needs a lower bound > 0, got "
                f"{interval.start}"
            )
        if "int" in interval.tags:
            return IntDistribution(int(interval.start), int(interval.end), log=log)
        return FloatDistribution(float(interval.start), float(interval.end), log=log)
    choices = list(override.sweep_iterator(transformer=Transformer.encode))
    if len(set(choices)) < 2:
        raise UserError(f"search space {key}: give at least two different choices, got {choices}")
    return CategoricalDistribution(choices)


def parse(params: dict[str, object], arguments: list[str]) -> SearchSpace:
    """The search space of `hydra.sweeper.params` (`{key: override value}`) and the command
    line's overrides `arguments` (which win for a key named in both)."""
    parser = OverridesParser.create()
    configured = [f"{key}={value}" for key, value in params.items()]
    dimensions: dict[str, BaseDistribution] = {}
    fixed: dict[str, str] = {}
    for text in [*configured, *arguments]:
        try:
            (override,) = parser.parse_overrides([text])
        except Exception as error:  # Hydra's parser raises its own exception types
            raise UserError(f"cannot parse {text!r} ({error}); see `ssm-bench tune -h`") from None
        key = override.get_key_element()
        dimensions.pop(key, None)
        fixed.pop(key, None)
        if override.is_sweep_override():
            dimensions[key] = _distribution(override)
        else:
            fixed[key] = override.input_line
    return SearchSpace(dimensions, list(fixed.values()))
