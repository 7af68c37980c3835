"""What a group of seeds shows (docs/sweeps.md, "Seeds as evidence"): the mean with a 95 %
bootstrap interval, which direction of each metric is better, whether a run met a success
criterion and at which evaluation it first did, and its best value over training.

GAN results vary more across seeds than across many methods (Lucic et al. 2018), so a
comparison reports every seed's evidence, not one number.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Mapping, Sequence

#: which way a metric improves; one not listed (a loss, a gradient norm, density) has no
#: better direction, so no best group and no success threshold
BETTER: dict[str, str] = {
    **dict.fromkeys(("modes", "hq_ratio", "classes_covered"), "higher"),
    **dict.fromkeys(("precision", "recall", "coverage"), "higher"),
    **dict.fromkeys(("kl", "class_kl", "fd_digits", "fid"), "lower"),
    "steps_per_sec": "higher",
}
#: the success criterion on 2-D mixtures when none is given: every mode, 80 % high quality
TOY_SUCCESS: dict[str, float | str] = {"modes": "n_modes", "hq_ratio": 0.8}
#: resamples of the bootstrap, from a fixed seed: a summary reproduces exactly
RESAMPLES, BOOTSTRAP_SEED = 10_000, 0


def finite(values: Sequence[float | None]) -> list[float]:
    return [v for v in values if v is not None and math.isfinite(v)]


def bootstrap_interval(values: Sequence[float], level: float = 0.95) -> tuple[float, float] | None:
    """The percentile bootstrap interval of the mean: the middle ``level`` of the means of
    RESAMPLES resamples with replacement. None for fewer than two values."""
    import numpy as np  # here, not above: config checks read this module before a run starts

    x = np.asarray(finite(values), dtype=np.float64)
    if len(x) < 2:
        return None
    rng = np.random.default_rng(BOOTSTRAP_SEED)
    means = x[rng.integers(0, len(x), size=(RESAMPLES, len(x)))].mean(axis=1)
    tail = 100 * (1 - level) / 2
    low, high = np.percentile(means, [tail, 100 - tail])
    return float(low), float(high)


def mean(values: Sequence[float | None]) -> float | None:
    present = finite(values)
    return statistics.fmean(present) if present else None


def best_of(values: Sequence[float | None], metric: str) -> float | None:
    """The best of a run's values over training, by the metric's direction."""
    present = finite(values)
    if not present or metric not in BETTER:
        return None
    return max(present) if BETTER[metric] == "higher" else min(present)


def better_or_equal(metric: str, value: float, threshold: float) -> bool:
    return value >= threshold if BETTER[metric] == "higher" else value <= threshold


def criterion_problems(criterion: Mapping[str, object]) -> list[str]:
    """What is wrong with a success criterion {metric: threshold}: a metric without a better
    direction, a threshold that is neither a number nor another metric's name."""
    problems = []
    for metric, threshold in criterion.items():
        if metric not in BETTER:
            problems.append(
                f"objective.success: {metric} has no better direction; one of "
                f"{', '.join(sorted(BETTER))}"
            )
        if isinstance(threshold, bool) or not isinstance(threshold, (int, float, str)):
            problems.append(
                f"objective.success.{metric}: a number or a metrics.json key, got {threshold!r}"
            )
    return problems


def meets(criterion: Mapping[str, object], values: Mapping[str, float]) -> bool:
    """Whether ``values`` (one evaluation, with the evaluator's constants such as n_modes)
    meet every threshold. A metric without a value (kl with no mode found, a run that failed
    before its evaluation) meets none."""
    for metric, threshold in criterion.items():
        bound = values.get(threshold) if isinstance(threshold, str) else float(threshold)
        value = values.get(metric)
        if bound is None or value is None or not better_or_equal(metric, value, bound):
            return False
    return True


def first_success(
    criterion: Mapping[str, object],
    history: Sequence[Mapping[str, float]],
    constants: Mapping[str, float],
) -> int | None:
    """The step of the first evaluation that met the criterion, or None."""
    for row in history:
        if meets(criterion, {**constants, **row}):
            return int(row["step"])
    return None


def describe(criterion: Mapping[str, object]) -> str:
    """``modes >= n_modes, hq_ratio >= 0.8``: the criterion as the summary states it."""
    return ", ".join(
        f"{m} {'>=' if BETTER.get(m) == 'higher' else '<='} {t}" for m, t in criterion.items()
    )
