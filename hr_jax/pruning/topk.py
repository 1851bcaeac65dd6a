"""The shared, shape-static selection step: keep the k best candidates of each row.

Slot conventions (shared by every pruning function):
  * Audio slots ``[B, Na]``: slot j of row b is the j-th ``<|AUDIO|>`` token of that row. The valid
    slots are a prefix, ``j < num_audio[b]``, equivalently ``audio_mask[b, j]``.
  * Text slots ``[B, T]``: the non-audio, non-padding tokens after the audio span, prefix-valid
    ``text_mask``.
  * ``B``, ``Na``, ``T`` (and every other shape) are static; ``num_audio`` and ``k`` (audio tokens to
    keep per row, ``floor(Na_b * (1 - r))``) are traced int arrays ``[B]``, so changing them never
    recompiles.
  * Masked-out slots may hold any garbage (including NaN/inf): they never influence valid slots and
    never turn a result into NaN.

Candidates: the HeadRouter frame pre-filter (``prefilter_candidates``, paper Sec. 4.4) and the frame
baseline (``frame_candidates``) are uniform strides over the valid slots; every other method makes
every valid slot a candidate. ``select_topk`` then keeps the ``k_b`` best-scoring candidates.

Integer arithmetic is exact in int32 as long as ``Na <= 46340`` (``Na**2 < 2**31``), i.e. more
than 30 minutes of audio and more than the model's 32k context; larger static ``Na`` is refused.
"""

from __future__ import annotations

import math
from fractions import Fraction

import jax
import jax.numpy as jnp
from jax import lax

Array = jax.Array

MAX_AUDIO_SLOTS = 46340  # floor(sqrt(2**31 - 1)): int32 products i * Na stay exact below this
PREFILTER_MAX_DENOMINATOR = 1000


def as_f32(x) -> Array:
    return jnp.asarray(x, jnp.float32)


def check_na(na: int) -> None:
    """Refuses a static slot count that is not an int or would overflow the int32 index math."""
    if not isinstance(na, int) or na < 0:
        raise ValueError(f"Na must be a static non-negative int, got {na!r}")
    if na > MAX_AUDIO_SLOTS:
        raise ValueError(f"Na={na} audio slots exceeds {MAX_AUDIO_SLOTS}: int32 index math would overflow")


def rows_sort(group: Array, key: Array) -> Array:
    """Per-row permutation sorting by (group asc, key asc, slot asc). ``group``/``key``: [B, N]."""
    iota = lax.broadcasted_iota(jnp.int32, group.shape, 1)
    key = as_f32(key) + 0.0  # -0.0 -> +0.0 so that signed zeros tie and fall back to the slot order
    _, _, order = lax.sort((group.astype(jnp.int32), key, iota), dimension=1, num_keys=3)
    return order


def stride_mask(n: Array, c: Array, na: int) -> Array:
    """``[B, Na]`` bool: slot j is ``floor(i * n_b / c_b)`` for some ``i < c_b`` (needs ``c_b <= n_b``).

    Membership test instead of a scatter: with stride ``n/c >= 1`` the only candidate ``i`` for slot
    ``j`` is ``ceil(j c / n)``; then ``j`` is hit iff ``i < c`` and ``i n < (j + 1) c``. All products
    are ``<= Na**2`` and exact in int32.
    """
    check_na(na)
    n = jnp.asarray(n, jnp.int32)[:, None]
    c = jnp.asarray(c, jnp.int32)[:, None]
    j = jnp.arange(na, dtype=jnp.int32)[None, :]
    n_safe = jnp.maximum(n, 1)
    i = (j * c + n_safe - 1) // n_safe
    return (j < n) & (c > 0) & (i < c) & (i * n < (j + 1) * c)


def prefilter_fraction(lam: float) -> Fraction:
    """The exact rational used for a finite ``lam``: the closest fraction with denominator <= 1000.

    This is ``lam`` itself for every value with at most three decimals (2, 1.5, 1.1 = 11/10, ...) and
    for simple ratios such as 1/3; so ``ceil(1.1 * 10) = 11`` (a float64 product would give 12).
    """
    if isinstance(lam, bool) or not isinstance(lam, (int, float)) or math.isnan(lam) or lam <= 0:
        raise ValueError(f"prefilter lambda must be a positive number, None or inf; got {lam!r}")
    return Fraction(lam).limit_denominator(PREFILTER_MAX_DENOMINATOR)


def prefilter_count(num_audio: int, k: int, lam: float | None) -> int:
    """Host (plain Python) count ``c = min(Na_b, ceil(lam * k_b))`` of pre-filter candidates;
    ``lam`` None/inf -> ``Na_b``. Same arithmetic as ``prefilter_candidates``."""
    if lam is None or (isinstance(lam, float) and math.isinf(lam) and lam > 0):
        return int(num_audio)
    frac = prefilter_fraction(lam)
    return min(int(num_audio), -((-frac.numerator * int(k)) // frac.denominator))


def prefilter_candidates(num_audio: Array, k: Array, lam: float | None, Na: int) -> Array:
    """Frame pre-filter of HeadRouter (paper Sec. 4.4 "w/o Downsampling", SPEC "Frame pre-filter").

    Args:
      num_audio: ``[B]`` int valid audio slots ``Na_b``.
      k: ``[B]`` int tokens to keep ``k_b``.
      lam: static Python float ``lambda`` (default 2 in the router), or None / ``inf`` to disable.
      Na: static number of audio slots.

    Returns:
      ``[B, Na]`` bool: with ``c = min(Na_b, ceil(lam * k_b))`` the candidates are the slots
      ``floor(i * Na_b / c)`` for ``i < c``; ``lam`` None/inf -> every valid slot.

    ``ceil(lam * k)`` is exact integer arithmetic on ``lam`` read as ``prefilter_fraction(lam)``
    (``num/den``, ``den <= 1000``): ``c = ceil(num * k / den)``, never a float32 product (whose
    rounding would be off by one for large k). ``k`` is clamped beforehand to the smallest value for
    which ``c`` already reaches ``Na``, which keeps ``num * k <= den * Na + num`` inside int32 and does
    not change the result. ``lam < 1`` is allowed (fewer candidates than ``k``; see ``select_topk``).
    """
    check_na(Na)
    n = jnp.asarray(num_audio, jnp.int32)
    kk = jnp.maximum(jnp.asarray(k, jnp.int32), 0)
    valid = jnp.arange(Na, dtype=jnp.int32)[None, :] < n[:, None]
    if lam is None or (isinstance(lam, float) and math.isinf(lam) and lam > 0):
        return valid
    frac = prefilter_fraction(lam)
    num, den = frac.numerator, frac.denominator
    if frac >= max(Na, 1):  # ceil(lam * k) >= Na >= Na_b for every k >= 1
        return valid & (kk > 0)[:, None]
    k_cap = -((-Na * den) // num)  # smallest k with num * k >= Na * den
    kk = jnp.minimum(kk, k_cap)
    c = jnp.minimum(n, (num * kk + den - 1) // den)
    return stride_mask(n, c, Na)


def frame_candidates(num_audio: Array, k: Array, Na: int) -> Array:
    """Frame baseline: ``[B, Na]`` bool with exactly the slots ``floor(i * Na_b / k_b)``, ``i < k_b``
    (``k_b`` clipped to ``[0, Na_b]``). Select with ``select_topk`` and constant scores."""
    n = jnp.asarray(num_audio, jnp.int32)
    c = jnp.clip(jnp.asarray(k, jnp.int32), 0, n)
    return stride_mask(n, c, Na)


def select_topk(
    scores: Array, candidates: Array, k: Array, k_max: int, *, valid: Array | None = None
) -> Array:
    """The shared, shape-static selection step: keep the ``k_b`` best candidates of each row.

    Args:
      scores: ``[B, Na]`` (any float dtype; compared in float32; NaN ranks below everything).
      candidates: ``[B, Na]`` bool, the slots allowed to be kept (always a subset of the valid slots).
      k: ``[B]`` int, tokens to keep per row (traced).
      k_max: static int ``>= max_b k_b`` (the static kept length, e.g. ``floor(Na_max * (1 - r))``).
      valid: optional ``[B, Na]`` bool audio mask; defaults to all slots. Slots outside it are never kept.

    Returns:
      ``keep``: ``[B, Na]`` bool with exactly ``min(k_b, k_max, #valid_b)`` True per row.

    Ordering is exact: (candidate first, then score descending, then slot ascending), via one
    multi-key ``lax.sort`` -- ties always go to the earlier slot. If a row has fewer than ``k_b``
    candidates (impossible for the pre-filter with ``lam >= 1``), the rest is filled from the
    best-scoring valid non-candidates, with the same tie rule.
    """
    if not isinstance(k_max, int) or k_max < 0:
        raise ValueError(f"k_max must be a static non-negative int, got {k_max!r}")
    B, Na = scores.shape
    k_max = min(k_max, Na)
    valid = jnp.ones((B, Na), bool) if valid is None else jnp.asarray(valid, bool)
    cand = jnp.asarray(candidates, bool) & valid
    s = as_f32(scores)
    neg = jnp.where(jnp.isnan(s), jnp.inf, -s)
    group = jnp.where(cand, 0, jnp.where(valid, 1, 2))
    order = rows_sort(group, neg)[:, :k_max]
    grp_sorted = jnp.take_along_axis(group, order, axis=1)
    take = (jnp.arange(k_max, dtype=jnp.int32)[None, :] < jnp.asarray(k, jnp.int32)[:, None]) & (
        grp_sorted < 2
    )
    rows = jnp.arange(B)[:, None]
    return jnp.zeros((B, Na), bool).at[rows, order].set(take)
