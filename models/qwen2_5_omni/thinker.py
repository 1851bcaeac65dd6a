"""The thinker: audio tokens spliced into text embeddings, then the Qwen2 decoder and LM head."""

from __future__ import annotations

import jax
import jax.numpy as jnp

from models.decoder import prefill_layers
from models.language_model import lm_logits, positions_from_mask, splice_audio
from models.qwen2_5_omni.audio_encoder import encode_audio
from models.qwen2_5_omni.config import ThinkerConfig
from models.qwen2_5_omni.params import ThinkerParams


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
