"""What a decoder-only audio LM does around its layers, for every family: original positions from the
mask, the input embedding with the audio encoder's outputs spliced in at the audio tokens, and the final
norm + LM head."""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp

from models.decoder import DEFAULT_ATTENTION, prefill_layers, rms_norm


def positions_from_mask(attention_mask: jax.Array) -> jax.Array:
    """Original positions `[B, L]`: running count of real tokens (0 at padding), as the reference."""
    return jnp.maximum(jnp.cumsum(attention_mask.astype(jnp.int32), axis=1) - 1, 0)


def splice_audio(params: Any, cfg: Any, input_ids: jax.Array, tokens: jax.Array) -> jax.Array:
    """Token embeddings `[B, L, D]` of `input_ids` `[B, L]` with the k-th `<|AUDIO|>` token of each row
    replaced by `tokens[b, k]` (`[B, Na, D]`, the audio encoder's output)."""
    h = params.embed[input_ids]
    is_audio = input_ids == cfg.audio_token_id
    rank = jnp.clip(jnp.cumsum(is_audio, axis=1) - 1, 0, tokens.shape[1] - 1)
    gathered = jnp.take_along_axis(tokens, rank[..., None], axis=1).astype(h.dtype)
    return jnp.where(is_audio[..., None], gathered, h)


def lm_logits(params: Any, cfg: Any, h: jax.Array) -> jax.Array:
    """Final RMSNorm and LM head: `[..., D] -> [..., V]` in float32."""
    x = rms_norm(h, params.norm, cfg.text.rms_norm_eps)
    w = params.embed.T if params.lm_head is None else params.lm_head
    return jnp.einsum("...d,dv->...v", x, w, preferred_element_type=jnp.float32)


def forward_from_embeds(
    params: Any, cfg: Any, h: jax.Array, attention_mask: jax.Array, attention: str = DEFAULT_ATTENTION
) -> jax.Array:
    """Unpruned logits at every position `[B, L, V]` (float32) from the input embeddings `h [B, L, D]`
    (audio spliced in), through every decoder layer. Differentiable in `params` with the default
    attention (`blocked`); `attention`: a concrete kernel of `models.attention`."""
    valid = attention_mask.astype(bool)
    positions = positions_from_mask(attention_mask)
    h, _, _ = prefill_layers(h, params.layers, cfg.text, positions, valid, attention=attention)
    return lm_logits(params, cfg, h)
