"""Parameter pytrees of Phi-4-Multimodal's audio path, each weight declared once (`param_info`).

Layouts as in `models.params`: linear weights `[in, out]`, per-layer weights stacked on a leading
`[layers]` axis. Convolutions: the subsampling's 2-D kernels `[kh, kw, in, out]` (depthwise ones
`[kh, kw, 1, channels]`), pointwise (kernel 1) convolutions as linear `[in, out]`, the conv module's
depthwise kernel `[kernel, channels]`. The decoder is `models.params.DecoderLayerParams` without q/k/v
biases; fused `qkv_proj` / `gate_up_proj` are split when converting.
"""

from __future__ import annotations

import jax
from flax import struct

from models.params import ArrayInfo, DecoderLayerParams, Initializer, decoder_layer_info, normal, ones, zeros
from models.phi4mm.config import ConformerConfig, Phi4Config


@struct.dataclass
class FeedForwardParams:
    """Half-step feed-forward module: LayerNorm, gated up projection (value half, then gate), down."""

    norm_w: jax.Array  # [d]
    norm_b: jax.Array  # [d]
    up_w: jax.Array  # [d, 2f]
    up_b: jax.Array  # [2f]
    down_w: jax.Array  # [f, d]
    down_b: jax.Array  # [d]


@struct.dataclass
class ConformerLayerParams:
    """One (stacked) Conformer block; d = hidden size."""

    ffn_in: FeedForwardParams
    attn_norm_w: jax.Array  # [d]
    attn_norm_b: jax.Array  # [d]
    q_w: jax.Array  # [d, d]
    q_b: jax.Array  # [d]
    k_w: jax.Array  # [d, d]
    k_b: jax.Array  # [d]
    v_w: jax.Array  # [d, d]
    v_b: jax.Array  # [d]
    o_w: jax.Array  # [d, d]
    o_b: jax.Array  # [d]
    conv_norm_w: jax.Array  # [d]
    conv_norm_b: jax.Array  # [d]
    glu_w: jax.Array  # [d, 2d] pointwise conv: value half, then gate half
    glu_b: jax.Array  # [2d]
    glu_b1: jax.Array  # [d] extra bias of the value half
    glu_b2: jax.Array  # [d] extra bias of the gate half
    dw_w: jax.Array  # [kernel, d] causal depthwise conv
    dw_b: jax.Array  # [d]
    pw_w: jax.Array  # [d, d] pointwise conv after the depthwise one
    pw_b: jax.Array  # [d]
    out_w: jax.Array  # [d, d] the conv module's output pointwise conv
    out_b: jax.Array  # [d]
    ffn_out: FeedForwardParams
    final_norm_w: jax.Array  # [d]
    final_norm_b: jax.Array  # [d]


@struct.dataclass
class SubsamplingParams:
    """NeMo "dw_striding" subsampling: a full 3x3 stride-2 conv, then (depthwise 3x3 stride 2, pointwise)
    pairs, ReLU after each stage; then a linear over (channels x remaining mel bins)."""

    conv0_w: jax.Array  # [3, 3, 1, C]
    conv0_b: jax.Array  # [C]
    dw_w: jax.Array  # [n - 1, 3, 3, 1, C]
    dw_b: jax.Array  # [n - 1, C]
    pw_w: jax.Array  # [n - 1, C, C]
    pw_b: jax.Array  # [n - 1, C]
    out_w: jax.Array  # [C * mel', d], rows channel-major (torch's flatten of [C, mel'])
    out_b: jax.Array  # [d]


@struct.dataclass
class ConformerEncoderParams:
    global_mean: jax.Array  # [mel]
    global_invstd: jax.Array  # [mel]
    subsampling: SubsamplingParams
    rel_bias: jax.Array  # [buckets, heads] T5-style relative attention bias
    layers: ConformerLayerParams  # stacked [blocks, ...]
    proj_up_w: jax.Array  # [d, D] speech projection: up, exact GELU, down
    proj_up_b: jax.Array  # [D]
    proj_down_w: jax.Array  # [D, D]
    proj_down_b: jax.Array  # [D]


@struct.dataclass
class Phi4Params:
    audio: ConformerEncoderParams
    embed: jax.Array  # [V, D]
    layers: DecoderLayerParams  # stacked [layers, ...], no q/k/v biases
    norm: jax.Array  # [D]
    lm_head: jax.Array | None  # [D, V]; None when tied to `embed` (the released model)


def conformer_info(c: ConformerConfig, out_dim: int) -> ConformerEncoderParams:
    """`ArrayInfo` of every audio-encoder weight (`out_dim`: the decoder's hidden size)."""
    d, f, n, ch = c.hidden_size, c.intermediate_size, c.num_blocks, c.nemo_conv_channels
    pairs = c.num_subsampling_convs - 1

    def stacked(shape: tuple[int, ...], axes: tuple[str, ...], init: Initializer = normal) -> ArrayInfo:
        return ArrayInfo((n, *shape), ("audio_layers", *axes), init)

    vec = ("audio_embed",)
    mat = ("audio_embed", "audio_heads")

    def ffn() -> FeedForwardParams:
        return FeedForwardParams(
            norm_w=stacked((d,), vec, ones),
            norm_b=stacked((d,), vec, zeros),
            up_w=stacked((d, 2 * f), ("audio_embed", "audio_mlp")),
            up_b=stacked((2 * f,), ("audio_mlp",), zeros),
            down_w=stacked((f, d), ("audio_mlp", "audio_embed")),
            down_b=stacked((d,), vec, zeros),
        )

    layer = ConformerLayerParams(
        ffn_in=ffn(),
        attn_norm_w=stacked((d,), vec, ones),
        attn_norm_b=stacked((d,), vec, zeros),
        q_w=stacked((d, d), mat),
        q_b=stacked((d,), ("audio_heads",), zeros),
        k_w=stacked((d, d), mat),
        k_b=stacked((d,), ("audio_heads",), zeros),
        v_w=stacked((d, d), mat),
        v_b=stacked((d,), ("audio_heads",), zeros),
        o_w=stacked((d, d), ("audio_heads", "audio_embed")),
        o_b=stacked((d,), vec, zeros),
        conv_norm_w=stacked((d,), vec, ones),
        conv_norm_b=stacked((d,), vec, zeros),
        glu_w=stacked((d, 2 * d), ("audio_embed", "audio_conv")),
        glu_b=stacked((2 * d,), ("audio_conv",), zeros),
        glu_b1=stacked((d,), vec, zeros),
        glu_b2=stacked((d,), vec, zeros),
        dw_w=stacked((c.kernel_size, d), ("conv_kernel", "audio_embed")),
        dw_b=stacked((d,), vec, zeros),
        pw_w=stacked((d, d), ("audio_embed", "audio_conv")),
        pw_b=stacked((d,), ("audio_conv",), zeros),
        out_w=stacked((d, d), ("audio_conv", "audio_embed")),
        out_b=stacked((d,), vec, zeros),
        ffn_out=ffn(),
        final_norm_w=stacked((d,), vec, ones),
        final_norm_b=stacked((d,), vec, zeros),
    )
    sub = SubsamplingParams(
        conv0_w=ArrayInfo((3, 3, 1, ch), ("conv_kernel", "conv_kernel", "conv_in", "audio_channels")),
        conv0_b=ArrayInfo((ch,), ("audio_channels",), zeros),
        dw_w=ArrayInfo(
            (pairs, 3, 3, 1, ch), ("conv_stage", "conv_kernel", "conv_kernel", "conv_in", "audio_channels")
        ),
        dw_b=ArrayInfo((pairs, ch), ("conv_stage", "audio_channels"), zeros),
        pw_w=ArrayInfo((pairs, ch, ch), ("conv_stage", "conv_in", "audio_channels")),
        pw_b=ArrayInfo((pairs, ch), ("conv_stage", "audio_channels"), zeros),
        out_w=ArrayInfo((ch * c.subsampled_mel, d), ("audio_channels", "audio_embed")),
        out_b=ArrayInfo((d,), vec, zeros),
    )
    return ConformerEncoderParams(
        global_mean=ArrayInfo((c.input_size,), ("mel",), zeros),
        global_invstd=ArrayInfo((c.input_size,), ("mel",), ones),
        subsampling=sub,
        rel_bias=ArrayInfo((c.num_buckets, c.num_attention_heads), ("rel_buckets", "audio_heads")),
        layers=layer,
        proj_up_w=ArrayInfo((d, out_dim), ("audio_embed", "embed")),
        proj_up_b=ArrayInfo((out_dim,), ("embed",), zeros),
        proj_down_w=ArrayInfo((out_dim, out_dim), ("embed", "embed_out")),
        proj_down_b=ArrayInfo((out_dim,), ("embed_out",), zeros),
    )


def param_info(cfg: Phi4Config) -> Phi4Params:
    """The declaration of every weight of the audio path: a `Phi4Params` with `ArrayInfo` leaves."""
    t = cfg.text
    return Phi4Params(
        audio=conformer_info(cfg.audio, t.hidden_size),
        embed=ArrayInfo((t.vocab_size, t.hidden_size), ("vocab", "embed")),
        layers=decoder_layer_info(t),
        norm=ArrayInfo((t.hidden_size,), ("embed",), ones),
        lm_head=None
        if t.tie_word_embeddings
        else ArrayInfo((t.hidden_size, t.vocab_size), ("embed", "vocab")),
    )
