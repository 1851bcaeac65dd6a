"""Phi-4-Multimodal parity with transformers + peft at the released widths (depth cut to one decoder
layer and one Conformer block), from files transformers and peft wrote. About 8.4 GB and 80 s on
two CPU cores (the 200,064 x 3072 embedding alone is 2.5 GB in float32), so it runs on request:

    HR_JAX_HEAVY=1 python -m pytest tests/test_phi4_real_widths.py
"""

from __future__ import annotations

import gc
import os

import pytest
import torch
from conftest import RTOL, rel_err, waveform

import hr_jax
from hr_jax.checkpoint import convert
from hr_jax.engine import forward, generate_batch

pytest.importorskip("peft")
heavy = pytest.mark.skipif(os.environ.get("HR_JAX_HEAVY") != "1", reason="set HR_JAX_HEAVY=1 (80 s, 8.4 GB)")


@heavy
def test_released_widths_match_transformers_with_the_speech_lora(tmp_path):
    from transformers import Phi4MultimodalFeatureExtractor

    from hr_jax.testing.phi4 import build_tiny_phi4, load_reference, released_phi4_config

    hf = build_tiny_phi4(tmp_path / "hf", "native", config=released_phi4_config(1, 1))
    model = hr_jax.load(convert(hf, tmp_path / "jax", dtype="float32")).replace(stop_ids=())
    cfg = model.config
    assert (cfg.text.num_attention_heads, cfg.text.num_key_value_heads, cfg.text.rotary_dim) == (24, 8, 96)
    assert cfg.audio_token_id == 200011 and cfg.text.longrope.original_max_position_embeddings == 4096
    wave = waveform(7.3, 1)
    batch = hr_jax.make_batch(model, [wave], "What do you hear?")
    assert (batch.input_ids == 200011).sum() == -(-((len(wave) - 400) // 160 + 1) // 8)  # 12.5 per second
    got = forward(model, batch)
    ours = generate_batch(model, batch, max_new_tokens=4).token_ids[0]
    del model
    gc.collect()
    ref = load_reference(hf)
    feats = Phi4MultimodalFeatureExtractor()(wave, sampling_rate=16000, return_tensors="pt")
    ids = torch.from_numpy(batch.input_ids).long()
    kw = {"input_ids": ids, "audio_input_features": feats["audio_input_features"],
          "audio_embed_sizes": feats["audio_embed_sizes"]}  # fmt: skip
    with torch.no_grad():
        want = ref(**kw).logits.numpy()
        tokens = ref.generate(**kw, max_new_tokens=4, min_new_tokens=4, do_sample=False)
    assert rel_err(got, want) <= RTOL
    assert ours == tokens[0, ids.shape[1] :].tolist()
