"""Phi-4-Multimodal's Conformer audio encoder and speech projection, as static shapes.

transformers (`Phi4MultimodalAudioModel`) encodes a clip alone as: global mean / inverse-std
normalisation; NeMo conv subsampling (time / 8); if more than 500 subsampled frames remain, zero
padding to a multiple of 500 and independent 500-frame chunks; 24 Conformer blocks whose attention
adds a T5-style relative bias and the streaming mask *as a number* (+1 where allowed, never -inf);
the speech projection (up, exact GELU, down). Each row here is encoded exactly as transformers encodes
that clip alone (what AudioMarathon runs, batch 1): the bucket's extra frames are zeroed before every
convolution and masked out of attention, while the zero frames transformers itself pads a last chunk
with stay visible, as they are there.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np

from models.activations import activation
from models.norms import layer_norm
from models.phi4mm.config import MAX_ENCODER_FRAMES, ConformerConfig
from models.phi4mm.params import (
    ConformerEncoderParams,
    ConformerLayerParams,
    FeedForwardParams,
    SubsamplingParams,
)

_NEG = float(jnp.finfo(jnp.float32).min)


def _halve(n):
    """Frames after one kernel-3, stride-2, padding-1 convolution: ceil(n / 2)."""
    return (n - 1) // 2 + 1


def _zero_after(x: jax.Array, lengths: jax.Array) -> jax.Array:
    """x `[B, T, ...]` with frames `t >= lengths[b]` set to 0 (what a clip's own zero padding holds)."""
    keep = jnp.arange(x.shape[1])[None, :] < lengths[:, None]
    return jnp.where(keep.reshape(keep.shape + (1,) * (x.ndim - 2)), x, 0)


def _taps(x: jax.Array) -> list[jax.Array]:
    """The nine inputs `[B, T', F', C]` of a 3x3, stride-2, padding-1 window over x `[B, T, F, C]`:
    tap (i, j) of output (t, f) is input (2t + i - 1, 2f + j - 1), zero outside."""
    t, f = _halve(x.shape[1]), _halve(x.shape[2])
    xp = jnp.pad(x, ((0, 0), (1, 1), (1, 1), (0, 0)))
    return [xp[:, i : i + 2 * t - 1 : 2, j : j + 2 * f - 1 : 2] for i in range(3) for j in range(3)]


def _conv2d_full(x: jax.Array, w: jax.Array, b: jax.Array) -> jax.Array:
    """The first convolution (one input channel) as one matmul over the nine taps (XLA:CPU's direct
    convolution is slow at one input channel). x `[B, T, F, 1]`, w `[3, 3, 1, C]` -> `[B, T', F', C]`."""
    patches = jnp.concatenate(_taps(x), axis=-1)  # [B, T', F', 9], taps in (i, j) order
    return (
        jnp.einsum("btfk,kc->btfc", patches, w.reshape(9, -1), preferred_element_type=jnp.float32).astype(
            x.dtype
        )
        + b
    )


def _conv2d_depthwise(x: jax.Array, w: jax.Array, b: jax.Array) -> jax.Array:
    """Depthwise 3x3 stride-2 convolution as nine scaled taps. x `[B, T, F, C]`, w `[3, 3, 1, C]`."""
    return sum(tap * w[k // 3, k % 3, 0] for k, tap in enumerate(_taps(x))) + b


def subsample(
    p: SubsamplingParams, cfg: ConformerConfig, x: jax.Array, num_frames: jax.Array
) -> tuple[jax.Array, jax.Array]:
    """NeMo conv subsampling. x `[B, T, mel]` (normalised), num_frames `[B]` -> `[B, T', d]` and `[B]`
    valid frames `ceil(num_frames / time_reduction)`, with `T' = ceil(T / time_reduction)`."""
    act = activation(cfg.nemo_activation)
    lengths = num_frames
    h = _zero_after(x, lengths)[..., None]  # [B, T, mel, 1]
    h = act(_conv2d_full(h, p.conv0_w, p.conv0_b))
    lengths = _halve(lengths)
    h = _zero_after(h, lengths)
    for i in range(cfg.num_subsampling_convs - 1):
        h = _conv2d_depthwise(h, p.dw_w[i], p.dw_b[i])
        h = act(h @ p.pw_w[i] + p.pw_b[i])
        lengths = _halve(lengths)
        h = _zero_after(h, lengths)
    bsz, t, f, c = h.shape
    h = h.transpose(0, 1, 3, 2).reshape(bsz, t, c * f)  # channel-major, as torch flattens [C, F]
    return h @ p.out_w + p.out_b, lengths


def relative_bias(rel_bias: jax.Array, cfg: ConformerConfig, length: int) -> jax.Array:
    """T5-style bias `[heads, length, length]`: distance `key - query` clipped to `[-max, max - 1]`."""
    pos = np.arange(length)
    rel = np.clip(pos[None, :] - pos[:, None], -cfg.bias_max_distance, cfg.bias_max_distance - 1)
    idx = np.abs(rel) if cfg.bias_symmetric else rel + cfg.num_buckets // 2
    return rel_bias[jnp.asarray(idx)].transpose(2, 0, 1)


def streaming_mask(cfg: ConformerConfig, length: int) -> np.ndarray:
    """`[length, length]` bool: which frames a frame may see (transformers' `adaptive_enc_mask` with
    `left_chunk` chunks of history); all True for `chunk_size = -1`, the released setting."""
    starts = np.arange(0, length, cfg.chunk_size) if cfg.chunk_size > 0 else np.zeros((0,), np.int64)
    start_pad = np.concatenate([[0], starts])
    end_pad = np.concatenate([starts, [length]])
    i = np.arange(length)[:, None]
    chunk = np.argmax((i < end_pad[None]) & (i >= start_pad[None]), axis=1)
    left = start_pad[np.maximum(chunk - cfg.left_chunk, 0)]
    right = end_pad[np.minimum(chunk, len(starts))]
    j = np.arange(length)[None, :]
    return (j >= left[:, None]) & (j < right[:, None])


def _ffn(h: jax.Array, p: FeedForwardParams, cfg: ConformerConfig) -> jax.Array:
    x = layer_norm(h, p.norm_w, p.norm_b, cfg.layer_norm_eps)
    up = x @ p.up_w + p.up_b
    value, gate = jnp.split(up, 2, axis=-1)
    return (value * activation(cfg.activation)(gate)) @ p.down_w + p.down_b


def _attention(x: jax.Array, p: ConformerLayerParams, cfg: ConformerConfig, bias: jax.Array, keys: jax.Array):
    """x `[N, L, d]`; bias `[H, L, L]` (relative bias + streaming mask as numbers); keys `[N, L]`."""
    n, length, d = x.shape
    nh, hd = cfg.num_attention_heads, cfg.head_dim
    q = (x @ p.q_w + p.q_b).reshape(n, length, nh, hd)
    k = (x @ p.k_w + p.k_b).reshape(n, length, nh, hd)
    v = (x @ p.v_w + p.v_b).reshape(n, length, nh, hd)
    s = jnp.einsum("nqhd,nkhd->nhqk", q, k, preferred_element_type=jnp.float32) * (1.0 / math.sqrt(hd))
    s = jnp.where(keys[:, None, None, :], s + bias[None].astype(jnp.float32), _NEG)
    a = jax.nn.softmax(s, axis=-1).astype(v.dtype)
    o = jnp.einsum("nhqk,nkhd->nqhd", a, v, preferred_element_type=jnp.float32).astype(x.dtype)
    return o.reshape(n, length, d) @ p.o_w + p.o_b


def _conv_module(h: jax.Array, p: ConformerLayerParams, cfg: ConformerConfig) -> jax.Array:
    """LayerNorm, GLU pointwise conv, causal depthwise conv, pointwise conv, activation, pointwise conv."""
    d = h.shape[-1]
    x = layer_norm(h, p.conv_norm_w, p.conv_norm_b, cfg.layer_norm_eps)
    y = x @ p.glu_w + p.glu_b
    x = (y[..., :d] + p.glu_b1) * activation(cfg.conv_glu_type)(y[..., d:] + p.glu_b2)
    k = cfg.kernel_size
    xp = jnp.pad(x, ((0, 0), (k - 1, 0), (0, 0)))  # causal: frame t sees t - k + 1 .. t
    length = x.shape[1]
    x = sum(xp[:, j : j + length] * p.dw_w[j] for j in range(k)) + p.dw_b
    x = activation(cfg.conv_activation)(x @ p.pw_w + p.pw_b)
    return x @ p.out_w + p.out_b


def conformer_layer(
    h: jax.Array, p: ConformerLayerParams, cfg: ConformerConfig, bias: jax.Array, keys: jax.Array
) -> jax.Array:
    """One Conformer block over chunks h `[N, L, d]`."""
    res = h + 0.5 * _ffn(h, p.ffn_in, cfg)
    h = res + _attention(
        layer_norm(res, p.attn_norm_w, p.attn_norm_b, cfg.layer_norm_eps), p, cfg, bias, keys
    )
    h = h + _conv_module(h, p, cfg)
    h = h + 0.5 * _ffn(h, p.ffn_out, cfg)
    return layer_norm(h, p.final_norm_w, p.final_norm_b, cfg.layer_norm_eps)


def encode_frames(
    params: ConformerEncoderParams, cfg: ConformerConfig, features: jax.Array, num_frames: jax.Array
) -> tuple[jax.Array, jax.Array]:
    """The Conformer's output before the projection.

    Args:
      features: `[B, T, mel]` log-mel frames; frames `>= num_frames[b]` are ignored.
      num_frames: `[B]` valid frames per row.
    Returns:
      `[B, T', d]` encoder states (`T' = ceil(T / time_reduction)`) and `[B]` valid counts.
    """
    x = (features - params.global_mean) * params.global_invstd
    h, valid = subsample(params.subsampling, cfg, x.astype(params.subsampling.out_w.dtype), num_frames)
    bsz, t, d = h.shape
    chunk = MAX_ENCODER_FRAMES if t > MAX_ENCODER_FRAMES else t
    c = -(-t // chunk)
    h = jnp.pad(_zero_after(h, valid), ((0, 0), (0, c * chunk - t), (0, 0)))
    # Frames a row's own encoding has: its valid ones, plus the zeros it pads its last chunk with.
    seen = jnp.where(valid > MAX_ENCODER_FRAMES, -(-valid // MAX_ENCODER_FRAMES) * MAX_ENCODER_FRAMES, valid)
    keys = (jnp.arange(c * chunk)[None, :] < seen[:, None]).reshape(bsz * c, chunk)
    keys = keys | ~keys.any(-1, keepdims=True)  # chunks past a row's end: finite garbage, never read
    bias = relative_bias(params.rel_bias, cfg, chunk) + jnp.asarray(streaming_mask(cfg, chunk), jnp.float32)
    h = h.reshape(bsz * c, chunk, d)

    def body(h: jax.Array, layer: ConformerLayerParams) -> tuple[jax.Array, None]:
        return conformer_layer(h, layer, cfg, bias, keys), None

    h, _ = jax.lax.scan(body, h, params.layers)
    return h.reshape(bsz, c * chunk, d)[:, :t], valid


def encode_audio(
    params: ConformerEncoderParams, cfg: ConformerConfig, features: jax.Array, num_frames: jax.Array
) -> tuple[jax.Array, jax.Array]:
    """Audio tokens `[B, T', D]` (the decoder's width) and `[B]` valid token counts, from features
    `[B, mel, T]` (the layout `hr_jax.batch.Batch` holds) and `[B]` valid frames."""
    h, valid = encode_frames(params, cfg, features.transpose(0, 2, 1), num_frames)
    h = jax.nn.gelu(h @ params.proj_up_w + params.proj_up_b, approximate=False)
    return h @ params.proj_down_w + params.proj_down_b, valid
