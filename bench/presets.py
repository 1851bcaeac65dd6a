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

from models.config import AudioConfig, TextConfig, ThinkerConfig

PRESETS = ("tiny", "small", "qwen2.5-omni-3b", "qwen2.5-omni-7b")


def _special_ids(vocab: int) -> dict[str, int]:
    from hr_jax.tokenizer import special_token_ids

    return special_token_ids(vocab)


def preset_config(name: str) -> ThinkerConfig:
    """The `ThinkerConfig` of a preset (see the module docstring)."""
    if name == "tiny":
        from hr_jax.checkpoint import config_from_hf
        from hr_jax.testing.checkpoints import tiny_config

        return config_from_hf(tiny_config())
    if name == "small":
        vocab = 8192
        ids = _special_ids(vocab)
        return ThinkerConfig(
            audio=AudioConfig(
                d_model=256,
                encoder_layers=4,
                encoder_attention_heads=4,
                encoder_ffn_dim=1024,
                n_window=100,
                output_dim=512,
            ),
            text=TextConfig(
                vocab_size=vocab,
                hidden_size=512,
                intermediate_size=1536,
                num_hidden_layers=8,
                num_attention_heads=8,
                num_key_value_heads=2,
                head_dim=64,
                rope_theta=1000000.0,
            ),
            audio_token_id=ids["<|AUDIO|>"],
            audio_start_token_id=ids["<|audio_bos|>"],
            audio_end_token_id=ids["<|audio_eos|>"],
        )
    if name == "qwen2.5-omni-3b":
        return ThinkerConfig(
            audio=AudioConfig(output_dim=2048),
            text=TextConfig(
                vocab_size=151936,
                hidden_size=2048,
                intermediate_size=11008,
                num_hidden_layers=36,
                num_attention_heads=16,
                num_key_value_heads=2,
                head_dim=128,
            ),
        )
    if name == "qwen2.5-omni-7b":
        return ThinkerConfig(
            audio=AudioConfig(output_dim=3584),
            text=TextConfig(
                vocab_size=152064,
                hidden_size=3584,
                intermediate_size=18944,
                num_hidden_layers=28,
                num_attention_heads=28,
                num_key_value_heads=4,
                head_dim=128,
            ),
        )
    raise ValueError(f"unknown preset {name!r}; choose from {', '.join(PRESETS)}")
