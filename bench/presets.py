"""Named model shapes for the benchmarks (random weights; accuracy is irrelevant to timing).

- `tiny`: `hr_jax.testing.checkpoints.tiny_config()` (the test configuration: text hidden 64, 3 layers,
  audio d_model 32 with n_window 10). Only useful as a smoke test.
- `small`: a CPU-friendly thinker with the real structure: text hidden 512, 8 layers, 8 query / 2 KV
  heads of 64, SwiGLU 1536, vocab 8192; audio encoder d_model 256, 4 layers of 4 heads, ffn 1024,
  the real n_window 100 (25 audio tokens per second, like the released models).
- `qwen2.5-omni-3b` / `qwen2.5-omni-7b`: the released thinker shapes (config.json of
  Qwen/Qwen2.5-Omni-3B / -7B). 3B: hidden 2048, 36 layers, 16 q / 2 kv heads of 128, intermediate
  11008, vocab 151936. 7B: hidden 3584, 28 layers, 28 q / 4 kv heads of 128, intermediate 18944,
  vocab 152064 (transformers' `Qwen2_5OmniThinkerConfig` defaults are the 7B). Both: audio encoder
  d_model 1280, 32 layers, 20 heads, ffn 5120, n_window 100, output_dim = text hidden; rope_theta 1e6.
  The 3B's numbers were cross-checked against a public transcription of its config.json (the file
  itself is not in the offline index); untied LM head assumed for both.
- `phi4-small`: a CPU-friendly Phi-4-Multimodal with the real structure: Phi-3 decoder hidden 512,
  8 layers, 8 query / 2 KV heads of 64 (partial rotary 0.75, LongRoPE), SwiGLU 1536, vocab 8192, tied
  head; Conformer 256 wide, 4 blocks of 4 heads, FFN 384, 256 subsampling channels (12.5 audio tokens
  per second, like the released model).
- `phi4-mini`: the released `microsoft/Phi-4-multimodal-instruct` widths: hidden 3072, 32 layers,
  24 query / 8 KV heads of 128, intermediate 8192, vocab 200064, tied head, LongRoPE switching at 4096;
  Conformer 1024 wide, 24 blocks of 16 heads, FFN 1536, 1024 channels, bias distance 500 (the LoRA is
  merged, so it costs nothing at run time; random LongRoPE factors of the right length).
"""

from __future__ import annotations

from hr_jax.checkpoint import config_from_hf
from hr_jax.testing.checkpoints import released_config, tiny_config
from models.phi4mm.config import Phi4Config
from models.phi4mm.hf_config import phi4_config_from_hf
from models.qwen2_5_omni.config import ThinkerConfig

PRESETS = ("tiny", "small", "qwen2.5-omni-3b", "qwen2.5-omni-7b", "phi4-small", "phi4-mini")


def _phi4(hidden: int, layers: int, heads: int, kv: int, inter: int, vocab: int, audio: dict) -> dict:
    """A transformers-native Phi-4-Multimodal config.json (the fields `phi4_config_from_hf` reads)."""
    half = int(hidden // heads * 0.75) // 2
    return {
        "model_type": "phi4_multimodal",
        "vocab_size": vocab,
        "hidden_size": hidden,
        "intermediate_size": inter,
        "num_hidden_layers": layers,
        "num_attention_heads": heads,
        "num_key_value_heads": kv,
        "max_position_embeddings": 131072,
        "original_max_position_embeddings": 4096,
        "rms_norm_eps": 1e-5,
        "tie_word_embeddings": True,
        "sliding_window": 262144,
        "rope_parameters": {
            "rope_type": "longrope",
            "rope_theta": 10000.0,
            "partial_rotary_factor": 0.75,
            "short_factor": [1.0 + i / half for i in range(half)],
            "long_factor": [1.0 + 4 * i / half for i in range(half)],
        },
        "audio_config": dict(audio, audio_token_id=200011 if vocab > 200011 else vocab - 1),
    }


_PHI4 = {
    "phi4-small": _phi4(
        512,
        8,
        8,
        2,
        1536,
        8192,
        dict(
            hidden_size=256,
            intermediate_size=384,
            num_blocks=4,
            num_attention_heads=4,
            nemo_conv_channels=256,
            bias_max_distance=500,
            ext_pw_out_channel=256,
            depthwise_separable_out_channel=256,
        ),
    ),
    "phi4-mini": _phi4(
        3072,
        32,
        24,
        8,
        8192,
        200064,
        dict(
            hidden_size=1024,
            intermediate_size=1536,
            num_blocks=24,
            num_attention_heads=16,
            nemo_conv_channels=1024,
            bias_max_distance=500,
            ext_pw_out_channel=1024,
            depthwise_separable_out_channel=1024,
        ),
    ),
}

# Overrides of `tiny_config`, one per preset (the released shapes come from the test fixtures' table).
_OVERRIDES = {
    "tiny": {},
    "small": dict(
        vocab_size=8192,
        hidden_size=512,
        intermediate_size=1536,
        num_hidden_layers=8,
        num_attention_heads=8,
        num_key_value_heads=2,
        head_dim=64,
        rope_theta=1000000.0,
        max_position_embeddings=32768,
        audio_config=dict(
            d_model=256, encoder_layers=4, encoder_attention_heads=4, encoder_ffn_dim=1024, n_window=100
        ),
    ),
    "qwen2.5-omni-3b": released_config("3B", text_layers=36, audio_layers=32),
    "qwen2.5-omni-7b": released_config("7B", text_layers=28, audio_layers=32),
}


def preset_config(name: str) -> ThinkerConfig | Phi4Config:
    """The config of a preset (see the module docstring)."""
    if name in _PHI4:
        return phi4_config_from_hf(_PHI4[name])
    if name not in _OVERRIDES:
        raise ValueError(f"unknown preset {name!r}; choose from {', '.join(PRESETS)}")
    return config_from_hf(tiny_config(**_OVERRIDES[name]))
