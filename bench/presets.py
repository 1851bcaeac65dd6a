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
"""

from __future__ import annotations

from hr_jax.checkpoint import config_from_hf
from hr_jax.testing.checkpoints import released_config, tiny_config
from models.config import ThinkerConfig

PRESETS = ("tiny", "small", "qwen2.5-omni-3b", "qwen2.5-omni-7b")

# Overrides of `tiny_config`, one per preset (the released shapes come from the test fixtures' table).
_OVERRIDES = {
    "tiny": {},
    "small": dict(
        vocab_size=8192, hidden_size=512, intermediate_size=1536, num_hidden_layers=8, num_attention_heads=8,
        num_key_value_heads=2, head_dim=64, rope_theta=1000000.0, max_position_embeddings=32768,
        audio_config=dict(d_model=256, encoder_layers=4, encoder_attention_heads=4, encoder_ffn_dim=1024,
                          n_window=100),
    ),
    "qwen2.5-omni-3b": released_config("3B", text_layers=36, audio_layers=32),
    "qwen2.5-omni-7b": released_config("7B", text_layers=28, audio_layers=32),
}  # fmt: skip


def preset_config(name: str) -> ThinkerConfig:
    """The `ThinkerConfig` of a preset (see the module docstring)."""
    if name not in _OVERRIDES:
        raise ValueError(f"unknown preset {name!r}; choose from {', '.join(PRESETS)}")
    return config_from_hf(tiny_config(**_OVERRIDES[name]))
