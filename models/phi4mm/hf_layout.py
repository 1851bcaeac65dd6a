"""Phi-4-Multimodal's two released safetensors layouts, and how each parameter leaf maps to them.

- Remote code (`microsoft/Phi-4-multimodal-instruct` main): LoRA'd linears stored as
  `….base_layer.weight` with `….lora_A.{speech,vision}.weight` / `lora_B` beside them, the encoder's
  `feed_forward_*.net.{0.linear,2}` and `self_attn.linear_{q,k,v,out}`, the projection as
  `audio_projection.speech.{0,2}`.
- transformers-native (`refs/pr/70`): plain weights with transformers' module names.

`native_name` maps the first to the second; `leaf_sources` says which native tensor (and which rows of
a fused one) fills each leaf, in which layout. The importer (`hf_import`) reads through it and the
exporter (`hf_export`) writes through its inverse.
"""

from __future__ import annotations

import re
from collections.abc import Callable

import numpy as np

from models.phi4mm.config import Phi4Config

AUDIO = "model.embed_tokens_extend.audio_embed."
VISION_PREFIXES = ("model.embed_tokens_extend.image_embed.", "model.vision_embed_tokens.")
LORA_TARGETS = ("self_attn.qkv_proj", "self_attn.o_proj", "mlp.gate_up_proj", "mlp.down_proj")

# Remote-code names -> transformers-native names (the layouts differ only here and in the LoRA).
_RENAMES = (
    (r"^(.*\.encoders\.\d+\.feed_forward_(?:in|out))\.net\.0\.linear\.", r"\1.gate_up_proj."),
    (r"^(.*\.encoders\.\d+\.feed_forward_(?:in|out))\.net\.2\.", r"\1.down_proj."),
    (r"^(.*\.encoders\.\d+\.self_attn)\.linear_(q|k|v)\.", r"\1.\2_proj."),
    (r"^(.*\.encoders\.\d+\.self_attn)\.linear_out\.", r"\1.o_proj."),
    (r"^(.*audio_embed)\.audio_projection\.speech\.0\.", r"\1.up_proj_for_speech."),
    (r"^(.*audio_embed)\.audio_projection\.speech\.2\.", r"\1.down_proj_for_speech."),
    (r"^(.*audio_embed)\.audio_projection\.vision\.0\.", r"\1.up_proj_for_vision_speech."),
    (r"^(.*audio_embed)\.audio_projection\.vision\.2\.", r"\1.down_proj_for_vision_speech."),
)


def native_name(key: str) -> str:
    key = key.replace(".base_layer.", ".")
    for pattern, repl in _RENAMES:
        key = re.sub(pattern, repl, key)
    return key


def is_vision(name: str) -> bool:
    return name.startswith(VISION_PREFIXES) or "_for_vision_speech." in name


# ------------------------------------------------------------------------------------------------
# Leaves: how each parameter leaf is read (torch layout -> ours)


def linear(x: np.ndarray) -> np.ndarray:
    return x.T


def conv2d(x: np.ndarray) -> np.ndarray:  # [out, in, kh, kw] -> [kh, kw, in, out]
    return x.transpose(2, 3, 1, 0)


def pointwise(x: np.ndarray) -> np.ndarray:  # Conv1d/2d kernel 1: [out, in, 1(, 1)] -> [in, out]
    return x.reshape(x.shape[0], x.shape[1]).T


def pointwise2d(x: np.ndarray) -> np.ndarray:  # Conv2d kernel 1x1: [out, in, 1, 1] -> [in, out]
    return x.reshape(x.shape[0], x.shape[1]).T


def depthwise1d(x: np.ndarray) -> np.ndarray:  # [d, 1, k] -> [k, d]
    return x[:, 0, :].T


def squeeze(x: np.ndarray) -> np.ndarray:  # [1, d, 1] -> [d]
    return x.reshape(-1)


def plain(x: np.ndarray) -> np.ndarray:
    return x


Source = tuple[str, Callable[[np.ndarray], np.ndarray], slice | None]  # native name, layout, rows to take


def leaf_sources(cfg: Phi4Config) -> dict[str, tuple[int | None, Callable[[int], Source]]]:
    """{leaf: (layers or None, layer -> (native tensor name, layout, row slice of a fused tensor))}."""
    e, a, t = AUDIO + "encoder.", cfg.audio, cfg.text
    q, kv, f = t.num_attention_heads * t.head_dim, t.num_key_value_heads * t.head_dim, t.intermediate_size
    fused = {
        "q_w": ("self_attn.qkv_proj", slice(0, q)),
        "k_w": ("self_attn.qkv_proj", slice(q, q + kv)),
        "v_w": ("self_attn.qkv_proj", slice(q + kv, q + 2 * kv)),
        "gate_w": ("mlp.gate_up_proj", slice(0, f)),
        "up_w": ("mlp.gate_up_proj", slice(f, 2 * f)),
    }
    out: dict[str, tuple[int | None, Callable[[int], Source]]] = {}

    def one(leaf: str, name: str, layout=plain) -> None:
        out[leaf] = (None, lambda i, name=name, layout=layout: (name, layout, None))

    def per(leaf: str, n: int, fmt: str, layout=plain, rows: slice | None = None) -> None:
        out[leaf] = (n, lambda i, fmt=fmt, layout=layout, rows=rows: (fmt.format(i=i), layout, rows))

    one("audio.global_mean", e + "encoder_embedding.global_mean")
    one("audio.global_invstd", e + "encoder_embedding.global_invstd")
    one("audio.subsampling.conv0_w", e + "embed.conv.0.weight", conv2d)
    one("audio.subsampling.conv0_b", e + "embed.conv.0.bias")
    pairs = a.num_subsampling_convs - 1
    out["audio.subsampling.dw_w"] = (pairs, lambda j: (e + f"embed.conv.{2 + 3 * j}.weight", conv2d, None))
    out["audio.subsampling.dw_b"] = (pairs, lambda j: (e + f"embed.conv.{2 + 3 * j}.bias", plain, None))
    out["audio.subsampling.pw_w"] = (
        pairs,
        lambda j: (e + f"embed.conv.{3 + 3 * j}.weight", pointwise2d, None),
    )
    out["audio.subsampling.pw_b"] = (pairs, lambda j: (e + f"embed.conv.{3 + 3 * j}.bias", plain, None))
    one("audio.subsampling.out_w", e + "embed.out.weight", linear)
    one("audio.subsampling.out_b", e + "embed.out.bias")
    one("audio.rel_bias", e + "relative_attention_bias_layer.bias_values.weight")
    n, L = a.num_blocks, e + "encoders.{i}."
    for ours, theirs in (("ffn_in", "feed_forward_in"), ("ffn_out", "feed_forward_out")):
        per(f"audio.layers.{ours}.norm_w", n, L + theirs + ".layer_norm.weight")
        per(f"audio.layers.{ours}.norm_b", n, L + theirs + ".layer_norm.bias")
        per(f"audio.layers.{ours}.up_w", n, L + theirs + ".gate_up_proj.weight", linear)
        per(f"audio.layers.{ours}.up_b", n, L + theirs + ".gate_up_proj.bias")
        per(f"audio.layers.{ours}.down_w", n, L + theirs + ".down_proj.weight", linear)
        per(f"audio.layers.{ours}.down_b", n, L + theirs + ".down_proj.bias")
    for ours, theirs in (
        ("attn_norm", "layer_norm_att"),
        ("final_norm", "layer_norm"),
        ("conv_norm", "conv.layer_norm"),
    ):
        per(f"audio.layers.{ours}_w", n, L + theirs + ".weight")
        per(f"audio.layers.{ours}_b", n, L + theirs + ".bias")
    for p in ("q", "k", "v", "o"):
        per(f"audio.layers.{p}_w", n, L + f"self_attn.{p}_proj.weight", linear)
        per(f"audio.layers.{p}_b", n, L + f"self_attn.{p}_proj.bias")
    for ours, theirs, layout in (
        ("glu", "conv.glu.ext_pw_conv_1d", pointwise),
        ("dw", "conv.dw_sep_conv_1d.dw_conv", depthwise1d),
        ("pw", "conv.dw_sep_conv_1d.pw_conv", pointwise),
        ("out", "conv.ext_pw_conv_1d", pointwise),
    ):
        per(f"audio.layers.{ours}_w", n, L + theirs + ".weight", layout)
        per(f"audio.layers.{ours}_b", n, L + theirs + ".bias")
    per("audio.layers.glu_b1", n, L + "conv.glu.b1", squeeze)
    per("audio.layers.glu_b2", n, L + "conv.glu.b2", squeeze)
    one("audio.proj_up_w", AUDIO + "up_proj_for_speech.weight", linear)
    one("audio.proj_up_b", AUDIO + "up_proj_for_speech.bias")
    one("audio.proj_down_w", AUDIO + "down_proj_for_speech.weight", linear)
    one("audio.proj_down_b", AUDIO + "down_proj_for_speech.bias")
    one("embed", "model.embed_tokens.weight")
    m, D = t.num_hidden_layers, "model.layers.{i}."
    per("layers.attn_norm", m, D + "input_layernorm.weight")
    per("layers.mlp_norm", m, D + "post_attention_layernorm.weight")
    for leaf, (module, rows) in fused.items():
        per(f"layers.{leaf}", m, D + module + ".weight", linear, rows)
    per("layers.o_w", m, D + "self_attn.o_proj.weight", linear)
    per("layers.down_w", m, D + "mlp.down_proj.weight", linear)
    one("norm", "model.norm.weight")
    if not t.tie_word_embeddings:
        one("lm_head", "lm_head.weight", linear)
    return out


def torch_shape(layout: Callable[[np.ndarray], np.ndarray], ours: tuple[int, ...]) -> tuple[int, ...]:
    """The source shape whose `layout` is `ours`."""
    if layout is linear:
        return tuple(reversed(ours))
    if layout is conv2d:
        kh, kw, cin, cout = ours
        return (cout, cin, kh, kw)
    if layout is pointwise:
        return (ours[1], ours[0], 1)
    if layout is pointwise2d:
        return (ours[1], ours[0], 1, 1)
    if layout is depthwise1d:
        return (ours[1], 1, ours[0])
    if layout is squeeze:
        return (1, ours[0], 1)
    return tuple(ours)


INVERSE: dict[Callable[[np.ndarray], np.ndarray], Callable[[np.ndarray], np.ndarray]] = {
    linear: lambda x: x.T,
    conv2d: lambda x: x.transpose(3, 2, 0, 1),
    pointwise: lambda x: x.T[:, :, None],
    pointwise2d: lambda x: x.T[:, :, None, None],
    depthwise1d: lambda x: x.T[:, None, :],
    squeeze: lambda x: x.reshape(1, -1, 1),
    plain: lambda x: x,
}
