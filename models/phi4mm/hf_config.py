"""Phi-4-Multimodal's `config.json`, in both released layouts, to `models.phi4mm.config.Phi4Config`.

- `microsoft/Phi-4-multimodal-instruct` main: remote code, `model_type` "phi4mm"; the audio encoder
  under `audio_processor.config` (`attention_dim`, `attention_heads`, `linear_units`,
  `nemo_conv_settings`, `relative_attention_bias_args`, ...), the speech LoRA under `speech_lora`.
- The transformers-native revision (`refs/pr/70`), `model_type` "phi4_multimodal": `audio_config` with
  transformers' names, LoRA as PEFT adapters in `speech-lora/`.

Every field whose other values would change the numerics in a way hr_jax does not implement is refused
by name (`UnsupportedConfig`), never ignored.
"""

from __future__ import annotations

import math
from typing import Any

from models.activations import ACTIVATIONS
from models.config import LongRope, TextConfig
from models.family import UnsupportedConfig
from models.phi4mm.config import ConformerConfig, Phi4Config

PHI4_MODEL_TYPES = ("phi4mm", "phi4_multimodal")


def is_phi4(hf: dict[str, Any]) -> bool:
    return hf.get("model_type") in PHI4_MODEL_TYPES


def _require(where: str, value: Any, want: Any) -> None:
    if value != want:
        raise UnsupportedConfig(f"{where}={value!r} is not implemented (hr_jax supports {want!r})")


def _audio_remote(hf: dict[str, Any]) -> dict[str, Any]:
    """transformers' audio-config names from the remote-code `audio_processor` / `embd_layer` blocks."""
    proc = hf.get("audio_processor")
    if not isinstance(proc, dict) or not isinstance(proc.get("config"), dict):
        raise UnsupportedConfig("config.json (model_type phi4mm) has no audio_processor.config block")
    a = dict(proc["config"])
    where = "audio_processor.config"
    _require(f"{where}.input_layer", a.get("input_layer", "nemo_conv"), "nemo_conv")
    _require(f"{where}.batch_norm", a.get("batch_norm", False), False)
    _require(f"{where}.causal", a.get("causal", True), True)
    _require(f"{where}.ext_pw_kernel_size", a.get("ext_pw_kernel_size", 1), 1)
    _require(f"{where}.bias_in_glu", a.get("bias_in_glu", True), True)
    nemo = a.get("nemo_conv_settings") or {}
    _require(f"{where}.nemo_conv_settings.subsampling", nemo.get("subsampling", "dw_striding"), "dw_striding")
    _require(f"{where}.nemo_conv_settings.is_causal", nemo.get("is_causal", False), False)
    rel = a.get("relative_attention_bias_args") or {}
    _require(f"{where}.relative_attention_bias_args.type", rel.get("type", "t5"), "t5")
    emb = (hf.get("embd_layer") or {}).get("audio_embd_layer") or {}
    _require("embd_layer.audio_embd_layer.use_qformer", emb.get("use_qformer", False), False)
    _require("embd_layer.audio_embd_layer.use_conv_downsample", emb.get("use_conv_downsample", False), False)
    _require("embd_layer.audio_embd_layer.projection_cls", emb.get("projection_cls", "mlp"), "mlp")
    _require("embd_layer.audio_embd_layer.downsample_rate", emb.get("downsample_rate", 1), 1)
    return {
        "hidden_size": a["attention_dim"],
        "num_attention_heads": a["attention_heads"],
        "intermediate_size": a["linear_units"],
        "num_blocks": a["num_blocks"],
        "kernel_size": a.get("kernel_size", 3),
        "input_size": a.get("input_size", 80),
        "time_reduction": a.get("time_reduction", 8),
        "nemo_conv_channels": nemo.get("conv_channels", 1024),
        "nemo_activation": nemo.get("activation", "relu"),
        "bias_max_distance": rel.get("t5_bias_max_distance", 1000),
        "bias_symmetric": rel.get("t5_bias_symmetric", False),
        "chunk_size": a.get("chunk_size", -1),
        "left_chunk": a.get("left_chunk", 18),
        "activation": a.get("activation", "swish"),
        "conv_activation": a.get("conv_activation", "swish"),
        "conv_glu_type": a.get("conv_glu_type", "swish"),
        "ext_pw_out_channel": a.get("ext_pw_out_channel", a["attention_dim"]),
        # the remote config spells it "seperable"
        "depthwise_separable_out_channel": a.get(
            "depthwise_seperable_out_channel", a.get("depthwise_separable_out_channel", a["attention_dim"])
        ),
        "depthwise_multiplier": a.get("depthwise_multiplier", 1),
        "audio_token_id": 200011,
    }


def _conformer(a: dict[str, Any], where: str) -> ConformerConfig:
    d = a.get("hidden_size", 1024)
    for field in ("ext_pw_out_channel", "depthwise_separable_out_channel"):
        _require(f"{where}.{field}", a.get(field, d), d)
    _require(f"{where}.depthwise_multiplier", a.get("depthwise_multiplier", 1), 1)
    _require(f"{where}.downsample_rate", a.get("downsample_rate", 1), 1)
    tr = a.get("time_reduction", 8)
    if tr < 2 or tr & (tr - 1):
        raise UnsupportedConfig(f"{where}.time_reduction={tr!r}: must be a power of two >= 2")
    for field, default in (
        ("activation", "swish"),
        ("conv_activation", "swish"),
        ("conv_glu_type", "swish"),
        ("nemo_activation", "relu"),
    ):
        value = a.get(field, default)
        if value not in ACTIVATIONS:
            raise UnsupportedConfig(
                f"{where}.{field}={value!r} is not implemented; choose from {sorted(ACTIVATIONS)}"
            )
    return ConformerConfig(
        input_size=a.get("input_size", 80),
        hidden_size=d,
        intermediate_size=a.get("intermediate_size", 1536),
        num_blocks=a.get("num_blocks", 24),
        num_attention_heads=a.get("num_attention_heads", 16),
        kernel_size=a.get("kernel_size", 3),
        time_reduction=tr,
        nemo_conv_channels=a.get("nemo_conv_channels", 1024),
        bias_max_distance=a.get("bias_max_distance", 1000),
        bias_symmetric=bool(a.get("bias_symmetric", False)),
        chunk_size=a.get("chunk_size", -1),
        left_chunk=a.get("left_chunk", 18),
        activation=a.get("activation", "swish"),
        conv_activation=a.get("conv_activation", "swish"),
        conv_glu_type=a.get("conv_glu_type", "swish"),
        nemo_activation=a.get("nemo_activation", "relu"),
    )


def _longrope(hf: dict[str, Any], rope: dict[str, Any], head_dim: int, partial: float) -> LongRope | None:
    kind = rope.get("rope_type", rope.get("type", "default"))
    if kind in ("su", "yarn"):  # transformers reads Phi-3's older names as longrope
        kind = "longrope"
    if kind == "default":
        return None
    if kind != "longrope":
        raise UnsupportedConfig(
            f"rope_type={kind!r} is not implemented; hr_jax supports longrope and default"
        )
    orig = hf.get("original_max_position_embeddings") or rope.get("original_max_position_embeddings")
    if orig is None:
        orig = hf["max_position_embeddings"]
    factor = rope.get("factor") or hf["max_position_embeddings"] / orig
    attention = rope.get("attention_factor")
    if attention is None:
        attention = 1.0 if factor <= 1.0 else math.sqrt(1 + math.log(factor) / math.log(orig))
    half = int(head_dim * partial) // 2
    for name in ("short_factor", "long_factor"):
        values = rope.get(name)
        if not isinstance(values, list) or len(values) != half:
            raise UnsupportedConfig(
                f"rope {name} must be a list of rotary_dim / 2 = {half} numbers, got {values!r}"
            )
    return LongRope(tuple(rope["short_factor"]), tuple(rope["long_factor"]), int(orig), float(attention))


def phi4_config_from_hf(hf: dict[str, Any]) -> Phi4Config:
    """`Phi4Config` of either released `config.json` layout; `UnsupportedConfig` names a field hr_jax
    cannot run exactly."""
    if not is_phi4(hf):
        raise UnsupportedConfig(f"model_type={hf.get('model_type')!r} is not Phi-4-Multimodal")
    if hf["model_type"] == "phi4mm":
        audio, where = _audio_remote(hf), "audio_processor.config"
    else:
        audio, where = dict(hf.get("audio_config") or {}), "audio_config"
    for field in ("attention_bias", "mlp_bias", "lm_head_bias"):
        _require(field, bool(hf.get(field, False)), False)
    act = hf.get("hidden_act", "silu")
    if act not in ACTIVATIONS:
        raise UnsupportedConfig(f"hidden_act={act!r} is not implemented; choose from {sorted(ACTIVATIONS)}")
    window = hf.get("sliding_window")
    max_pos = hf.get("max_position_embeddings", 131072)
    if window is not None and window < max_pos:
        raise UnsupportedConfig(
            f"sliding_window={window} is below max_position_embeddings={max_pos}: hr_jax runs full "
            "causal attention"
        )
    heads = hf.get("num_attention_heads", 32)
    hidden = hf.get("hidden_size", 3072)
    head_dim = hf.get("head_dim") or hidden // heads
    rope = dict(hf.get("rope_parameters") or hf.get("rope_scaling") or {})
    partial = float(rope.get("partial_rotary_factor", hf.get("partial_rotary_factor", 1.0)))
    theta = float(rope.get("rope_theta", hf.get("rope_theta", 10000.0)))
    text = TextConfig(
        vocab_size=hf.get("vocab_size", 200064),
        hidden_size=hidden,
        intermediate_size=hf.get("intermediate_size", 8192),
        num_hidden_layers=hf.get("num_hidden_layers", 32),
        num_attention_heads=heads,
        num_key_value_heads=hf.get("num_key_value_heads") or heads,
        head_dim=head_dim,
        rms_norm_eps=hf.get("rms_norm_eps", 1e-5),
        rope_theta=theta,
        max_position_embeddings=max_pos,
        tie_word_embeddings=bool(hf.get("tie_word_embeddings", False)),
        hidden_act=act,
        attention_bias=False,
        partial_rotary_factor=partial,
        longrope=_longrope(hf, rope, head_dim, partial),
    )
    return Phi4Config(
        audio=_conformer(audio, where), text=text, audio_token_id=audio.get("audio_token_id", 200011)
    )


def speech_lora_from_config(hf: dict[str, Any]) -> tuple[int, float] | None:
    """(rank, alpha) of the remote layout's in-file speech LoRA (`speech_lora`), or None."""
    lora = hf.get("speech_lora")
    if not isinstance(lora, dict):
        return None
    return int(lora["r"]), float(lora["lora_alpha"])
