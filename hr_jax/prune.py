"""Pruning scores and the shared selection step, as pure shape-static JAX functions.

Everything here works on arrays only (no model code); prefill gathers the tensors and calls these.

Slot conventions (shared by every function):
  * Audio slots ``[B, Na]``: slot j of row b is the j-th ``<|AUDIO|>`` token of that row. The valid
    slots are a prefix, ``j < num_audio[b]``, equivalently ``audio_mask[b, j]``.
  * Text slots ``[B, T]``: the non-audio, non-padding tokens after the audio span, prefix-valid
    ``text_mask``.
  * ``B``, ``Na``, ``T`` (and every other shape) are static; ``num_audio`` and ``k`` (audio tokens to
    keep per row, ``floor(Na_b * (1 - r))``) are traced int arrays ``[B]``, so changing them never
    recompiles.
  * Softmax, entropy and all routing math run in float32 whatever the input dtype; matmuls
    accumulate in float32 at ``Precision.HIGHEST``.
  * Masked-out slots may hold any garbage (including NaN/inf): they never influence valid slots and
    never turn a result into NaN.

Pipeline (HeadRouter, paper Sec. 3.3 + SPEC "Pruning"):
  ``probe_attention`` -> ``selectivity`` -> ``spread`` -> ``route`` / ``route_hard`` ->
  ``mix_profiles`` -> ``importance`` -> (``prefilter_candidates``) -> ``select_topk``.
``headrouter_scores`` strings the scoring half together, with the routing ablations of ``router.ABLATIONS``.

Baselines use the same ``select_topk``: ``random_scores`` / ``fastv_scores`` with all valid slots as
candidates, ``frame_candidates`` with constant scores. ``dart_select`` is the exception: its greedy
pivot procedure yields the kept mask directly (exactly ``k_b`` per row).

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

_F32 = jnp.float32
_NEG = float(jnp.finfo(jnp.float32).min)  # finite "minus infinity" for masked logits
_HIGHEST = lax.Precision.HIGHEST
MAX_AUDIO_SLOTS = 46340  # floor(sqrt(2**31 - 1)): int32 products i * Na stay exact below this
PREFILTER_MAX_DENOMINATOR = 1000
ROUTING_MODES = ("soft", "hard", "uniform", "semantic", "acoustic")
_BIG = 2**30  # "not selected" sequence number in dart_select


def _f32(x) -> Array:
    return jnp.asarray(x, _F32)


def _check_na(na: int) -> None:
    if not isinstance(na, int) or na < 0:
        raise ValueError(f"Na must be a static non-negative int, got {na!r}")
    if na > MAX_AUDIO_SLOTS:
        raise ValueError(f"Na={na} audio slots exceeds {MAX_AUDIO_SLOTS}: int32 index math would overflow")


def _rows_sort(group: Array, key: Array) -> Array:
    """Per-row permutation sorting by (group asc, key asc, slot asc). ``group``/``key``: [B, N]."""
    iota = lax.broadcasted_iota(jnp.int32, group.shape, 1)
    key = _f32(key) + 0.0  # -0.0 -> +0.0 so that signed zeros tie and fall back to the slot order
    _, _, order = lax.sort((group.astype(jnp.int32), key, iota), dimension=1, num_keys=3)
    return order


# --------------------------------------------------------------------------------------------------
# HeadRouter scores
# --------------------------------------------------------------------------------------------------


def probe_attention(q_text: Array, k_audio: Array, text_mask: Array, audio_mask: Array) -> Array:
    """Position-agnostic text-to-audio QK probe, paper Eq. 15-17.

    Args:
      q_text: ``[B, T, Hq, D]`` queries of the text slots (layer M-1 ``q_proj`` with bias, no RoPE).
      k_audio: ``[B, Na, Hkv, D]`` keys of the audio slots (layer M-1 ``k_proj`` with bias, no RoPE).
      text_mask: ``[B, T]`` bool, valid text slots.
      audio_mask: ``[B, Na]`` bool, valid audio slots.

    Returns:
      ``p``: ``[B, Hq, Na]`` float32. ``p[b, h] = mean_j softmax_k(q_j . k_k / sqrt(D))`` where query
      head ``h`` reads KV head ``h // (Hq // Hkv)``, the softmax runs over the valid audio slots only
      and the mean over the valid text slots only. ``p = 0`` at invalid audio slots; a row without
      valid text or audio slots gives all zeros.
    """
    B, T, Hq, D = q_text.shape
    Bk, Na, Hkv, Dk = k_audio.shape
    if (Bk, Dk) != (B, D):
        raise ValueError(f"q_text {q_text.shape} and k_audio {k_audio.shape} disagree on batch/head_dim")
    if Hq % Hkv:
        raise ValueError(f"query heads {Hq} not a multiple of KV heads {Hkv}")
    tm = jnp.asarray(text_mask, bool)
    am = jnp.asarray(audio_mask, bool)
    g = Hq // Hkv
    q = q_text.reshape(B, T, Hkv, g, D)  # head h = kv * g + i  ->  kv = h // g
    logits = jnp.einsum("btkgd,bnkd->bkgtn", q, k_audio, preferred_element_type=_F32, precision=_HIGHEST)
    logits = _f32(logits).reshape(B, Hq, T, Na) * (1.0 / math.sqrt(D))
    am4 = am[:, None, None, :]
    probs = jax.nn.softmax(jnp.where(am4, logits, _NEG), axis=-1)
    probs = jnp.where(am4, probs, 0.0)
    probs = jnp.where(tm[:, None, :, None], probs, 0.0)  # `where`, not a product: garbage rows may be NaN
    n_text = jnp.maximum(jnp.sum(tm, axis=-1), 1).astype(_F32)
    return jnp.sum(probs, axis=2) / n_text[:, None, None]


def selectivity(p: Array, num_audio: Array) -> Array:
    """Per-head selectivity, paper Eq. 10: ``sel = 1 + (1/log Na_b) sum_k p log p``.

    Args:
      p: ``[B, H, Na]`` per-head audio attention distributions (``probe_attention``).
      num_audio: ``[B]`` int, valid audio slots per row; slots ``j >= num_audio[b]`` are ignored.

    Returns:
      ``[B, H]`` float32. ``0 log 0 = 0``. Guard: for ``Na_b <= 1`` the normaliser ``log Na_b`` is 0
      (a single token is trivially fully concentrated), so ``sel`` is defined as 1 for every head
      (spread 0).
    """
    p = _f32(p)
    n = jnp.asarray(num_audio, jnp.int32)
    valid = (jnp.arange(p.shape[-1], dtype=jnp.int32)[None, :] < n[:, None])[:, None, :]
    pos = valid & (p > 0)  # NaN > 0 is False
    plogp = jnp.sum(jnp.where(pos, p * jnp.log(jnp.where(pos, p, 1.0)), 0.0), axis=-1)
    log_n = jnp.log(jnp.maximum(n, 2).astype(_F32))
    sel = 1.0 + plogp / log_n[:, None]
    return jnp.where((n > 1)[:, None], sel, 1.0)


def spread(sel: Array) -> Array:
    """Routing signal, paper Eq. 11: population std (ddof=0) over heads. ``[B, H] -> [B]`` float32."""
    return jnp.std(_f32(sel), axis=-1)


def _route_logits(spr: Array, mu: Array, sigma) -> Array:
    spr = _f32(spr)
    mu = _f32(mu)
    sigma = _f32(sigma)
    return -jnp.square(spr[..., None] - mu) / (2.0 * jnp.square(sigma))


def route(spr: Array, mu: Array, sigma) -> Array:
    """Gaussian soft routing, paper Eq. 13.

    Args:
      spr: ``[B]`` selectivity spread.
      mu: ``[3]`` profile centres in the order (semantic, uniform, acoustic).
      sigma: scalar bandwidth ``sigma_G > 0``.

    Returns:
      ``alpha``: ``[B, 3]`` float32, ``softmax_c(-(spr - mu_c)^2 / (2 sigma^2))`` (max-subtracted,
      so it never overflows or divides by zero; rows sum to 1).
    """
    return jax.nn.softmax(_route_logits(spr, mu, sigma), axis=-1)


def route_hard(spr: Array, mu: Array, sigma) -> Array:
    """Hard routing ablation: one-hot of the argmax of ``route`` (the nearest centre; ties -> earlier
    profile in the order semantic, uniform, acoustic). ``[B] -> [B, 3]`` float32."""
    return jax.nn.one_hot(jnp.argmax(_route_logits(spr, mu, sigma), axis=-1), 3, dtype=_F32)


def routing_alpha(spr: Array, mu: Array, sigma, mode: str = "soft") -> Array:
    """``alpha [B, 3]`` for a routing mode (static str; see ``router.ABLATIONS``).

    ``soft``: Eq. 13; ``hard``: ``route_hard``; ``uniform``/``semantic``/``acoustic``: the constant
    one-hot selecting that single profile (so ``mix_profiles`` returns exactly that profile).
    """
    spr = _f32(spr)
    if mode == "soft":
        return route(spr, mu, sigma)
    if mode == "hard":
        return route_hard(spr, mu, sigma)
    fixed = {"semantic": 0, "uniform": 1, "acoustic": 2}
    if mode not in fixed:
        raise ValueError(f"unknown routing mode {mode!r}; expected one of {ROUTING_MODES}")
    return jnp.broadcast_to(jax.nn.one_hot(fixed[mode], 3, dtype=_F32), spr.shape + (3,))


def mix_profiles(alpha: Array, w_sem: Array, w_aco: Array) -> Array:
    """Head-weight mixture, paper Eq. 14: ``w = a_sem w_sem + a_uni / H + a_aco w_aco``.

    Args:
      alpha: ``[B, 3]`` (semantic, uniform, acoustic).
      w_sem, w_aco: ``[H]`` profiles (as stored; calibrated ones sum to 1 like ``w_uni``).

    Returns:
      ``[B, H]`` float32 (not normalised; ``importance`` normalises, Eq. 7).
    """
    alpha = _f32(alpha)
    w_sem = _f32(w_sem)
    w_aco = _f32(w_aco)
    h = w_sem.shape[-1]
    return alpha[:, 0:1] * w_sem + alpha[:, 1:2] * (1.0 / h) + alpha[:, 2:3] * w_aco


def importance(p: Array, w: Array) -> Array:
    """Head-weighted token importance, paper Eq. 7-8.

    Args:
      p: ``[B, H, Na]`` per-head distributions.
      w: ``[B, H]`` (or ``[H]``) non-negative head weights; normalised per row to sum 1. A row whose
        weights sum to <= 0 (impossible for validated profiles) falls back to uniform weights.

    Returns:
      ``[B, Na]`` float32, ``sum_h wbar_h p_h[k]``.
    """
    p = _f32(p)
    w = jnp.broadcast_to(_f32(w), p.shape[:2])
    s = jnp.sum(w, axis=-1, keepdims=True)
    ok = s > 0
    wbar = jnp.where(ok, w / jnp.where(ok, s, 1.0), 1.0 / p.shape[1])
    return jnp.sum(wbar[:, :, None] * p, axis=1)


def headrouter_scores(
    q_text: Array,
    k_audio: Array,
    text_mask: Array,
    audio_mask: Array,
    w_sem: Array,
    w_aco: Array,
    mu: Array,
    sigma,
    mode: str = "soft",
) -> tuple[Array, Array, Array]:
    """The scoring half of HeadRouter (Algorithm 1, steps 4-9).

    Args: as ``probe_attention``, plus the router's ``w_sem``/``w_aco`` ``[H]``, ``mu`` ``[3]``,
    ``sigma`` and a static routing ``mode`` (``routing_alpha``).

    Returns:
      ``(scores [B, Na], spr [B], alpha [B, 3])``, all float32. ``num_audio`` is ``audio_mask.sum(-1)``
      (the valid slots are a prefix).
    """
    p = probe_attention(q_text, k_audio, text_mask, audio_mask)
    num_audio = jnp.sum(jnp.asarray(audio_mask, bool), axis=-1).astype(jnp.int32)
    spr = spread(selectivity(p, num_audio))
    alpha = routing_alpha(spr, mu, sigma, mode)
    return importance(p, mix_profiles(alpha, w_sem, w_aco)), spr, alpha


# --------------------------------------------------------------------------------------------------
# Candidates and the shared selection step
# --------------------------------------------------------------------------------------------------


def _stride_mask(n: Array, c: Array, na: int) -> Array:
    """``[B, Na]`` bool: slot j is ``floor(i * n_b / c_b)`` for some ``i < c_b`` (needs ``c_b <= n_b``).

    Membership test instead of a scatter: with stride ``n/c >= 1`` the only candidate ``i`` for slot
    ``j`` is ``ceil(j c / n)``; then ``j`` is hit iff ``i < c`` and ``i n < (j + 1) c``. All products
    are ``<= Na**2`` and exact in int32.
    """
    _check_na(na)
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
    _check_na(Na)
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
    return _stride_mask(n, c, Na)


def frame_candidates(num_audio: Array, k: Array, Na: int) -> Array:
    """Frame baseline: ``[B, Na]`` bool with exactly the slots ``floor(i * Na_b / k_b)``, ``i < k_b``
    (``k_b`` clipped to ``[0, Na_b]``). Select with ``select_topk`` and constant scores."""
    n = jnp.asarray(num_audio, jnp.int32)
    c = jnp.clip(jnp.asarray(k, jnp.int32), 0, n)
    return _stride_mask(n, c, Na)


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
    s = _f32(scores)
    neg = jnp.where(jnp.isnan(s), jnp.inf, -s)
    group = jnp.where(cand, 0, jnp.where(valid, 1, 2))
    order = _rows_sort(group, neg)[:, :k_max]
    grp_sorted = jnp.take_along_axis(group, order, axis=1)
    take = (jnp.arange(k_max, dtype=jnp.int32)[None, :] < jnp.asarray(k, jnp.int32)[:, None]) & (
        grp_sorted < 2
    )
    rows = jnp.arange(B)[:, None]
    return jnp.zeros((B, Na), bool).at[rows, order].set(take)


# --------------------------------------------------------------------------------------------------
# Baselines
# --------------------------------------------------------------------------------------------------


def random_scores(key: Array, audio_mask: Array) -> Array:
    """Random baseline scores: ``[B, Na]`` float32 uniform in [0, 1) from ``key``, ``-inf`` at invalid
    slots. Reproducible for the same key *and the same static shape* (padding Na changes the draw)."""
    am = jnp.asarray(audio_mask, bool)
    u = jax.random.uniform(key, am.shape, _F32)
    return jnp.where(am, u, -jnp.inf)


def fastv_scores(q_last: Array, k_all: Array, key_mask: Array, audio_pos: Array) -> Array:
    """FastV baseline (paper Eq. 6), computed on the right tensors.

    Args:
      q_last: ``[B, Hq, D]`` query of the last prompt token at layer M-1, RoPE already applied.
      k_all: ``[B, L, Hkv, D]`` keys of the whole sequence at layer M-1, RoPE already applied.
      key_mask: ``[B, L]`` bool, keys the last token may attend to (padding and causality included).
      audio_pos: ``[B, Na]`` int, sequence position of each audio slot (< 0 for unused slots).

    Returns:
      ``[B, Na]`` float32: ``mean_h softmax_l(q_h . k_l / sqrt(D))`` over all valid keys, read at the
      audio positions (GQA: head h uses KV head ``h // (Hq // Hkv)``); ``-inf`` where ``audio_pos`` is
      out of range.
    """
    B, Hq, D = q_last.shape
    _, L, Hkv, _ = k_all.shape
    if Hq % Hkv:
        raise ValueError(f"query heads {Hq} not a multiple of KV heads {Hkv}")
    g = Hq // Hkv
    q = q_last.reshape(B, Hkv, g, D)
    logits = jnp.einsum("bkgd,blkd->bkgl", q, k_all, preferred_element_type=_F32, precision=_HIGHEST)
    logits = _f32(logits).reshape(B, Hq, L) * (1.0 / math.sqrt(D))
    km = jnp.asarray(key_mask, bool)[:, None, :]
    attn = jnp.where(km, jax.nn.softmax(jnp.where(km, logits, _NEG), axis=-1), 0.0)
    pos = jnp.asarray(audio_pos, jnp.int32)
    in_range = (pos >= 0) & (pos < L)
    gathered = jnp.take_along_axis(attn, jnp.clip(pos, 0, L - 1)[:, None, :], axis=-1)  # [B, Hq, Na]
    return jnp.where(in_range, jnp.mean(gathered, axis=1), -jnp.inf)


def _top_slots(score: Array, mask: Array, count: int) -> tuple[Array, Array]:
    """Indices ``[B, count]`` of the ``count`` highest scores among masked slots (ties -> earlier slot)
    in descending order, and whether each is a valid slot. ``count`` is clipped to the slot count."""
    count = min(count, score.shape[1])
    order = _rows_sort(jnp.where(mask, 0, 1), jnp.where(mask, -score, 0.0))[:, :count]
    return order, jnp.take_along_axis(mask, order, axis=1)


def dart_select(
    k_audio: Array,
    k_text: Array,
    h_audio: Array,
    h_text: Array,
    audio_mask: Array,
    text_mask: Array,
    k: Array,
    *,
    audio_pivots: int = 4,
    text_pivots: int = 4,
) -> Array:
    """DART baseline (duplication-aware pivots), as AudioMarathon runs it on Qwen2.5-Omni.

    Args:
      k_audio: ``[B, Na, ...]`` layer M-1 keys of the audio slots *after RoPE* (e.g. ``[B, Na, Hkv, D]``;
        all KV heads are concatenated, i.e. the L1 norm runs over every trailing axis; a ``[B, Na, 1]``
        array of precomputed L1 norms works too).
      k_text: ``[B, T, ...]`` the same for the text slots (text after the audio span).
      h_audio: ``[B, Na, Hd]`` input of layer M passed through the model's final RMSNorm, audio slots.
      h_text: ``[B, T, Hd]`` the same for the text slots.
      audio_mask: ``[B, Na]`` bool; text_mask: ``[B, T]`` bool.
      k: ``[B]`` int audio tokens to keep (clipped to ``[0, Na_b]``).
      audio_pivots, text_pivots: static pivot counts (4 and 4, as AudioMarathon).

    Returns:
      ``keep``: ``[B, Na]`` bool, exactly ``min(k_b, Na_b)`` valid audio slots per row. Text slots are
      never in the output (text pivots only steer the choice).

    Procedure (reference: AudioMarathon ``src/Modeling/modeling_qwen2_5_omni_dart.py``,
    ``get_retained_audio_token``, itself DART's ``get_retained_image_token``; P = 8 pivots):
      1. Audio pivots: the ``audio_pivots`` valid audio slots with the largest key L1 norm; text pivots:
         the ``text_pivots`` valid text slots with the largest key L1 norm (reference: all tokens after
         the audio span). Ties go to the earlier slot. Audio pivots are kept (as in the reference).
      2. ``q = k_b // P`` (reference: ``int(Na * (1 - r) / (4 + 4))``, which equals ``int(k / 8)``).
      3. Pivots in turn -- audio pivots by descending L1, then text pivots by descending L1 -- each take
         the ``q`` remaining (not yet chosen, non-pivot, valid) audio slots least cosine-similar to it
         on the normalised hidden states; chosen slots leave the pool. *Choice*: the reference iterates
         a Python ``set`` of positions (hash order, effectively arbitrary); we fix the L1 order. Ties in
         similarity go to the earlier slot (reference: ``torch.topk``, unspecified).
      4. The union minus the text pivots holds ``n_audio_pivots + P q`` audio slots, which is not ``k``
         in general (reference keeps that many). *SPEC*: exactly ``k``. Everything chosen is numbered
         in the order above (pivots, then pick by pick); if the union is too large only the first ``k``
         are kept (the last pivots lose their last picks; for ``k < 4`` only the top-L1 audio pivots);
         if too small the pivots continue round-robin, in the same order, each taking its next
         least-similar remaining slot until ``k`` are chosen (at most 3 extra picks when all 8
         pivots exist; more only for rows with fewer than 4 text slots).
      Cosine similarity: ``x.y / (max(|x|, 1e-8) max(|y|, 1e-8))`` in float32 (torch's formula).
    """
    am = jnp.asarray(audio_mask, bool)
    tm = jnp.asarray(text_mask, bool)
    B, Na = am.shape
    n = jnp.sum(am, axis=-1).astype(jnp.int32)
    kk = jnp.clip(jnp.asarray(k, jnp.int32), 0, n)
    rows = jnp.arange(B)[:, None]

    def l1(x, mask):
        x = jnp.abs(_f32(x)).reshape(x.shape[0], x.shape[1], -1)
        return jnp.where(mask, jnp.sum(x, axis=-1), 0.0)

    pa_idx, pa_ok = _top_slots(l1(k_audio, am), am, audio_pivots)
    pt_idx, pt_ok = _top_slots(l1(k_text, tm), tm, text_pivots)
    ha = _f32(h_audio)
    ht = _f32(h_text)
    pivots = jnp.concatenate(
        [
            jnp.take_along_axis(ha, pa_idx[..., None], axis=1),
            jnp.take_along_axis(ht, pt_idx[..., None], axis=1),
        ],
        axis=1,
    )  # [B, P, Hd]
    piv_ok = jnp.concatenate([pa_ok, pt_ok], axis=1)  # [B, P]
    eps = 1e-8
    dots = jnp.einsum("bpd,bnd->bpn", pivots, ha, precision=_HIGHEST)
    norm_p = jnp.maximum(jnp.linalg.norm(pivots, axis=-1), eps)
    norm_a = jnp.maximum(jnp.linalg.norm(ha, axis=-1), eps)
    sims = dots / (norm_p[:, :, None] * norm_a[:, None, :])
    # Cosines lie in [-1, 1]; anything else (masked garbage, a non-existent pivot) becomes 3, and the
    # `remaining` masks below keep invalid slots out of every choice.
    sims = jnp.where(am[:, None, :] & piv_ok[:, :, None] & jnp.isfinite(sims), sims, 3.0)

    # Sequence number of every chosen audio slot (_BIG = not chosen); keep = seq < k.
    seq = jnp.full((B, Na), _BIG, jnp.int32)
    seq = seq.at[rows, pa_idx].set(jnp.where(pa_ok, jnp.arange(pa_idx.shape[1], dtype=jnp.int32), _BIG))
    pos = jnp.sum(pa_ok, axis=-1).astype(jnp.int32)
    remaining = am & (seq == _BIG)
    q = kk // (audio_pivots + text_pivots)
    iota = lax.broadcasted_iota(jnp.int32, (B, Na), 1)

    def pivot_step(state, xs):  # one pivot in turn (lax.scan keeps the program small)
        seq, pos, remaining = state
        sim_p, ok_p = xs  # [B, Na], [B]
        order = _rows_sort(jnp.where(remaining, 0, 1), sim_p)
        rank = jnp.zeros((B, Na), jnp.int32).at[rows, order].set(iota)
        take = remaining & (rank < q[:, None]) & ok_p[:, None]
        seq = jnp.where(take, pos[:, None] + rank, seq)
        pos = pos + jnp.sum(take, axis=-1).astype(jnp.int32)
        return (seq, pos, remaining & ~take), None

    (seq, pos, remaining), _ = lax.scan(
        pivot_step, (seq, pos, remaining), (jnp.moveaxis(sims, 1, 0), jnp.moveaxis(piv_ok, 1, 0))
    )

    # Fill round-robin over the valid pivots until k are chosen.
    n_valid_piv = jnp.maximum(jnp.sum(piv_ok, axis=-1), 1)
    piv_rank = jnp.cumsum(piv_ok, axis=-1) - 1  # index of each valid pivot among the valid ones

    def active(state):
        _, pos, remaining, _ = state
        return (pos < kk) & jnp.any(remaining, axis=-1)

    def body(state):
        seq, pos, remaining, step = state
        act = active(state)
        want = step % n_valid_piv
        p_b = jnp.argmax(piv_ok & (piv_rank == want[:, None]), axis=-1)
        s = jnp.take_along_axis(sims, p_b[:, None, None], axis=1)[:, 0, :]
        j = jnp.argmin(jnp.where(remaining, s + 0.0, 4.0), axis=-1)  # first minimum: earlier slot
        hit = (iota == j[:, None]) & act[:, None] & remaining  # act implies j is a remaining slot
        seq = jnp.where(hit, pos[:, None], seq)
        return seq, pos + act.astype(jnp.int32), remaining & ~hit, step + act.astype(jnp.int32)

    seq, pos, remaining, _ = lax.while_loop(
        lambda st: jnp.any(active(st)), body, (seq, pos, remaining, jnp.zeros((B,), jnp.int32))
    )
    return am & (seq < kk[:, None])
