"""Parity with transformers at the released Qwen2.5-Omni widths (depth cut), from files transformers wrote.

The 3B test runs in CI (about a minute, ~7 GB). The 7B one (1 decoder layer) peaks at ~10 GB and takes
about 2 minutes; run it with

    HR_JAX_HEAVY=1 python -m pytest tests/test_real_widths.py
"""

from __future__ import annotations

import gc
import os

import numpy as np
import pytest
import torch
from conftest import RTOL, reference_logits, rel_err, torch_batch, waveform

from convert.hf_to_jax import convert
from hr_jax.batch import make_batch
from hr_jax.checkpoint import iter_leaves, load_params
from hr_jax.engine import forward, generate_batch
from hr_jax.model import load
from hr_jax.testing.checkpoints import build_tiny_checkpoint, load_reference, released_config

heavy = pytest.mark.skipif(os.environ.get("HR_JAX_HEAVY") != "1", reason="set HR_JAX_HEAVY=1 (2 min, 10 GB)")


@pytest.mark.parametrize("writer", ["save_pretrained", "save_pretrained_new_names"])
def test_both_tensor_spellings_written_by_transformers_convert_to_the_same_parameters(tmp_path, writer):
    files = build_tiny_checkpoint(tmp_path / "files", seed=3, extra_tensors=False)
    real = build_tiny_checkpoint(tmp_path / "real", seed=3, writer=writer)
    names = set(__import__("safetensors").safe_open(str(real / "model.safetensors"), "np").keys())
    legacy = writer == "save_pretrained"
    assert any(k.startswith("model.layers.") for k in names) == legacy
    assert any(k.startswith("model.language_model.") for k in names) != legacy
    _, want = load_params(convert(files, tmp_path / "a", dtype="float32"))
    _, got = load_params(convert(real, tmp_path / "b", dtype="float32"))
    for (name, x), (_, y) in zip(iter_leaves(got), iter_leaves(want), strict=True):
        np.testing.assert_array_equal(np.asarray(x), np.asarray(y), err_msg=name)


def _check_released(tmp_path, size: str, text_layers: int, new_tokens: int = 4) -> None:
    hf = build_tiny_checkpoint(
        tmp_path / "hf",
        config_overrides=released_config(size, text_layers, 1),
        seed=0,
        writer="save_pretrained",
    )
    model = load(convert(hf, tmp_path / "jax", dtype="float32")).replace(stop_ids=())
    cfg = model.config
    assert (cfg.audio_token_id, cfg.audio_start_token_id, cfg.audio_end_token_id) == (151646, 151647, 151648)
    assert cfg.audio.output_dim == cfg.text.hidden_size and cfg.audio.n_window == 100
    batch = make_batch(model, [waveform(2.3, 1)], "What do you hear?")
    assert (batch.input_ids == 151646).sum() == 57  # 230 mel frames
    got = forward(model, batch)
    ours = generate_batch(model, batch, ratio=0.0, max_new_tokens=new_tokens).token_ids
    del model
    gc.collect()
    ref = load_reference(hf)
    want = reference_logits(ref, batch)
    assert rel_err(got, want) <= RTOL
    with torch.no_grad():
        theirs = ref.generate(**torch_batch(batch), max_new_tokens=new_tokens, min_new_tokens=new_tokens,
                              do_sample=False, eos_token_id=None)  # fmt: skip
    np.testing.assert_array_equal(np.array(ours), theirs[:, batch.input_ids.shape[1] :].numpy())


def test_released_3b_widths_match_transformers(tmp_path):
    _check_released(tmp_path, "3B", text_layers=2)


@heavy
def test_released_7b_widths_match_transformers(tmp_path):
    _check_released(tmp_path, "7B", text_layers=1)
