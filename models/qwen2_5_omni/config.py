"""Static, hashable configuration of the Qwen2.5-Omni thinker: its audio encoder (`AudioConfig`) and
the whole (`ThinkerConfig`, with the shared decoder's `models.config.TextConfig`).

Configs are frozen dataclasses so they can be passed to `jax.jit` as static arguments. They know
nothing of file formats: `models.qwen2_5_omni.hf_config` maps Hugging Face `config.json` both ways.
"""

from __future__ import annotations

import dataclasses
from typing import ClassVar

from models.config import DictConfig, TextConfig


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
class ThinkerConfig(DictConfig):
    """Qwen2.5-Omni's thinker: the Whisper-style audio encoder (`audio`) and the Qwen2 decoder (`text`);
    the audio run sits between `<|audio_bos|>` and `<|audio_eos|>`."""

    family: ClassVar[str] = "qwen2_5_omni"
    audio: AudioConfig
    text: TextConfig
    audio_token_id: int = 151646
    audio_start_token_id: int = 151647
    audio_end_token_id: int = 151648


def num_audio_tokens(num_mel_frames):
    """Audio tokens the encoder emits for `num_mel_frames` valid mel frames (conv stride 2, pool 2): an
    int for an int, elementwise for an integer array (the one place this rule is written)."""
    after_conv = (num_mel_frames - 1) // 2 + 1
    return (after_conv - 2) // 2 + 1
