"""Static, hashable configuration of the Qwen2.5-Omni thinker (audio encoder + Qwen2 decoder).

Configs are frozen dataclasses so they can be passed to `jax.jit` as static arguments.
`ThinkerConfig.from_hf` reads either a full Qwen2.5-Omni `config.json` (thinker under
`thinker_config`) or a thinker-only one.
"""

from __future__ import annotations

import dataclasses
from typing import Any


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
    tie_word_embeddings: bool = False

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
        """Builds the config from a Hugging Face `config.json` dict (full Omni or thinker-only)."""
        if "thinker_config" in cfg:
            cfg = cfg["thinker_config"]
        a, t = cfg["audio_config"], cfg["text_config"]
        rope = t.get("rope_parameters") or t.get("rope_scaling") or {}
        rope_theta = t.get("rope_theta", rope.get("rope_theta", 1000000.0))
        if rope.get("rope_type", rope.get("type", "default")) not in ("default", "mrope"):
            raise ValueError(f"unsupported rope type {rope.get('rope_type')!r}; only default (M-)RoPE is")
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
        )
        text = TextConfig(
            vocab_size=t["vocab_size"],
            hidden_size=t["hidden_size"],
            intermediate_size=t["intermediate_size"],
            num_hidden_layers=t["num_hidden_layers"],
            num_attention_heads=t["num_attention_heads"],
            num_key_value_heads=t["num_key_value_heads"],
            head_dim=head_dim,
            rms_norm_eps=t["rms_norm_eps"],
            rope_theta=float(rope_theta),
            max_position_embeddings=t["max_position_embeddings"],
            tie_word_embeddings=bool(cfg.get("tie_word_embeddings", t.get("tie_word_embeddings", False))),
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


def num_audio_tokens(num_mel_frames: int) -> int:
    """Audio tokens the encoder emits for `num_mel_frames` valid mel frames (conv stride 2, pool 2)."""
    after_conv = (num_mel_frames - 1) // 2 + 1
    return (after_conv - 2) // 2 + 1
