"""A study's multiple-comparison correction and its power statement.

- `holm`: Holm-Bonferroni step-down adjusted p-values (Holm 1979) over a family of m tests:
  with p sorted ascending p_(1) <= ... <= p_(m),
      adj_(i) = max_{j <= i} min(1, (m - j + 1) p_(j)),
  and hypothesis i is rejected at family-wise level alpha when adj_(i) < alpha.
- `detectable_effect`: the smallest true difference of means a two-sided t-test on n seeds
  detects with the given power at level alpha. For a paired test on n pairs with difference
  standard deviation sd, the statistic is noncentral t with n - 1 degrees of freedom and
  noncentrality delta sqrt(n) / sd; power(delta) = P(|T| > t_{1 - alpha/2, n-1}), solved for
  delta. (For large n: delta ~ (z_{1-alpha/2} + z_power) sd / sqrt(n).)
"""

import math

import numpy as np
from scipy import optimize, stats

POWER = 0.8
"""The power at which a study states the smallest detectable effect."""


def holm(p_values) -> np.ndarray:
    """Holm-adjusted p-values (float64, the input order); NaN entries stay NaN and do not count
    in the family size m."""
    p = np.asarray(p_values, dtype=np.float64)
    adjusted = np.full_like(p, np.nan)
    finite = np.flatnonzero(np.isfinite(p))
    m = len(finite)
    order = finite[np.argsort(p[finite], kind="stable")]
    running = 0.0
    for rank, i in enumerate(order):
        running = max(running, min(1.0, (m - rank) * p[i]))
        adjusted[i] = running
    return adjusted


def t_test_power(delta: float, sd: float, n: int, alpha: float) -> float:
    """Power of the two-sided one-sample (paired) t-test on n values with true mean `delta` and
    standard deviation `sd` (module docstring)."""
    df = n - 1
    critical = stats.t.ppf(1.0 - alpha / 2.0, df)
    nc = abs(delta) * math.sqrt(n) / sd
    far = stats.nct.cdf(-critical, df, nc)  # the tail away from the effect (NaN on underflow)
    return float(stats.nct.sf(critical, df, nc) + (far if math.isfinite(far) else 0.0))


def detectable_effect(sd: float, n: int, alpha: float, power: float = POWER) -> float:
    """The smallest |difference of means| a paired two-sided t-test on n pairs with difference
    standard deviation `sd` detects with probability `power` at level `alpha`; NaN when n < 2
    or sd is not a positive finite number."""
    if n < 2 or not (math.isfinite(sd) and sd > 0):
        return math.nan
    upper = (stats.norm.ppf(1.0 - alpha / 2.0) + stats.norm.ppf(power)) * sd / math.sqrt(n)
    while t_test_power(upper, sd, n, alpha) < power:  # the normal approximation is too small
        upper *= 2.0
    return float(
        optimize.brentq(lambda d: t_test_power(d, sd, n, alpha) - power, 0.0, upper, xtol=1e-12)
    )


def seeds_needed(effect: float, sd: float, alpha: float, power: float = POWER) -> int:
    """The fewest seeds (pairs) whose paired test detects `effect` with `power` at `alpha`."""
    n = 2
    while t_test_power(abs(effect), sd, n, alpha) < power:
        n += 1
    return n
