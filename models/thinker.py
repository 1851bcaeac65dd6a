"""The thinker: audio tokens spliced into text embeddings, then the Qwen2 decoder and LM head."""

from __future__ import annotations

import jax
import jax.numpy as jnp

from models.audio_encoder import encode_audio
from models.config import ThinkerConfig
from models.decoder import prefill_layers, rms_norm
from models.params import ThinkerParams


def positions_from_mask(attention_mask: jax.Array) -> jax.Array:
    """Original positions `[B, L]`: running count of real tokens (0 at padding), as the reference."""
    return jnp.maximum(jnp.cumsum(attention_mask.astype(jnp.int32), axis=1) - 1, 0)


def embed_inputs(
    params: ThinkerParams,
    cfg: ThinkerConfig,
    input_ids: jax.Array,
    input_features: jax.Array,
    feature_attention_mask: jax.Array,
) -> jax.Array:
    """Token embeddings `[B, L, D]` with the k-th `<|AUDIO|>` token of each row replaced by the
    row's k-th audio-encoder output. The caller guarantees the counts agree (see `hr_jax.batch`)."""
    num_frames = feature_attention_mask.astype(jnp.int32).sum(-1)
    tokens, _ = encode_audio(params.audio, cfg.audio, input_features, num_frames)
    return splice_audio(params, cfg, input_ids, tokens)


def splice_audio(
    params: ThinkerParams, cfg: ThinkerConfig, input_ids: jax.Array, tokens: jax.Array
) -> jax.Array:
    """Token embeddings `[B, L, D]` of `input_ids` `[B, L]` with the k-th `<|AUDIO|>` token of each row
    replaced by `tokens[b, k]` (`[B, Na, D]`, the audio encoder's output)."""
    h = params.embed[input_ids]
    is_audio = input_ids == cfg.audio_token_id
    rank = jnp.clip(jnp.cumsum(is_audio, axis=1) - 1, 0, tokens.shape[1] - 1)
    gathered = jnp.take_along_axis(tokens, rank[..., None], axis=1).astype(h.dtype)
    return jnp.where(is_audio[..., None], gathered, h)


def lm_logits(params: ThinkerParams, cfg: ThinkerConfig, h: jax.Array) -> jax.Array:
    """Final RMSNorm and LM head: `[..., D] -> [..., V]` in float32."""
    x = rms_norm(h, params.norm, cfg.text.rms_norm_eps)
    w = params.embed.T if params.lm_head is None else params.lm_head
    return jnp.einsum("...d,dv->...v", x, w, preferred_element_type=jnp.float32)


def forward(
    params: ThinkerParams,
    cfg: ThinkerConfig,
    input_ids: jax.Array,
    attention_mask: jax.Array,
    input_features: jax.Array,
    feature_attention_mask: jax.Array,
) -> jax.Array:
    """Unpruned logits at every position `[B, L, V]` (float32). Differentiable in `params`."""
    h = embed_inputs(params, cfg, input_ids, input_features, feature_attention_mask)
    valid = attention_mask.astype(bool)
    h, _, _ = prefill_layers(h, params.layers, cfg.text, positions_from_mask(attention_mask), valid)
    return lm_logits(params, cfg, h)
