"""Reading Hugging Face thinker configs as transformers reads them: the tie rule, every field that changes
the numerics (implemented and checked against transformers, or refused by name), and unpruned runs on
models no deeper than the pruning layer."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from conftest import RTOL, reference_logits, rel_err, waveform

from convert.hf_to_jax import ConversionError, convert
from hr_jax.batch import make_batch
from hr_jax.checkpoint import UnsupportedConfig, load_params
from hr_jax.engine import forward, generate_batch, prefill
from hr_jax.model import load
from hr_jax.testing.checkpoints import build_tiny_checkpoint, load_reference, tiny_config
from models.qwen2_5_omni.hf_config import config_from_hf


def _edit_config(hf_dir: Path, edit) -> Path:
    cfg = json.loads((hf_dir / "config.json").read_text())
    edit(cfg)
    (hf_dir / "config.json").write_text(json.dumps(cfg, indent=2))
    return hf_dir


def _logits_pair(hf_dir: Path, out: Path, seconds: float = 1.1) -> tuple[np.ndarray, np.ndarray]:
    model, ref = load(convert(hf_dir, out, dtype="float32")), load_reference(hf_dir)
    batch = make_batch(model, [waveform(seconds)], "What do you hear?")
    return forward(model, batch), reference_logits(ref, batch)


def _set_lm_head(hf_dir: Path, value) -> None:
    from safetensors.torch import load_file, save_file

    sd = load_file(str(hf_dir / "model.safetensors"))
    sd["lm_head.weight"] = value(sd)
    save_file(sd, str(hf_dir / "model.safetensors"), metadata={"format": "pt"})


# ------------------------------------------------------------------ the tie rule


def test_text_config_tie_alone_does_not_tie_the_stored_head(tmp_path):
    hf = build_tiny_checkpoint(tmp_path / "hf", extra_tensors=False)
    _edit_config(hf, lambda c: c["text_config"].update(tie_word_embeddings=True))
    got, want = _logits_pair(hf, tmp_path / "jax")
    assert not load_params(tmp_path / "jax")[0].text.tie_word_embeddings
    assert rel_err(got, want) <= RTOL


def test_thinker_tie_with_a_different_stored_head_keeps_the_head_as_transformers_does(tmp_path, capsys):
    hf = build_tiny_checkpoint(
        tmp_path / "hf", config_overrides={"tie_word_embeddings": True}, extra_tensors=False
    )
    _set_lm_head(hf, lambda sd: sd["model.embed_tokens.weight"].flip(0).clone())
    got, want = _logits_pair(hf, tmp_path / "jax")
    cfg, params = load_params(tmp_path / "jax")
    assert not cfg.text.tie_word_embeddings and params.lm_head is not None
    assert "differs from model.embed_tokens.weight" in capsys.readouterr().err
    assert rel_err(got, want) <= RTOL


def test_thinker_tie_with_an_equal_stored_head_is_tied(tmp_path):
    hf = build_tiny_checkpoint(
        tmp_path / "hf", config_overrides={"tie_word_embeddings": True}, extra_tensors=False
    )
    _set_lm_head(hf, lambda sd: sd["model.embed_tokens.weight"].clone())
    got, want = _logits_pair(hf, tmp_path / "jax")
    cfg, params = load_params(tmp_path / "jax")
    assert cfg.text.tie_word_embeddings and params.lm_head is None
    assert rel_err(got, want) <= RTOL


def test_untied_config_without_a_stored_head_is_refused(tmp_path):
    hf = build_tiny_checkpoint(
        tmp_path / "hf", config_overrides={"tie_word_embeddings": True}, extra_tensors=False
    )
    _edit_config(hf, lambda c: c.update(tie_word_embeddings=False))
    with pytest.raises(ConversionError, match=r"missing tensor 'lm_head\.weight'"):
        convert(hf, tmp_path / "jax", dtype="float32")


# ------------------------------------------------------------------ fields implemented, against transformers


@pytest.mark.parametrize(
    "overrides",
    [
        {"text_config": {"hidden_act": "gelu_pytorch_tanh"}},
        {"audio_config": {"activation_function": "quick_gelu"}},
        {"audio_config": {"activation_function": "relu", "scale_embedding": True}},
    ],
    ids=["text_gelu_tanh", "audio_quick_gelu", "audio_relu_scale_embedding"],
)
def test_activation_and_scale_embedding_fields_match_transformers(tmp_path, overrides):
    hf = build_tiny_checkpoint(tmp_path / "hf", config_overrides=overrides, extra_tensors=False)
    got, want = _logits_pair(hf, tmp_path / "jax")
    assert rel_err(got, want) <= RTOL


def test_sliding_window_switched_off_or_wider_than_the_positions_is_full_attention():
    off = tiny_config(text_config={"use_sliding_window": False, "sliding_window": 8, "max_window_layers": 1})
    wide = tiny_config(
        text_config={"use_sliding_window": True, "sliding_window": 4096, "max_window_layers": 0}
    )
    assert config_from_hf(off) == config_from_hf(wide) == config_from_hf(tiny_config())


# ------------------------------------------------------------------ fields refused by name


@pytest.mark.parametrize(
    "overrides, match",
    [
        ({"text_config": {"use_sliding_window": True, "sliding_window": 64, "max_window_layers": 1}},
         r"use_sliding_window=True with sliding_window=64 on layers \[1, 2\]"),
        ({"text_config": {"use_sliding_window": True, "sliding_window": 64,
                          "layer_types": ["full_attention", "sliding_attention", "full_attention"]}},
         r"sliding_window=64 on layers \[1\]"),
        ({"text_config": {"layer_types": ["full_attention", "chunked_attention", "full_attention"]}},
         r"layer_types="),
        ({"text_config": {"hidden_act": "xielu"}}, r"text_config\.hidden_act='xielu'"),
        ({"audio_config": {"activation_function": "gelu_10"}}, r"audio_config\.activation_function='gelu_"),
        ({"audio_config": {"n_window": 20, "max_source_positions": 16}}, r"n_window=20 exceeds max_source"),
    ],
    ids=["sliding_from_max_window_layers", "sliding_layer_types", "layer_type", "hidden_act",
         "audio_activation", "n_window"],
)  # fmt: skip
def test_config_fields_hr_jax_does_not_implement_are_refused_by_name(overrides, match):
    with pytest.raises(UnsupportedConfig, match=match):
        config_from_hf(tiny_config(**overrides))


def test_rope_scaling_types_are_refused_by_name():
    cfg = tiny_config()
    cfg["text_config"]["rope_parameters"].update(rope_type="yarn", factor=4.0)
    with pytest.raises(UnsupportedConfig, match=r"rope_type='yarn'"):
        config_from_hf(cfg)


def test_converter_refuses_an_unsupported_config_and_leaves_nothing(tmp_path):
    hf = build_tiny_checkpoint(tmp_path / "hf", extra_tensors=False)
    _edit_config(hf, lambda c: c["text_config"].update(hidden_act="xielu"))
    with pytest.raises(UnsupportedConfig, match="hidden_act"):
        convert(hf, tmp_path / "out", dtype="float32")
    assert not (tmp_path / "out").exists()


def test_converter_refuses_a_preprocessor_config_it_cannot_follow(tmp_path):
    hf = build_tiny_checkpoint(tmp_path / "hf", extra_tensors=False)
    pre = json.loads((hf / "preprocessor_config.json").read_text())
    (hf / "preprocessor_config.json").write_text(json.dumps(dict(pre, dither=1e-5)))
    with pytest.raises(ValueError, match="dither="):
        convert(hf, tmp_path / "out", dtype="float32")


# ------------------------------------------------------------------ ratio 0 on shallow models


@pytest.mark.parametrize("layers", [1, 2])
def test_ratio_zero_runs_on_a_model_no_deeper_than_the_prune_layer(tmp_path, layers):
    hf = build_tiny_checkpoint(
        tmp_path / "hf", config_overrides={"num_hidden_layers": layers}, extra_tensors=False
    )
    model = load(convert(hf, tmp_path / "jax", dtype="float32"))
    batch = make_batch(model, [waveform(0.8)], "hi")
    full = forward(model, batch)
    np.testing.assert_allclose(prefill(model, batch, 0.0).logits[0], full[0, -1], rtol=1e-5, atol=1e-5)
    out = generate_batch(model, batch, 0.0, max_new_tokens=3)
    assert out.num_generated[0] >= 1
    with pytest.raises(ValueError, match=r"prune layer must be in \[1, "):
        prefill(model, batch, 0.5)
