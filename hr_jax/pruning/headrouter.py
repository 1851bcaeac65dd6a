"""HeadRouter (paper Sec. 3.3): a position-agnostic text-to-audio probe of layer M-1, per-head
selectivity, Gaussian soft routing between head profiles, head-weighted token importance.

Pipeline: ``probe_queries_keys`` -> ``probe_attention`` -> ``selectivity`` -> ``spread`` ->
``routing_alpha`` -> ``mix_profiles`` -> ``importance`` (``headrouter_scores`` strings these
together) -> frame pre-filter and ``select_topk`` (``hr_jax.pruning.topk``), in ``headrouter_keep``.
Softmax, entropy and all routing math run in float32 whatever the input dtype; matmuls accumulate in
float32 at ``Precision.HIGHEST``.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
from jax import lax

from hr_jax.pruning.router import RouterArrays
from hr_jax.pruning.slots import Slots, take_rows
from hr_jax.pruning.topk import as_f32, prefilter_candidates, select_topk
from models.config import TextConfig
from models.decoder import project_qkv, rms_norm
from models.params import DecoderLayerParams

Array = jax.Array

NEG = float(jnp.finfo(jnp.float32).min)  # finite "minus infinity" for masked logits
HIGHEST = lax.Precision.HIGHEST
ROUTING_MODES = ("soft", "hard", "uniform", "semantic", "acoustic")


def probe_queries_keys(
    h_in: Array, layer: DecoderLayerParams, cfg: TextConfig, slots: Slots
) -> tuple[Array, Array]:
    """The probe's inputs: exactly what layer M-1's attention sees (its normalised input, q/k with
    bias), without RoPE. h_in `[B, L, D]` -> q of the text slots `[B, T, Hq, hd]`, k of the audio
    slots `[B, Na, Hkv, hd]`."""
    x = rms_norm(h_in, layer.attn_norm, cfg.rms_norm_eps)
    q, _, _ = project_qkv(take_rows(x, slots.text), layer, cfg)
    _, k, _ = project_qkv(take_rows(x, slots.audio), layer, cfg)
    return q, k


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
    logits = jnp.einsum(
        "btkgd,bnkd->bkgtn", q, k_audio, preferred_element_type=jnp.float32, precision=HIGHEST
    )
    logits = as_f32(logits).reshape(B, Hq, T, Na) * (1.0 / math.sqrt(D))
    am4 = am[:, None, None, :]
    probs = jax.nn.softmax(jnp.where(am4, logits, NEG), axis=-1)
    probs = jnp.where(am4, probs, 0.0)
    probs = jnp.where(tm[:, None, :, None], probs, 0.0)  # `where`, not a product: garbage rows may be NaN
    n_text = jnp.maximum(jnp.sum(tm, axis=-1), 1).astype(jnp.float32)
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
    p = as_f32(p)
    n = jnp.asarray(num_audio, jnp.int32)
    valid = (jnp.arange(p.shape[-1], dtype=jnp.int32)[None, :] < n[:, None])[:, None, :]
    pos = valid & (p > 0)  # NaN > 0 is False
    plogp = jnp.sum(jnp.where(pos, p * jnp.log(jnp.where(pos, p, 1.0)), 0.0), axis=-1)
    log_n = jnp.log(jnp.maximum(n, 2).astype(jnp.float32))
    sel = 1.0 + plogp / log_n[:, None]
    return jnp.where((n > 1)[:, None], sel, 1.0)


def spread(sel: Array) -> Array:
    """Routing signal, paper Eq. 11: population std (ddof=0) over heads. ``[B, H] -> [B]`` float32."""
    return jnp.std(as_f32(sel), axis=-1)


def _route_logits(spr: Array, mu: Array, sigma) -> Array:
    spr = as_f32(spr)
    mu = as_f32(mu)
    sigma = as_f32(sigma)
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
    return jax.nn.one_hot(jnp.argmax(_route_logits(spr, mu, sigma), axis=-1), 3, dtype=jnp.float32)


def routing_alpha(spr: Array, mu: Array, sigma, mode: str = "soft") -> Array:
    """``alpha [B, 3]`` for a routing mode (static str; see ``hr_jax.pruning.methods``).

    ``soft``: Eq. 13; ``hard``: ``route_hard``; ``uniform``/``semantic``/``acoustic``: the constant
    one-hot selecting that single profile (so ``mix_profiles`` returns exactly that profile).
    """
    spr = as_f32(spr)
    if mode == "soft":
        return route(spr, mu, sigma)
    if mode == "hard":
        return route_hard(spr, mu, sigma)
    fixed = {"semantic": 0, "uniform": 1, "acoustic": 2}
    if mode not in fixed:
        raise ValueError(f"unknown routing mode {mode!r}; expected one of {ROUTING_MODES}")
    return jnp.broadcast_to(jax.nn.one_hot(fixed[mode], 3, dtype=jnp.float32), spr.shape + (3,))


def mix_profiles(alpha: Array, w_sem: Array, w_aco: Array) -> Array:
    """Head-weight mixture, paper Eq. 14: ``w = a_sem w_sem + a_uni / H + a_aco w_aco``.

    Args:
      alpha: ``[B, 3]`` (semantic, uniform, acoustic).
      w_sem, w_aco: ``[H]`` profiles (as stored; calibrated ones sum to 1 like ``w_uni``).

    Returns:
      ``[B, H]`` float32 (not normalised; ``importance`` normalises, Eq. 7).
    """
    alpha = as_f32(alpha)
    w_sem = as_f32(w_sem)
    w_aco = as_f32(w_aco)
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
    p = as_f32(p)
    w = jnp.broadcast_to(as_f32(w), p.shape[:2])
    s = jnp.sum(w, axis=-1, keepdims=True)
    ok = s > 0
    wbar = jnp.where(ok, w / jnp.where(ok, s, 1.0), 1.0 / p.shape[1])
    return jnp.sum(wbar[:, :, None] * p, axis=1)


def headrouter_scores(
    q_text: Array,
    k_audio: Array,
    text_mask: Array,
    audio_mask: Array,
    router: RouterArrays,
    mode: str = "soft",
) -> tuple[Array, Array, Array, Array]:
    """The scoring half of HeadRouter (Algorithm 1, steps 4-9).

    Args: as ``probe_attention``, plus the router's arrays and a static routing ``mode``
    (``routing_alpha``).

    Returns:
      ``(scores [B, Na], spr [B], alpha [B, 3], sel [B, Hq])``, all float32. ``num_audio`` is
      ``audio_mask.sum(-1)`` (the valid slots are a prefix).
    """
    p = probe_attention(q_text, k_audio, text_mask, audio_mask)
    num_audio = jnp.sum(jnp.asarray(audio_mask, bool), axis=-1).astype(jnp.int32)
    sel = selectivity(p, num_audio)
    spr = spread(sel)
    alpha = routing_alpha(spr, router.mu, router.sigma, mode)
    return importance(p, mix_profiles(alpha, router.w_sem, router.w_aco)), spr, alpha, sel


def headrouter_keep(
    h_in: Array,
    layer: DecoderLayerParams,
    cfg: TextConfig,
    slots: Slots,
    keep_k: Array,
    keep_cap: int,
    router: RouterArrays,
    mode: str,
    prefilter: float | None,
) -> tuple[Array, Array, Array, Array]:
    """HeadRouter's choice: keep `[B, Na]` (the top `keep_k` of the pre-filter's candidates by
    importance), spread `[B]`, alpha `[B, 3]` and per-head selectivity `[B, Hq]`."""
    q, k = probe_queries_keys(h_in, layer, cfg, slots)
    scores, spr, alpha, sel = headrouter_scores(q, k, slots.text_mask, slots.audio_mask, router, mode)
    cand = prefilter_candidates(slots.num_audio, keep_k, prefilter, slots.audio.shape[1])
    return select_topk(scores, cand, keep_k, keep_cap, valid=slots.audio_mask), spr, alpha, sel
