"""Calibration math (SPEC "Calibration"): the profile centres and bandwidth from labelled spreads, and
a head-weight profile from per-head ablation scores. `hr_jax.calibrate` measures those on a model."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import numpy as np

from hr_jax.pruning.router import RouterError

CALIBRATION_CATEGORIES = ("semantic", "acoustic", "mixed")  # labels of calibration samples; mixed -> uniform
SIGMA_FLOOR_ABS = 1e-6
SIGMA_FLOOR_REL = 0.1  # fraction of |mu_aco - mu_sem|


def calibrate_centers(spreads_by_category: Mapping[str, Any]) -> tuple[dict[str, float], float]:
    """Profile centres and bandwidth from labelled spreads (SPEC "Calibration").

    Args:
      spreads_by_category: ``{"semantic": [...], "acoustic": [...], "mixed": [...]}`` selectivity spreads
        of calibration samples; semantic and acoustic must be non-empty, mixed may be absent or empty.

    Returns:
      ``(mu, sigma)``: ``mu = {"semantic", "uniform", "acoustic"}`` with ``mu_c`` the mean spread of
      category c (``uniform`` from ``mixed``; the midpoint of ``mu_sem`` and ``mu_aco`` when there are no
      mixed samples), and ``sigma`` the pooled within-category std
      ``sqrt(sum_c sum_i (s_i - mu_c)^2 / (N - C))`` over the C non-empty categories (N samples).

    Floor (documented choice): ``sigma >= max(1e-6, 0.1 * |mu_aco - mu_sem|)``. It applies when the
    pooled std is undefined (one sample per category, N = C), zero (identical spreads) or tiny, so the
    Gaussian kernels never collapse into a numerically hard, noise-driven switch.
    """
    if not isinstance(spreads_by_category, Mapping):
        raise RouterError("spreads_by_category must be a mapping of category -> list of spreads")
    unknown = sorted(str(key) for key in spreads_by_category if key not in CALIBRATION_CATEGORIES)
    if unknown:
        raise RouterError(
            f"unknown calibration categories {unknown}; expected {list(CALIBRATION_CATEGORIES)}"
        )
    groups: dict[str, np.ndarray] = {}
    for cat in CALIBRATION_CATEGORIES:
        vals = np.asarray(spreads_by_category.get(cat, []) or [], dtype=np.float64).reshape(-1)
        if not np.all(np.isfinite(vals)):
            raise RouterError(f"non-finite spread in category {cat!r}")
        groups[cat] = vals
    for cat in ("semantic", "acoustic"):
        if groups[cat].size == 0:
            raise RouterError(f"calibration needs at least one {cat} sample")
    mu_sem = float(groups["semantic"].mean())
    mu_aco = float(groups["acoustic"].mean())
    mixed = groups["mixed"]
    mu_uni = float(mixed.mean()) if mixed.size else 0.5 * (mu_sem + mu_aco)
    used = [g for g in groups.values() if g.size]
    n_total = sum(g.size for g in used)
    dof = n_total - len(used)
    ss = sum(float(np.sum((g - g.mean()) ** 2)) for g in used)
    pooled = math.sqrt(ss / dof) if dof > 0 else 0.0
    floor = max(SIGMA_FLOOR_ABS, SIGMA_FLOOR_REL * abs(mu_aco - mu_sem))
    return {"semantic": mu_sem, "uniform": mu_uni, "acoustic": mu_aco}, max(pooled, floor)


def profile_from_ablation(delta_ll: Any) -> np.ndarray:
    """Head-weight profile from per-head ablation scores (SPEC "Calibration").

    Args:
      delta_ll: ``[H]`` per-head log-likelihood gains (pruning with head h alone, relative to unpruned,
        averaged over a category's samples).

    Returns:
      ``[H]`` float64 ``max(delta, 0) / sum(max(delta, 0))``. If no head has a positive gain the profile
      is uniform ``1/H`` (no head is evidently better than the others).
    """
    d = np.asarray(delta_ll, dtype=np.float64)
    if d.ndim != 1 or d.size == 0:
        raise RouterError(f"delta_ll must be a non-empty 1-D array, got shape {d.shape}")
    if not np.all(np.isfinite(d)):
        raise RouterError("delta_ll contains non-finite values")
    pos = np.maximum(d, 0.0)
    total = pos.sum()
    if total <= 0:
        return np.full(d.shape, 1.0 / d.size)
    return pos / total
