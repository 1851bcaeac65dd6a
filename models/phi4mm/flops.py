"""Phi-4-Multimodal's Conformer encoder: FLOP and parameter counts (the benchmark's FLOP model,
`bench.flops`; one multiply-add = 2 FLOPs, elementwise work ignored).

Over `t = ceil(frames / 8)` subsampled frames: the NeMo subsampling (a full 3x3 conv to C channels,
then depthwise 3x3 + pointwise C² pairs, then a linear of `C·mel'` to d), per block `t·(8d² + 12df)`
for q/k/v/o and the two gated half-step FFNs, the conv module `t·(8d² + 2dk)` and attention
`4·t_c²·d` per 500-frame chunk; the projection `2t·d·D + 2t·D²`.
"""

from __future__ import annotations

from models.phi4mm.config import MAX_ENCODER_FRAMES, ConformerConfig


def conformer_params(a: ConformerConfig, out_dim: int) -> int:
    d, f, c, k = a.hidden_size, a.intermediate_size, a.nemo_conv_channels, a.kernel_size
    ffn = 2 * d + 2 * d * f + 2 * f + f * d + d
    block = (
        2 * ffn + 4 * (d * d + d) + 3 * 2 * d + (2 * d * d + 2 * d + 2 * d) + (k * d + d) + 2 * (d * d + d)
    )
    pairs = a.num_subsampling_convs - 1
    sub = 9 * c + c + pairs * (9 * c + c + c * c + c) + c * a.subsampled_mel * d + d
    return sub + a.num_blocks * block + d * out_dim + out_dim + out_dim * out_dim + out_dim


def conformer_flops(a: ConformerConfig, out_dim: int, frames: int) -> float:
    """FLOPs of the encoder and the speech projection to `out_dim` on one clip of `frames` frames."""
    d, f, c, k = a.hidden_size, a.intermediate_size, a.nemo_conv_channels, a.kernel_size
    t_, mel = frames, a.input_size
    fl = 0.0
    for stage in range(a.num_subsampling_convs):
        t_, mel = (t_ - 1) // 2 + 1, (mel - 1) // 2 + 1
        fl += 2 * t_ * mel * 9 * c  # the full 1 -> C conv, then depthwise convs: 9 taps per channel
        if stage:
            fl += 2 * t_ * mel * c * c  # pointwise
    t = t_
    fl += 2 * t * c * a.subsampled_mel * d
    chunks = [min(MAX_ENCODER_FRAMES, t - s) for s in range(0, t, MAX_ENCODER_FRAMES)] if t else []
    per_block = (
        t * (8 * d * d + 12 * d * f) + t * (8 * d * d + 2 * d * k) + sum(4 * n * n * d for n in chunks)
    )
    fl += a.num_blocks * per_block + 2 * t * d * out_dim + 2 * t * out_dim * out_dim
    return fl
