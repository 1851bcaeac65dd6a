"""Static, hashable configuration of the Qwen2.5-Omni thinker (audio encoder + Qwen2 decoder).

Configs are frozen dataclasses so they can be passed to `jax.jit` as static arguments. They know
nothing of file formats: `hr_jax.checkpoint.hf_config` maps Hugging Face `config.json` both ways.
"""

from __future__ import annotations

import dataclasses
from typing import Any, ClassVar


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
    def num_heads(self) -> int:
        """Attention heads (every family's audio config names this `num_heads`)."""
        return self.encoder_attention_heads

    @property
    def window_frames(self) -> int:
        """Mel frames per attention window."""
        return 2 * self.n_window


@dataclasses.dataclass(frozen=True)
class LongRope:
    """LongRoPE frequency scaling (Phi-3 / Phi-4): per-frequency divisors, `short_factor` while the
    largest position of a forward pass is below `original_max_position_embeddings`, `long_factor`
    beyond it; cos and sin are both scaled by `attention_factor`."""

    short_factor: tuple[float, ...]
    long_factor: tuple[float, ...]
    original_max_position_embeddings: int
    attention_factor: float

    def __post_init__(self) -> None:
        object.__setattr__(self, "short_factor", tuple(float(x) for x in self.short_factor))
        object.__setattr__(self, "long_factor", tuple(float(x) for x in self.long_factor))


@dataclasses.dataclass(frozen=True)
class TextConfig:
    """The decoder both families share: Qwen2 (q/k/v biases, full RoPE) and Phi-3 (no biases, partial
    rotary, LongRoPE)."""

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
    attention_bias: bool = True  # q/k/v projections carry biases (Qwen2); Phi-3 has none
    partial_rotary_factor: float = 1.0  # share of each head's dims that RoPE rotates (Phi-4: 0.75)
    longrope: LongRope | None = None

    def __post_init__(self) -> None:
        if isinstance(self.longrope, dict):
            object.__setattr__(self, "longrope", LongRope(**self.longrope))
        half = self.rotary_dim // 2
        if self.longrope is not None and not (
            len(self.longrope.short_factor) == len(self.longrope.long_factor) == half
        ):
            raise ValueError(f"LongRoPE factors must have rotary_dim / 2 = {half} entries")

    @property
    def rotary_dim(self) -> int:
        """Leading dims of each head that RoPE rotates (the rest pass through)."""
        return int(self.head_dim * self.partial_rotary_factor)

    @property
    def group_size(self) -> int:
        """Query heads per KV head (GQA)."""
        return self.num_attention_heads // self.num_key_value_heads


@dataclasses.dataclass(frozen=True)
class ThinkerConfig:
    family: ClassVar[str] = "qwen2_5_omni"
    audio: AudioConfig
    text: TextConfig
    audio_token_id: int = 151646
    audio_start_token_id: int = 151647
    audio_end_token_id: int = 151648

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
