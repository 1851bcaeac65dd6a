"""Baselines: the same selection step (`hr_jax.pruning.topk.select_topk`) with other scores.

- `random`: uniform random scores from an explicit PRNG key.
- `frame`: the candidates are exactly the uniform stride floor(i * Na / k), i < k.
- `fastv` (paper Eq. 6): the attention of the last prompt token at layer M-1 *with* RoPE and the
  causal mask, mean over heads, read at the audio positions (the right tensor: the attention of
  layer M-1's own query, not another layer's).
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
from jax import lax

from hr_jax.pruning.slots import Slots, take_rows
from hr_jax.pruning.topk import as_f32, frame_candidates, select_topk
from models.config import TextConfig
from models.decoder import apply_rope, project_qkv, rms_norm, rope_tables
from models.params import DecoderLayerParams

Array = jax.Array

NEG = float(jnp.finfo(jnp.float32).min)  # finite "minus infinity" for masked logits
HIGHEST = lax.Precision.HIGHEST


def random_scores(key: Array, audio_mask: Array) -> Array:
    """Random baseline scores: ``[B, Na]`` float32 uniform in [0, 1) from ``key``, ``-inf`` at invalid
    slots. Reproducible for the same key *and the same static shape* (padding Na changes the draw)."""
    am = jnp.asarray(audio_mask, bool)
    u = jax.random.uniform(key, am.shape, jnp.float32)
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
    logits = jnp.einsum("bkgd,blkd->bkgl", q, k_all, preferred_element_type=jnp.float32, precision=HIGHEST)
    logits = as_f32(logits).reshape(B, Hq, L) * (1.0 / math.sqrt(D))
    km = jnp.asarray(key_mask, bool)[:, None, :]
    attn = jnp.where(km, jax.nn.softmax(jnp.where(km, logits, NEG), axis=-1), 0.0)
    pos = jnp.asarray(audio_pos, jnp.int32)
    in_range = (pos >= 0) & (pos < L)
    gathered = jnp.take_along_axis(attn, jnp.clip(pos, 0, L - 1)[:, None, :], axis=-1)  # [B, Hq, Na]
    return jnp.where(in_range, jnp.mean(gathered, axis=1), -jnp.inf)


def random_keep(key: Array, slots: Slots, keep_k: Array, keep_cap: int) -> Array:
    """`random`: keep `[B, Na]`, `keep_k` uniformly random valid audio slots per row."""
    am = slots.audio_mask
    return select_topk(random_scores(key, am), am, keep_k, keep_cap, valid=am)


def frame_keep(slots: Slots, keep_k: Array, keep_cap: int) -> Array:
    """`frame`: keep `[B, Na]`, the slots floor(i * Na_b / k_b), i < k_b."""
    cand = frame_candidates(slots.num_audio, keep_k, slots.audio.shape[1])
    scores = jnp.zeros(slots.audio.shape, jnp.float32)
    return select_topk(scores, cand, keep_k, keep_cap, valid=slots.audio_mask)


def fastv_keep(
    h_in: Array,
    layer: DecoderLayerParams,
    cfg: TextConfig,
    keys: Array,
    positions: Array,
    valid: Array,
    slots: Slots,
    keep_k: Array,
    keep_cap: int,
) -> Array:
    """`fastv`: keep `[B, Na]`, the audio slots the last prompt token attends to most at layer M-1.

    h_in `[B, L, D]` layer M-1's input; keys `[B, L, Hkv, hd]` its keys after RoPE; positions
    `[B, L]` original positions; valid `[B, L]`."""
    last = slots.last_real[:, None]
    x = rms_norm(take_rows(h_in, last), layer.attn_norm, cfg.rms_norm_eps)
    q, _, _ = project_qkv(x, layer, cfg)
    cos, sin = rope_tables(take_rows(positions, last), cfg)
    q = apply_rope(q, cos, sin)[:, 0]
    key_mask = valid & (jnp.arange(valid.shape[1])[None] <= last)
    scores = fastv_scores(q, keys, key_mask, slots.audio)
    am = slots.audio_mask
    return select_topk(scores, am, keep_k, keep_cap, valid=am)
