"""Parameter pytrees of the Qwen2.5-Omni thinker, each weight declared once.

Every container is a `flax.struct.dataclass`, so the arrays are pytree leaves. Linear weights are
stored `[in, out]` (the transpose of PyTorch's `[out, in]`); conv kernels `[kernel, in, out]`.
Per-layer weights are stacked on a leading `[layers]` axis so the layer loop is a `lax.scan`.

`param_info(cfg)` is the one declaration of every weight: a `ThinkerParams` whose leaves are
`ArrayInfo` (shape, logical axes, initialiser). Random initialisation (`init_params`), restore
targets (`abstract_params`), the checkpoint key map's shapes and sharding specs over a device mesh
(`partition_specs`) are all read from it.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping

import jax
import jax.numpy as jnp
from flax import struct
from jax.sharding import PartitionSpec

from models.config import AudioConfig, TextConfig, ThinkerConfig

Initializer = Callable[[jax.Array, tuple[int, ...], jnp.dtype], jax.Array]

WEIGHT_STD = 0.02  # std of random matrices (benchmarks, tests, training from scratch)
normal = jax.nn.initializers.normal(WEIGHT_STD)
ones = jax.nn.initializers.ones
zeros = jax.nn.initializers.zeros


@dataclasses.dataclass(frozen=True)
class ArrayInfo:
    """One weight: its shape, a logical name per axis (for sharding rules) and its initialiser."""

    shape: tuple[int, ...]
    logical_axes: tuple[str, ...]
    init: Initializer = normal

    def __post_init__(self) -> None:
        if len(self.shape) != len(self.logical_axes):
            raise ValueError(f"shape {self.shape} and logical axes {self.logical_axes} differ in rank")


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
    q_b: jax.Array | None  # [Hq * hd]; None without attention biases (Phi-3)
    k_w: jax.Array  # [D, Hkv * hd]
    k_b: jax.Array | None  # [Hkv * hd]
    v_w: jax.Array  # [D, Hkv * hd]
    v_b: jax.Array | None  # [Hkv * hd]
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


def decoder_layer_info(c: TextConfig) -> DecoderLayerParams:
    """`ArrayInfo` of the stacked decoder-layer weights."""
    n, d, f = c.num_hidden_layers, c.hidden_size, c.intermediate_size
    q, kv = c.num_attention_heads * c.head_dim, c.num_key_value_heads * c.head_dim

    def stacked(shape: tuple[int, ...], axes: tuple[str, ...], init: Initializer = normal) -> ArrayInfo:
        return ArrayInfo((n, *shape), ("layers", *axes), init)

    def bias(size: int, axis: str) -> ArrayInfo | None:
        return stacked((size,), (axis,), zeros) if c.attention_bias else None

    return DecoderLayerParams(
        attn_norm=stacked((d,), ("embed",), ones),
        q_w=stacked((d, q), ("embed", "q_heads")), q_b=bias(q, "q_heads"),
        k_w=stacked((d, kv), ("embed", "kv_heads")), k_b=bias(kv, "kv_heads"),
        v_w=stacked((d, kv), ("embed", "kv_heads")), v_b=bias(kv, "kv_heads"),
        o_w=stacked((q, d), ("q_heads", "embed")),
        mlp_norm=stacked((d,), ("embed",), ones),
        gate_w=stacked((d, f), ("embed", "mlp")), up_w=stacked((d, f), ("embed", "mlp")),
        down_w=stacked((f, d), ("mlp", "embed")),
    )  # fmt: skip


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


# ------------------------------------------------------------------------------------------------
# Everything else is read from the declaration


def thinker_shapes(cfg) -> ThinkerParams:
    """The family's parameter pytree (`ThinkerParams` for Qwen) whose leaves are the expected shape
    tuples (see `is_shape`)."""
    from models.family import family_of

    return jax.tree.map(lambda i: i.shape, family_of(cfg).param_info(cfg))


def is_shape(x: object) -> bool:
    """Whether `x` is a shape tuple (the leaves of `thinker_shapes`)."""
    return isinstance(x, tuple) and all(isinstance(i, int) for i in x)


def init_params(cfg, key: jax.Array, dtype: jnp.dtype = jnp.float32) -> ThinkerParams:
    """Random parameters of any family's config from each weight's initialiser (normal std 0.02;
    norms at 1, biases at 0)."""
    from models.family import family_of

    info = family_of(cfg).param_info(cfg)
    leaves, treedef = jax.tree.flatten(info)
    keys = jax.random.split(key, len(leaves))
    out = [i.init(k, i.shape, jnp.float32).astype(dtype) for i, k in zip(leaves, keys, strict=True)]
    return jax.tree.unflatten(treedef, out)


def abstract_params(cfg, dtype: jnp.dtype, shardings: object = None) -> ThinkerParams:
    """`jax.ShapeDtypeStruct` leaves (restore targets, AOT compilation). `shardings`: None, one
    `Sharding` for every leaf, or a ThinkerParams-shaped pytree of them."""
    from models.family import family_of

    info = family_of(cfg).param_info(cfg)
    if shardings is None or isinstance(shardings, jax.sharding.Sharding):
        return jax.tree.map(lambda i: jax.ShapeDtypeStruct(i.shape, dtype, sharding=shardings), info)
    return jax.tree.map(lambda i, s: jax.ShapeDtypeStruct(i.shape, dtype, sharding=s), info, shardings)


def partition_specs(cfg: ThinkerConfig, rules: Mapping[str, str | None]) -> ThinkerParams:
    """A `PartitionSpec` per weight from logical-axis rules, e.g. `{"mlp": "model", "q_heads": "model"}`
    (axes without a rule are replicated)."""
    return jax.tree.map(lambda i: PartitionSpec(*(rules.get(a) for a in i.logical_axes)), param_info(cfg))
