"""Named Phi-4-Multimodal shapes for the benchmarks, as transformers-native `config.json` dicts.

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

from typing import Any


def _config(hidden: int, layers: int, heads: int, kv: int, inter: int, vocab: int, audio: dict) -> dict:
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


def _conformer(width: int, ffn: int, blocks: int, heads: int) -> dict[str, Any]:
    return dict(hidden_size=width, intermediate_size=ffn, num_blocks=blocks, num_attention_heads=heads,
                nemo_conv_channels=width, bias_max_distance=500, ext_pw_out_channel=width,
                depthwise_separable_out_channel=width)  # fmt: skip


def presets() -> dict[str, dict[str, Any]]:
    """The benchmark presets (see the module docstring)."""
    return {
        "phi4-small": _config(512, 8, 8, 2, 1536, 8192, _conformer(256, 384, 4, 4)),
        "phi4-mini": _config(3072, 32, 24, 8, 8192, 200064, _conformer(1024, 1536, 24, 16)),
    }
