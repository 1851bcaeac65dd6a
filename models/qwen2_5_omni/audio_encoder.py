"""Qwen2.5-Omni audio encoder (Whisper-style) with windowed attention as static shapes.

The reference attends only within windows of `2 * n_window` mel frames. Here the windows of every
row are folded into one batch axis `[B * C, window, ...]`, the tail window is masked, and after
the transformer the windows are unfolded again. Valid mel frames are a prefix of each row.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from models.activations import activation
from models.norms import layer_norm
from models.qwen2_5_omni.config import AudioConfig, num_audio_tokens
from models.qwen2_5_omni.params import AudioEncoderParams, AudioLayerParams


def sinusoid_table(length: int, channels: int, max_timescale: float = 10000.0) -> np.ndarray:
    """Whisper's sinusoidal positions `[length, channels]` (sin | cos halves)."""
    inc = np.log(max_timescale) / (channels // 2 - 1)
    inv = np.exp(-inc * np.arange(channels // 2, dtype=np.float32)).astype(np.float32)
    t = np.arange(length, dtype=np.float32)[:, None] * inv[None, :]
    return np.concatenate([np.sin(t), np.cos(t)], axis=1).astype(np.float32)


def conv1d_k3(x: jax.Array, w: jax.Array, b: jax.Array, stride: int) -> jax.Array:
    """Kernel-3, padding-1 conv. x `[N, T, Cin]`, w `[3, Cin, Cout]` -> `[N, ceil(T/stride), Cout]`."""
    t = x.shape[1]
    xp = jnp.pad(x, ((0, 0), (1, 1), (0, 0)))
    t_out = (t - 1) // stride + 1
    taps = [xp[:, j : j + stride * (t_out - 1) + 1 : stride] for j in range(3)]
    return sum(jnp.einsum("ntc,cd->ntd", tap, w[j]) for j, tap in enumerate(taps)) + b


def encoder_layer(h: jax.Array, p: AudioLayerParams, mask: jax.Array, cfg: AudioConfig) -> jax.Array:
    """h `[N, W, d]`, mask `[N, W]` (valid frames of each window)."""
    n, w, d = h.shape
    nh, hd = cfg.encoder_attention_heads, cfg.head_dim
    x = layer_norm(h, p.attn_norm_w, p.attn_norm_b, cfg.layer_norm_eps)
    q = (x @ p.q_w + p.q_b).reshape(n, w, nh, hd)
    k = (x @ p.k_w).reshape(n, w, nh, hd)
    v = (x @ p.v_w + p.v_b).reshape(n, w, nh, hd)
    attn = jax.nn.dot_product_attention(q, k, v, mask=mask[:, None, None, :])
    h = h + attn.reshape(n, w, d) @ p.o_w + p.o_b
    x = layer_norm(h, p.mlp_norm_w, p.mlp_norm_b, cfg.layer_norm_eps)
    x = activation(cfg.activation_function)(x @ p.fc1_w + p.fc1_b)
    return h + x @ p.fc2_w + p.fc2_b


def encode_audio(
    params: AudioEncoderParams, cfg: AudioConfig, features: jax.Array, num_frames: jax.Array
) -> tuple[jax.Array, jax.Array]:
    """Encodes log-mel features into audio tokens.

    Args:
      features: `[B, mel, T]` log-mel; frames `>= num_frames[b]` are ignored.
      num_frames: `[B]` valid mel frames per row.
    Returns:
      tokens `[B, Ntok, output_dim]` and `[B]` valid token counts (`num_audio_tokens(num_frames)`);
      `Ntok = ceil(C * n_window / 2)` with `C` windows of `2 * n_window` frames covering `T`.
    """
    bsz, _, t = features.shape
    win = cfg.window_frames
    c = -(-t // win)
    x = jnp.pad(features, ((0, 0), (0, 0), (0, c * win - t))).transpose(0, 2, 1)  # [B, C*win, mel]
    x = x.reshape(bsz * c, win, cfg.num_mel_bins).astype(params.conv1_w.dtype)
    # Valid mel frames of each window; the reference zero-pads the tail window before conv2.
    starts = (jnp.arange(c) * win)[None, :]
    win_len = jnp.clip(num_frames[:, None] - starts, 0, win).reshape(bsz * c)
    frame_ok = (jnp.arange(win)[None, :] < win_len[:, None])[..., None]
    # Frames past the end are zeros in the reference (it slices them off before windowing).
    x = jnp.where(frame_ok, x, 0)
    h = jax.nn.gelu(conv1d_k3(x, params.conv1_w, params.conv1_b, 1), approximate=False)
    h = jnp.where(frame_ok, h, 0)
    h = jax.nn.gelu(conv1d_k3(h, params.conv2_w, params.conv2_b, 2), approximate=False)  # [N, n_window, d]
    h = h + jnp.asarray(sinusoid_table(cfg.n_window, cfg.d_model), h.dtype)[None]
    tok_ok = jnp.arange(cfg.n_window)[None, :] < ((win_len - 1) // 2 + 1)[:, None]
    tok_ok = tok_ok & (win_len > 0)[:, None]
    # Fully padded windows attend to themselves only through the mask guard below.
    attn_mask = tok_ok | ~tok_ok.any(-1, keepdims=True)

    def body(h: jax.Array, layer: AudioLayerParams) -> tuple[jax.Array, None]:
        return encoder_layer(h, layer, attn_mask, cfg), None

    h, _ = jax.lax.scan(body, h, params.layers)
    h = h.reshape(bsz, c * cfg.n_window, cfg.d_model)
    if h.shape[1] % 2:
        h = jnp.pad(h, ((0, 0), (0, 1), (0, 0)))
    # Stride-2 average pooling over each row's (contiguous) conv frames; pairs may straddle windows.
    h = h.reshape(bsz, h.shape[1] // 2, 2, cfg.d_model).mean(axis=2)
    h = layer_norm(h, params.ln_post_w, params.ln_post_b, cfg.layer_norm_eps)
    tokens = h @ params.proj_w + params.proj_b
    return tokens, num_audio_tokens(num_frames)
