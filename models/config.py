"""Static, hashable configuration of the decoder both families share (`TextConfig`, `LongRope`).

Each family's own configuration (its audio encoder, the whole model) is in its package:
`models.qwen2_5_omni.config`, `models.phi4mm.config`.
"""

from __future__ import annotations

import dataclasses
import typing
from typing import Any


class DictConfig:
    """`to_dict` / `from_dict` of a frozen config dataclass whose fields may be config dataclasses
    themselves; `from_dict` reads the fields it declares and ignores other keys (a checkpoint's
    `hr_jax_config.json` carries its family, dtype and source beside them)."""

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)  # type: ignore[call-overload]

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Any:
        hints = typing.get_type_hints(cls)
        kw = {}
        for f in dataclasses.fields(cls):  # type: ignore[arg-type]
            if f.name in d:
                t, v = hints[f.name], d[f.name]
                kw[f.name] = t(**v) if dataclasses.is_dataclass(t) and isinstance(v, dict) else v
        return cls(**kw)


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
