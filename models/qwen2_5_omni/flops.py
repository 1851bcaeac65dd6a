"""The Qwen2.5-Omni audio encoder's FLOP and parameter counts (the benchmark's FLOP model,
`bench.flops`; one multiply-add = 2 FLOPs, elementwise work ignored).

Over `frames` mel frames cut into windows of `2·n_window` frames (the last one partial): conv1 (k3,
stride 1) `2·frames·3·mel·d`; conv2 (k3, stride 2) `2·t·3·d²` with `t` conv frames; per layer
`t·(8d² + 4df)` for q/k/v/o and fc1/fc2 plus windowed attention `Σ_w 4·t_w²·d` (QKᵀ and PV, `t_w`
frames of window w); the projection `2·(t/2)·d·out`.
"""

from __future__ import annotations

from models.qwen2_5_omni.config import AudioConfig


def encoder_params(a: AudioConfig) -> int:
    d, f = a.d_model, a.encoder_ffn_dim
    layer = 4 * d * d + 3 * d + 2 * d * f + f + d + 4 * d  # q,k,v,o (+q,v,o bias), fc1/fc2, 2 LayerNorms
    return (
        3 * a.num_mel_bins * d
        + d
        + 3 * d * d
        + d
        + a.encoder_layers * layer
        + 2 * d
        + d * a.output_dim
        + a.output_dim
    )


def encoder_flops(a: AudioConfig, frames: int) -> float:
    """FLOPs of the encoder and its projection on one clip of `frames` mel frames."""
    d, f, win = a.d_model, a.encoder_ffn_dim, a.window_frames
    windows = [min(win, frames - s) for s in range(0, frames, win)]
    conv_t = [(w - 1) // 2 + 1 for w in windows]  # conv2 frames per window
    t = sum(conv_t)
    fl = 2 * frames * 3 * a.num_mel_bins * d + 2 * t * 3 * d * d
    per_layer = t * (8 * d * d + 4 * d * f) + sum(4 * tw * tw * d for tw in conv_t)
    fl += a.encoder_layers * per_layer
    fl += 2 * (t // 2) * d * a.output_dim
    return fl
