"""Parameter pytrees of the Qwen2.5-Omni thinker, each weight declared once (`param_info`).

Layouts as `models.params` says (linear `[in, out]`, conv kernels `[kernel, in, out]`, per-layer weights
stacked on a leading `[layers]` axis); the decoder is the shared `models.params.DecoderLayerParams`.
"""

from __future__ import annotations

import jax
from flax import struct

from models.params import ArrayInfo, DecoderLayerParams, Initializer, decoder_layer_info, normal, ones, zeros
from models.qwen2_5_omni.config import AudioConfig, ThinkerConfig


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
class ThinkerParams:
    audio: AudioEncoderParams
    embed: jax.Array  # [V, D]
    layers: DecoderLayerParams  # stacked [layers, ...]
    norm: jax.Array  # [D]
    lm_head: jax.Array | None  # [D, V]; None when tied to `embed`


# ------------------------------------------------------------------------------------------------
# The declaration


def audio_info(c: AudioConfig) -> AudioEncoderParams:
    """`ArrayInfo` of every audio-encoder weight."""
    d, f, n, o = c.d_model, c.encoder_ffn_dim, c.encoder_layers, c.output_dim

    def stacked(shape: tuple[int, ...], axes: tuple[str, ...], init: Initializer = normal) -> ArrayInfo:
        return ArrayInfo((n, *shape), ("audio_layers", *axes), init)

    vec = ("audio_embed",)
    mat = ("audio_embed", "audio_heads")
    layer = AudioLayerParams(
        attn_norm_w=stacked((d,), vec, ones), attn_norm_b=stacked((d,), vec, zeros),
        q_w=stacked((d, d), mat), q_b=stacked((d,), ("audio_heads",), zeros),
        k_w=stacked((d, d), mat),
        v_w=stacked((d, d), mat), v_b=stacked((d,), ("audio_heads",), zeros),
        o_w=stacked((d, d), ("audio_heads", "audio_embed")), o_b=stacked((d,), vec, zeros),
        mlp_norm_w=stacked((d,), vec, ones), mlp_norm_b=stacked((d,), vec, zeros),
        fc1_w=stacked((d, f), ("audio_embed", "audio_mlp")), fc1_b=stacked((f,), ("audio_mlp",), zeros),
        fc2_w=stacked((f, d), ("audio_mlp", "audio_embed")), fc2_b=stacked((d,), vec, zeros),
    )  # fmt: skip
    return AudioEncoderParams(
        conv1_w=ArrayInfo((3, c.num_mel_bins, d), ("conv_kernel", "mel", "audio_embed")),
        conv1_b=ArrayInfo((d,), vec, zeros),
        conv2_w=ArrayInfo((3, d, d), ("conv_kernel", "audio_embed", "audio_embed")),
        conv2_b=ArrayInfo((d,), vec, zeros),
        layers=layer,
        ln_post_w=ArrayInfo((d,), vec, ones),
        ln_post_b=ArrayInfo((d,), vec, zeros),
        proj_w=ArrayInfo((d, o), ("audio_embed", "embed")),
        proj_b=ArrayInfo((o,), ("embed",), zeros),
        bos_eos_embedding=ArrayInfo((2, o), ("audio_special", "embed")),
    )


def param_info(cfg: ThinkerConfig) -> ThinkerParams:
    """The declaration of every thinker weight: a `ThinkerParams` with `ArrayInfo` leaves."""
    t = cfg.text
    return ThinkerParams(
        audio=audio_info(cfg.audio),
        embed=ArrayInfo((t.vocab_size, t.hidden_size), ("vocab", "embed")),
        layers=decoder_layer_info(t),
        norm=ArrayInfo((t.hidden_size,), ("embed",), ones),
        lm_head=None
        if t.tie_word_embeddings
        else ArrayInfo((t.hidden_size, t.vocab_size), ("embed", "vocab")),
    )
