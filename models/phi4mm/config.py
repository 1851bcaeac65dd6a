"""Static, hashable configuration of Phi-4-Multimodal's audio path: the Conformer audio encoder, its
speech projection and the Phi-3 decoder (`models.config.TextConfig` with no q/k/v biases, partial
rotary and LongRoPE).

`models.phi4mm.hf_config` reads both released `config.json` layouts into it.
"""

from __future__ import annotations

import dataclasses
import math
from typing import ClassVar

from models.config import DictConfig, TextConfig

MAX_ENCODER_FRAMES = 500  # transformers encodes longer audio as independent chunks of this many frames


@dataclasses.dataclass(frozen=True)
class ConformerConfig:
    """The Conformer encoder (`Phi4MultimodalAudioModel`); names as transformers' audio config."""

    input_size: int = 80  # mel bins
    hidden_size: int = 1024
    intermediate_size: int = 1536
    num_blocks: int = 24
    num_attention_heads: int = 16
    kernel_size: int = 3  # causal depthwise conv of the conv module
    time_reduction: int = 8  # NeMo conv subsampling: log2(time_reduction) stride-2 convs
    nemo_conv_channels: int = 1024
    bias_max_distance: int = 1000  # T5 relative bias: distances clipped to [-max, max - 1]
    bias_symmetric: bool = False
    chunk_size: int = -1  # streaming mask chunks (-1: every frame sees every frame)
    left_chunk: int = 18
    activation: str = "swish"  # of the feed-forward modules' gate
    conv_activation: str = "swish"
    conv_glu_type: str = "swish"
    nemo_activation: str = "relu"
    layer_norm_eps: float = 1e-5  # torch.nn.LayerNorm's default; the released config does not set it

    @property
    def head_dim(self) -> int:
        return self.hidden_size // self.num_attention_heads

    @property
    def num_subsampling_convs(self) -> int:
        return int(math.log2(self.time_reduction))

    @property
    def subsampled_mel(self) -> int:
        """Mel bins left after the stride-2 convs (the subsampling's output linear reads channels x these)."""
        f = self.input_size
        for _ in range(self.num_subsampling_convs):
            f = (f - 1) // 2 + 1
        return f

    @property
    def num_buckets(self) -> int:
        return self.bias_max_distance if self.bias_symmetric else 2 * self.bias_max_distance


@dataclasses.dataclass(frozen=True)
class Phi4Config(DictConfig):
    """Phi-4-Multimodal's audio path: the Phi-3 decoder (`text`) and the Conformer encoder (`audio`)."""

    family: ClassVar[str] = "phi4mm"
    text: TextConfig
    audio: ConformerConfig
    audio_token_id: int = 200011


def num_audio_tokens(num_frames, time_reduction: int = 8):
    """Audio tokens for `num_frames` feature frames: ceil(frames / time_reduction), 12.5 per second (an
    int for an int, elementwise for an integer array)."""
    return -(-num_frames // time_reduction)
