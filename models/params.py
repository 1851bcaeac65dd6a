"""Parameter pytrees of the Qwen2.5-Omni thinker.

Every container is a `flax.struct.dataclass`, so the arrays are pytree leaves. Linear weights are
stored `[in, out]` (the transpose of PyTorch's `[out, in]`); conv kernels `[kernel, in, out]`.
Per-layer weights are stacked on a leading `[layers]` axis so the layer loop is a `lax.scan`.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import struct

from models.config import AudioConfig, TextConfig, ThinkerConfig


@struct.dataclass
class AudioLayerParams:
    """One (stacked: leading `[layers]`) Whisper encoder layer; d = d_model, f = ffn dim."""

    attn_norm_w: jax.Array  # [d]
    attn_norm_b: jax.Array  # [d]
    q_w: jax.Array  # [d, d]
    q_b: jax.Array  # [d]
    k_w: jax.Array  # [d, d] (no bias, as in Whisper)
    v_w: jax.Array  # [d, d]
    v_b: jax.Array  # [d]
    o_w: jax.Array  # [d, d]
    o_b: jax.Array  # [d]
    mlp_norm_w: jax.Array  # [d]
    mlp_norm_b: jax.Array  # [d]
    fc1_w: jax.Array  # [d, f]
    fc1_b: jax.Array  # [f]
    fc2_w: jax.Array  # [f, d]
    fc2_b: jax.Array  # [d]


@struct.dataclass
class AudioEncoderParams:
    conv1_w: jax.Array  # [3, mel, d]
    conv1_b: jax.Array  # [d]
    conv2_w: jax.Array  # [3, d, d]
    conv2_b: jax.Array  # [d]
    layers: AudioLayerParams  # stacked [layers, ...]
    ln_post_w: jax.Array  # [d]
    ln_post_b: jax.Array  # [d]
    proj_w: jax.Array  # [d, out]
    proj_b: jax.Array  # [out]
    # Present in every checkpoint but unused by the thinker's forward pass; kept so that a
    # conversion consumes every tensor and an export round-trips.
    bos_eos_embedding: jax.Array  # [2, out]


@struct.dataclass
class DecoderLayerParams:
    """One (stacked: leading `[layers]`) Qwen2 decoder layer; D = hidden, F = intermediate."""

    attn_norm: jax.Array  # [D]
    q_w: jax.Array  # [D, Hq * hd]
    q_b: jax.Array  # [Hq * hd]
    k_w: jax.Array  # [D, Hkv * hd]
    k_b: jax.Array  # [Hkv * hd]
    v_w: jax.Array  # [D, Hkv * hd]
    v_b: jax.Array  # [Hkv * hd]
    o_w: jax.Array  # [Hq * hd, D]
    mlp_norm: jax.Array  # [D]
    gate_w: jax.Array  # [D, F]
    up_w: jax.Array  # [D, F]
    down_w: jax.Array  # [F, D]


@struct.dataclass
class ThinkerParams:
    audio: AudioEncoderParams
    embed: jax.Array  # [V, D]
    layers: DecoderLayerParams  # stacked [layers, ...]
    norm: jax.Array  # [D]
    lm_head: jax.Array | None  # [D, V]; None when tied to `embed`


def audio_shapes(c: AudioConfig) -> AudioEncoderParams:
    """Expected shapes of the audio encoder parameters (tuples as leaves)."""
    d, f, n = c.d_model, c.encoder_ffn_dim, c.encoder_layers
    layer = AudioLayerParams(
        attn_norm_w=(n, d), attn_norm_b=(n, d),
        q_w=(n, d, d), q_b=(n, d), k_w=(n, d, d), v_w=(n, d, d), v_b=(n, d), o_w=(n, d, d), o_b=(n, d),
        mlp_norm_w=(n, d), mlp_norm_b=(n, d),
        fc1_w=(n, d, f), fc1_b=(n, f), fc2_w=(n, f, d), fc2_b=(n, d),
    )  # fmt: skip
    return AudioEncoderParams(
        conv1_w=(3, c.num_mel_bins, d), conv1_b=(d,), conv2_w=(3, d, d), conv2_b=(d,), layers=layer,
        ln_post_w=(d,), ln_post_b=(d,), proj_w=(d, c.output_dim), proj_b=(c.output_dim,),
        bos_eos_embedding=(2, c.output_dim),
    )  # fmt: skip


def decoder_layer_shapes(c: TextConfig) -> DecoderLayerParams:
    n, D, F = c.num_hidden_layers, c.hidden_size, c.intermediate_size
    q, kv = c.num_attention_heads * c.head_dim, c.num_key_value_heads * c.head_dim
    return DecoderLayerParams(
        attn_norm=(n, D), q_w=(n, D, q), q_b=(n, q), k_w=(n, D, kv), k_b=(n, kv), v_w=(n, D, kv),
        v_b=(n, kv), o_w=(n, q, D), mlp_norm=(n, D), gate_w=(n, D, F), up_w=(n, D, F), down_w=(n, F, D),
    )  # fmt: skip


def thinker_shapes(cfg: ThinkerConfig) -> ThinkerParams:
    """A ThinkerParams whose leaves are the expected shape tuples."""
    t = cfg.text
    return ThinkerParams(
        audio=audio_shapes(cfg.audio),
        embed=(t.vocab_size, t.hidden_size),
        layers=decoder_layer_shapes(t),
        norm=(t.hidden_size,),
        lm_head=None if t.tie_word_embeddings else (t.hidden_size, t.vocab_size),
    )


def _is_shape(x: object) -> bool:
    return isinstance(x, tuple) and all(isinstance(i, int) for i in x)


def init_params(cfg: ThinkerConfig, key: jax.Array, dtype: jnp.dtype = jnp.float32) -> ThinkerParams:
    """Random parameters (normal, std 0.02; norms at 1, biases at 0) — for benchmarks and tests."""
    shapes = thinker_shapes(cfg)
    leaves, treedef = jax.tree_util.tree_flatten(shapes, is_leaf=_is_shape)
    paths = [
        jax.tree_util.keystr(p) for p, _ in jax.tree_util.tree_flatten_with_path(shapes, is_leaf=_is_shape)[0]
    ]
    keys = jax.random.split(key, len(leaves))
    out = []
    for path, shape, k in zip(paths, leaves, keys, strict=True):
        if "norm" in path and not path.endswith("_b") or path.endswith("ln_post_w"):
            out.append(jnp.ones(shape, dtype))
        elif path.endswith("_b"):
            out.append(jnp.zeros(shape, dtype))
        else:
            out.append((0.02 * jax.random.normal(k, shape, jnp.float32)).astype(dtype))
    return jax.tree_util.tree_unflatten(treedef, out)
