"""The Hugging Face thinker `config.json`, both ways: `config_from_hf` (HF -> `ThinkerConfig`, refusing
by name every field hr_jax cannot run exactly) and `hf_config_dict` (`ThinkerConfig` -> HF)."""

from __future__ import annotations

import json
from typing import Any

from models.activations import ACTIVATIONS
from models.config import TextConfig
from models.family import UnsupportedConfig
from models.qwen2_5_omni.config import AudioConfig, ThinkerConfig

# Fields spelled the same in the HF config and in `AudioConfig` / `TextConfig`, read and written as is.
AUDIO_FIELDS = ("num_mel_bins", "d_model", "encoder_layers", "encoder_attention_heads", "encoder_ffn_dim",
                "n_window", "output_dim", "max_source_positions")  # fmt: skip
TEXT_FIELDS = ("vocab_size", "hidden_size", "intermediate_size", "num_hidden_layers", "num_attention_heads",
               "rms_norm_eps", "max_position_embeddings")  # fmt: skip


def _sliding_layers(t: dict[str, Any]) -> list[int]:
    """Decoder layers that transformers runs with a sliding window narrower than the positions."""
    n = t["num_hidden_layers"]
    window = t.get("sliding_window", 32768) if t.get("use_sliding_window", False) else None
    types = t.get("layer_types")
    if types is None:  # transformers' default: sliding from max_window_layers on, when a window is set
        start = t.get("max_window_layers", 28)
        types = ["sliding_attention" if window is not None and i >= start else "full_attention"
                 for i in range(n)]  # fmt: skip
    unknown = sorted(set(types) - {"full_attention", "sliding_attention"})
    if unknown or len(types) != n:
        raise UnsupportedConfig(
            f"text_config.layer_types={types!r}: need {n} entries of full_attention / sliding_attention"
        )
    if window is None or window >= t["max_position_embeddings"]:
        return []  # no window, or one no sequence can exceed: exactly full causal attention
    return [i for i, kind in enumerate(types) if kind == "sliding_attention"]


def check_hf(cfg: dict[str, Any]) -> None:
    """Raises `UnsupportedConfig` naming the first field of a thinker config hr_jax cannot run exactly.

    Checked: the decoder's sliding window (`use_sliding_window`, `sliding_window`, `max_window_layers`,
    `layer_types`), `hidden_act`, the audio `activation_function`, the RoPE type, and `n_window` against
    `max_source_positions`. `scale_embedding` is accepted either way: transformers' Qwen2.5-Omni audio
    encoder computes `embed_scale` from it but never applies it, so it does not change the numerics.
    """
    a, t = cfg["audio_config"], cfg["text_config"]
    sliding = _sliding_layers(t)
    if sliding:
        raise UnsupportedConfig(
            f"text_config.use_sliding_window=True with sliding_window={t.get('sliding_window')} on "
            f"layers {sliding} (max_window_layers={t.get('max_window_layers')}) is not implemented: "
            f"hr_jax runs full causal attention"
        )
    for where, field, default in (("text_config", "hidden_act", "silu"),
                                  ("audio_config", "activation_function", "gelu")):  # fmt: skip
        value = cfg[where].get(field, default)
        if value not in ACTIVATIONS:
            raise UnsupportedConfig(
                f"{where}.{field}={value!r} is not implemented; choose from {sorted(ACTIVATIONS)}"
            )
    rope = t.get("rope_parameters") or t.get("rope_scaling") or {}
    kind = rope.get("rope_type", rope.get("type", "default"))
    if kind not in ("default", "mrope"):
        raise UnsupportedConfig(f"text_config rope_type={kind!r} is not implemented; only default (M-)RoPE")
    if a["n_window"] > a["max_source_positions"]:
        raise UnsupportedConfig(
            f"audio_config.n_window={a['n_window']} exceeds max_source_positions="
            f"{a['max_source_positions']}: a window's positions would run past the positional table"
        )


def config_from_hf(cfg: dict[str, Any]) -> ThinkerConfig:
    """Builds the config from a Hugging Face `config.json` dict (full Omni or thinker-only).

    Reads every field that changes the thinker's numerics, as transformers reads it, and raises
    `UnsupportedConfig` naming the field for values hr_jax does not implement (see `check_hf`).
    `tie_word_embeddings` is the thinker-level key (default False), as in transformers 5: the
    text config's own key is not what ties the head. A converter that finds a stored
    `lm_head.weight` different from the embedding unties it again, as transformers does.
    """
    if "thinker_config" in cfg:
        cfg = cfg["thinker_config"]
    check_hf(cfg)
    a, t = cfg["audio_config"], cfg["text_config"]
    rope = t.get("rope_parameters") or t.get("rope_scaling") or {}
    rope_theta = t.get("rope_theta", rope.get("rope_theta", 1000000.0))
    head_dim = t.get("head_dim") or t["hidden_size"] // t["num_attention_heads"]
    audio = AudioConfig(
        **{k: a[k] for k in AUDIO_FIELDS}, activation_function=a.get("activation_function", "gelu")
    )
    text = TextConfig(
        **{k: t[k] for k in TEXT_FIELDS},
        num_key_value_heads=t.get("num_key_value_heads") or t["num_attention_heads"],
        head_dim=head_dim,
        rope_theta=float(rope_theta),
        tie_word_embeddings=bool(cfg.get("tie_word_embeddings", False)),
        hidden_act=t.get("hidden_act", "silu"),
    )
    return ThinkerConfig(
        audio=audio,
        text=text,
        audio_token_id=cfg.get("audio_token_index", cfg.get("audio_token_id", 151646)),
        audio_start_token_id=cfg.get("audio_start_token_id", 151647),
        audio_end_token_id=cfg.get("audio_end_token_id", 151648),
    )


def default_mrope_section(head_dim: int) -> list[int]:
    """(temporal, height, width) split of the head_dim/2 rotary frequencies, [16, 24, 24] for 128."""
    half = head_dim // 2
    t = half // 4
    h = (half - t) // 2
    return [t, h, half - t - h]


_PLACEHOLDER_VISION = {
    # hr_jax has no vision tower; a tiny placeholder keeps transformers from allocating the default
    # ~670M-parameter random one when it loads an exported thinker.
    "depth": 1, "hidden_size": 16, "intermediate_size": 32, "num_heads": 2, "fullatt_block_indexes": [0],
    "patch_size": 14, "spatial_merge_size": 2, "temporal_patch_size": 2, "window_size": 112,
}  # fmt: skip


def hf_config_dict(cfg: ThinkerConfig, base: dict[str, Any] | None = None, dtype: str = "float32") -> dict:
    """A thinker-only HF `config.json` for `cfg`, starting from `base` (HF thinker or full-Omni config)."""
    base = json.loads(json.dumps(base or {}))
    base = base.get("thinker_config", base)
    a, t = cfg.audio, cfg.text
    audio = base.setdefault("audio_config", {})
    audio.update({k: getattr(a, k) for k in AUDIO_FIELDS}, activation_function=a.activation_function)
    audio.setdefault("model_type", "qwen2_5_omni_audio_encoder")
    text = base.setdefault("text_config", {})
    text.update({k: getattr(t, k) for k in TEXT_FIELDS})
    text.update(
        num_key_value_heads=t.num_key_value_heads,
        head_dim=t.head_dim,
        tie_word_embeddings=t.tie_word_embeddings,
    )
    text.setdefault("model_type", "qwen2_5_omni_text")
    text["hidden_act"] = t.hidden_act
    text.setdefault("use_sliding_window", False)
    text.pop("layer_types", None)
    if isinstance(text.get("rope_parameters"), dict):
        text["rope_parameters"]["rope_theta"] = t.rope_theta
    else:  # the released checkpoints' (legacy) spelling, read by every transformers version
        half, sec = t.head_dim // 2, default_mrope_section(t.head_dim)
        text["rope_theta"] = t.rope_theta
        text.setdefault("rope_scaling", {"mrope_section": sec, "rope_type": "default", "type": "default"})
        if text["rope_scaling"].get("mrope_section") and sum(text["rope_scaling"]["mrope_section"]) != half:
            text["rope_scaling"]["mrope_section"] = sec
    base.setdefault("vision_config", dict(_PLACEHOLDER_VISION, out_hidden_size=t.hidden_size))
    base.update(
        architectures=["Qwen2_5OmniThinkerForConditionalGeneration"],
        model_type="qwen2_5_omni_thinker",
        audio_token_index=cfg.audio_token_id,
        audio_start_token_id=cfg.audio_start_token_id,
        audio_end_token_id=cfg.audio_end_token_id,
        tie_word_embeddings=t.tie_word_embeddings,
        torch_dtype=dtype,
    )
    base.pop("dtype", None)
    return base
