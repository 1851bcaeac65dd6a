"""Static, hashable configuration of the Qwen2.5-Omni thinker (audio encoder + Qwen2 decoder).

Configs are frozen dataclasses so they can be passed to `jax.jit` as static arguments.
`ThinkerConfig.from_hf` reads either a full Qwen2.5-Omni `config.json` (thinker under
`thinker_config`) or a thinker-only one.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from models.activations import ACTIVATIONS


class UnsupportedConfig(ValueError):
    """A config field whose value would change the numerics in a way hr_jax does not implement."""


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


@dataclasses.dataclass(frozen=True)
class AudioConfig:
    """Whisper-style audio encoder with windowed attention."""

    num_mel_bins: int = 128
    d_model: int = 1280
    encoder_layers: int = 32
    encoder_attention_heads: int = 20
    encoder_ffn_dim: int = 5120
    n_window: int = 100  # conv2 frames per attention window; a window is 2 * n_window mel frames
    output_dim: int = 2048
    max_source_positions: int = 1500
    layer_norm_eps: float = 1e-5
    activation_function: str = "gelu"  # of the encoder layers' MLP; the convolutions always use exact GELU

    @property
    def head_dim(self) -> int:
        return self.d_model // self.encoder_attention_heads

    @property
    def window_frames(self) -> int:
        """Mel frames per attention window."""
        return 2 * self.n_window


@dataclasses.dataclass(frozen=True)
class TextConfig:
    """Qwen2 decoder."""

    vocab_size: int = 151936
    hidden_size: int = 2048
    intermediate_size: int = 11008
    num_hidden_layers: int = 36
    num_attention_heads: int = 16
    num_key_value_heads: int = 2
    head_dim: int = 128
    rms_norm_eps: float = 1e-6
    rope_theta: float = 1000000.0
    max_position_embeddings: int = 32768
    tie_word_embeddings: bool = False  # True: no lm_head parameter, logits use the embedding
    hidden_act: str = "silu"

    @property
    def group_size(self) -> int:
        """Query heads per KV head (GQA)."""
        return self.num_attention_heads // self.num_key_value_heads


@dataclasses.dataclass(frozen=True)
class ThinkerConfig:
    audio: AudioConfig
    text: TextConfig
    audio_token_id: int = 151646
    audio_start_token_id: int = 151647
    audio_end_token_id: int = 151648

    @classmethod
    def from_hf(cls, cfg: dict[str, Any]) -> ThinkerConfig:
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
            num_mel_bins=a["num_mel_bins"],
            d_model=a["d_model"],
            encoder_layers=a["encoder_layers"],
            encoder_attention_heads=a["encoder_attention_heads"],
            encoder_ffn_dim=a["encoder_ffn_dim"],
            n_window=a["n_window"],
            output_dim=a["output_dim"],
            max_source_positions=a["max_source_positions"],
            activation_function=a.get("activation_function", "gelu"),
        )
        text = TextConfig(
            vocab_size=t["vocab_size"],
            hidden_size=t["hidden_size"],
            intermediate_size=t["intermediate_size"],
            num_hidden_layers=t["num_hidden_layers"],
            num_attention_heads=t["num_attention_heads"],
            num_key_value_heads=t.get("num_key_value_heads") or t["num_attention_heads"],
            head_dim=head_dim,
            rms_norm_eps=t["rms_norm_eps"],
            rope_theta=float(rope_theta),
            max_position_embeddings=t["max_position_embeddings"],
            tie_word_embeddings=bool(cfg.get("tie_word_embeddings", False)),
            hidden_act=t.get("hidden_act", "silu"),
        )
        return cls(
            audio=audio,
            text=text,
            audio_token_id=cfg.get("audio_token_index", cfg.get("audio_token_id", 151646)),
            audio_start_token_id=cfg.get("audio_start_token_id", 151647),
            audio_end_token_id=cfg.get("audio_end_token_id", 151648),
        )

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> ThinkerConfig:
        return cls(
            audio=AudioConfig(**d["audio"]),
            text=TextConfig(**d["text"]),
            audio_token_id=d["audio_token_id"],
            audio_start_token_id=d["audio_start_token_id"],
            audio_end_token_id=d["audio_end_token_id"],
        )


def num_audio_tokens(num_mel_frames):
    """Audio tokens the encoder emits for `num_mel_frames` valid mel frames (conv stride 2, pool 2): an
    int for an int, elementwise for an integer array (the one place this rule is written)."""
    after_conv = (num_mel_frames - 1) // 2 + 1
    return (after_conv - 2) // 2 + 1
