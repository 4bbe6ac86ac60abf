"""Statistics of paired comparisons: bootstrap confidence intervals of a mean and of a paired difference."""

from __future__ import annotations

import logging
import math

import numpy as np
from jaxtyping import Float

logger = logging.getLogger(__name__)


def _as_values(values: Float[np.ndarray, " N"] | list[float], name: str) -> Float[np.ndarray, " N"]:
    values = np.asarray(values, dtype=np.float64)
    if values.ndim != 1 or len(values) == 0:
        raise ValueError(f"`{name}` must be a non-empty 1-D sequence, got shape {values.shape}")
    if not np.all(np.isfinite(values)):
        raise ValueError(f"`{name}` has {int((~np.isfinite(values)).sum())} non-finite values (inf PSNR?)")
    return values


def bootstrap_ci(
    values: Float[np.ndarray, " N"] | list[float], num_resamples: int = 10_000, confidence: float = 0.95, *, seed: int
) -> dict[str, float]:
    """Percentile bootstrap confidence interval of the mean (`mean`, `ci_low`, `ci_high`).

    Resample the N values with replacement `num_resamples` times; the interval is the (1-c)/2 and (1+c)/2
    quantiles of the resampled means (Efron's percentile method). Deterministic for a seed.
    """
    values = _as_values(values, "values")
    if num_resamples < 1 or not 0.0 < confidence < 1.0:
        raise ValueError(f"need `num_resamples` >= 1 and 0 < `confidence` < 1, got {num_resamples}, {confidence}")
    rng = np.random.default_rng(seed)
    chunk = max(1, 2_000_000 // len(values))  # resamples per draw: bounds memory at ~16 MB of indices
    means = np.concatenate(
        [
            values[rng.integers(0, len(values), size=(min(chunk, num_resamples - start), len(values)))].mean(axis=1)
            for start in range(0, num_resamples, chunk)
        ]
    )  # (num_resamples,)
    low, high = np.quantile(means, [(1.0 - confidence) / 2.0, (1.0 + confidence) / 2.0])
    return {"mean": float(values.mean()), "ci_low": float(low), "ci_high": float(high)}


def paired_difference(
    a: Float[np.ndarray, " N"] | list[float],
    b: Float[np.ndarray, " N"] | list[float],
    num_resamples: int = 10_000,
    confidence: float = 0.95,
    *,
    seed: int,
) -> dict[str, float]:
    """Per-object paired comparison of a against b (e.g. PSNR with pose against without, one value per object).

    Returns:
        `mean_difference` = mean(a - b), its bootstrap `ci_low`/`ci_high` (`bootstrap_ci`), `standard_error` =
        sd(a - b, ddof=1) / sqrt(N), `std_difference`, `num_a_greater` (objects with a > b; ties count for neither)
        and `num_objects`.
    """
    a, b = _as_values(a, "a"), _as_values(b, "b")
    if a.shape != b.shape:
        raise ValueError(f"`a` and `b` must pair up one value per object, got {len(a)} and {len(b)} values")
    if len(a) < 2:
        raise ValueError(f"a paired comparison needs at least 2 objects for a standard error, got {len(a)}")
    diff = a - b
    ci = bootstrap_ci(diff, seed=seed, num_resamples=num_resamples, confidence=confidence)
    sd = float(diff.std(ddof=1))
    return {
        "mean_difference": ci["mean"],
        "ci_low": ci["ci_low"],
        "ci_high": ci["ci_high"],
        "standard_error": sd / math.sqrt(len(diff)),
        "std_difference": sd,
        "num_a_greater": float((diff > 0).sum()),
        "num_objects": float(len(diff)),
    }
