"""The thinker's input embedding: its audio encoder's tokens spliced into the text embeddings (the
layers and LM head are the shared `models.language_model.forward_from_embeds`)."""

from __future__ import annotations

import jax
import jax.numpy as jnp

from models.language_model import splice_audio
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
