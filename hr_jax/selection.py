"""Wires the pruning scores of `hr_jax.prune` into prefill: gathers the tensors each method needs
from layer M−1 and returns which audio slots survive.

Every method yields a keep mask over audio slots `[B, Na]` with exactly k_b kept per row; the
engine turns it into sequence positions.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import struct

from hr_jax import prune
from hr_jax.router import ABLATIONS, Router
from models.config import TextConfig
from models.decoder import apply_rope, project_qkv, rms_norm
from models.params import DecoderLayerParams

ROUTE_MODES = {name: ab.routing for name, ab in ABLATIONS.items()}  # HeadRouter methods -> routing mode


@struct.dataclass
class RouterArrays:
    """The router's numbers as traced arrays, so a new router file does not recompile."""

    w_sem: jax.Array  # [H]
    w_aco: jax.Array  # [H]
    mu: jax.Array  # [3] semantic, uniform, acoustic
    sigma: jax.Array  # []

    @classmethod
    def from_router(cls, r: Router) -> RouterArrays:
        return cls(
            w_sem=jnp.asarray(r.w_sem, jnp.float32),
            w_aco=jnp.asarray(r.w_aco, jnp.float32),
            mu=jnp.asarray(r.mu_array, jnp.float32),
            sigma=jnp.asarray(r.sigma, jnp.float32),
        )


@struct.dataclass
class SelectionInputs:
    """What layer M−1 offers the scorers. Sequence arrays are `[B, L, ...]`.

    layer: layer M−1's weights (unstacked); h_in / h_out: its input / output `[B, L, D]`;
    keys_rope: its RoPE'd keys `[B, L, Hkv, hd]`; final_norm: the model's last RMSNorm weight;
    cos/sin `[B, L, hd]`; valid `[B, L]`; audio_pos `[B, Na]` and text_pos `[B, T]` sequence
    indices of audio / text-after-audio slots (-1 unused); num_audio, last_real, keep_k `[B]`.
    """

    layer: DecoderLayerParams
    h_in: jax.Array
    h_out: jax.Array
    keys_rope: jax.Array
    final_norm: jax.Array
    cos: jax.Array
    sin: jax.Array
    valid: jax.Array
    audio_pos: jax.Array
    num_audio: jax.Array
    text_pos: jax.Array
    last_real: jax.Array
    keep_k: jax.Array


def take_rows(x: jax.Array, idx: jax.Array) -> jax.Array:
    """x `[B, L, ...]` at per-row indices idx `[B, K]` -> `[B, K, ...]`; -1 reads slot 0 (callers mask it)."""
    idx = jnp.maximum(idx, 0)
    return jnp.take_along_axis(x, idx.reshape(idx.shape + (1,) * (x.ndim - 2)), axis=1)


def select_audio(
    inp: SelectionInputs, cfg: TextConfig, plan, router: RouterArrays, key: jax.Array
) -> tuple[jax.Array, jax.Array, jax.Array, jax.Array]:
    """Returns (keep `[B, Na]` bool, spread `[B]`, alpha `[B, 3]`, per-head selectivity `[B, Hq]`);
    the last three are zeros for methods without routing."""
    bsz, na = inp.audio_pos.shape
    audio_mask = inp.audio_pos >= 0
    text_mask = inp.text_pos >= 0
    k = inp.keep_k
    zeros = (
        jnp.zeros((bsz,), jnp.float32),
        jnp.zeros((bsz, 3), jnp.float32),
        jnp.zeros((bsz, cfg.num_attention_heads), jnp.float32),
    )
    all_valid = audio_mask

    if plan.method in ROUTE_MODES:
        # The probe sees exactly what layer M−1's attention sees: its normalised input, q/k with
        # bias, no RoPE.
        x = rms_norm(inp.h_in, inp.layer.attn_norm, cfg.rms_norm_eps)
        q, _, _ = project_qkv(take_rows(x, inp.text_pos), inp.layer, cfg)
        _, k_audio, _ = project_qkv(take_rows(x, inp.audio_pos), inp.layer, cfg)
        p = prune.probe_attention(q, k_audio, text_mask, audio_mask)
        sel = prune.selectivity(p, inp.num_audio)
        spr = prune.spread(sel)
        alpha = prune.routing_alpha(spr, router.mu, router.sigma, ROUTE_MODES[plan.method])
        scores = prune.importance(p, prune.mix_profiles(alpha, router.w_sem, router.w_aco))
        cand = prune.prefilter_candidates(inp.num_audio, k, plan.prefilter, na)
        keep = prune.select_topk(scores, cand, k, plan.keep_cap, valid=audio_mask)
        return keep, spr, alpha, sel
    if plan.method == "random":
        scores = prune.random_scores(key, audio_mask)
        return prune.select_topk(scores, all_valid, k, plan.keep_cap, valid=audio_mask), *zeros
    if plan.method == "frame":
        cand = prune.frame_candidates(inp.num_audio, k, na)
        scores = jnp.zeros((bsz, na), jnp.float32)
        return prune.select_topk(scores, cand, k, plan.keep_cap, valid=audio_mask), *zeros
    if plan.method == "fastv":
        x = rms_norm(inp.h_in, inp.layer.attn_norm, cfg.rms_norm_eps)
        last = inp.last_real[:, None]
        q, _, _ = project_qkv(take_rows(x, last), inp.layer, cfg)
        q = apply_rope(q, take_rows(inp.cos, last), take_rows(inp.sin, last))[:, 0]
        key_mask = inp.valid & (jnp.arange(inp.valid.shape[1])[None] <= last)
        scores = prune.fastv_scores(q, inp.keys_rope, key_mask, inp.audio_pos)
        return prune.select_topk(scores, all_valid, k, plan.keep_cap, valid=audio_mask), *zeros
    if plan.method == "dart":
        hn = rms_norm(inp.h_out, inp.final_norm, cfg.rms_norm_eps)
        keep = prune.dart_select(
            take_rows(inp.keys_rope, inp.audio_pos),
            take_rows(inp.keys_rope, inp.text_pos),
            take_rows(hn, inp.audio_pos),
            take_rows(hn, inp.text_pos),
            audio_mask,
            text_mask,
            k,
        )
        return keep, *zeros
    raise ValueError(f"unknown pruning method {plan.method!r}")
