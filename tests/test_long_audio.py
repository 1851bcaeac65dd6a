"""Long audio, the regime HeadRouter exists for: minutes of audio through the streaming attention against
transformers, and audio beyond the released 300 s taken only when the caller asks (`truncation=False`,
as users pass `audio_kwargs={"truncation": False}` to the processor)."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import RTOL, reference_logits, rel_err, waveform

from hr_jax.batch import make_batch
from hr_jax.engine import forward
from hr_jax.model import load
from hr_jax.testing.checkpoints import load_reference
from models.qwen2_5_omni.features import FeatureConfig, extract_features

SEVEN_MINUTES = 420.0


@pytest.fixture(scope="module")
def long_context(tmp_path_factory):
    """A tiny thinker whose decoder holds 7 minutes of audio (10,500 audio tokens)."""
    from convert.hf_to_jax import convert
    from hr_jax.testing.checkpoints import build_tiny_checkpoint

    root = tmp_path_factory.mktemp("long")
    hf = build_tiny_checkpoint(root / "hf", config_overrides={"max_position_embeddings": 16384}, seed=7)
    return hf, convert(hf, root / "jax", dtype="float32")


def test_a_padded_batch_of_minutes_of_audio_matches_transformers(tiny_ckpt):
    hf_dir, jax_dir = tiny_ckpt
    model, ref = load(jax_dir), load_reference(hf_dir)
    batch = make_batch(model, [waveform(120.0, 1), waveform(95.3, 2)], ["Describe it.", "What is said?"])
    assert batch.input_ids.shape[1] > 3000 and batch.attention_mask[1, 0] == 0  # 2 min, left-padded
    real = batch.attention_mask.astype(bool)
    assert rel_err(forward(model, batch)[real], reference_logits(ref, batch)[real]) <= RTOL


def test_audio_over_the_feature_extractors_length_is_refused_naming_the_option(long_context):
    model = load(long_context[1])  # its positions hold 301 s: the feature extractor refuses it
    with pytest.raises(ValueError, match=r"longer than the 300 s .*truncation=False"):
        make_batch(model, [np.full(301 * 16000, 0.1, np.float32)], "hi")


def test_untruncated_features_equal_the_processors_with_truncation_false():
    from transformers import WhisperFeatureExtractor

    wave = waveform(SEVEN_MINUTES, 3)
    ref = WhisperFeatureExtractor(feature_size=128, chunk_length=300)
    want = ref(wave, sampling_rate=16000, padding="max_length", truncation=False, return_attention_mask=True)
    feats, mask = extract_features([wave], FeatureConfig(), padding="max_length", truncation=False)
    assert feats.shape == want["input_features"].shape == (1, 128, 42000)
    np.testing.assert_allclose(feats, want["input_features"], rtol=0, atol=1e-4)  # as up to 300 s
    np.testing.assert_array_equal(mask, want["attention_mask"])


def test_seven_minutes_without_truncation_match_transformers_logits(long_context):
    hf_dir, jax_dir = long_context
    model = load(jax_dir)
    batch = make_batch(model, [waveform(SEVEN_MINUTES, 4)], "What is said?", truncation=False)
    assert int(batch.feature_attention_mask.sum()) == 42000
    got = forward(model, batch)[0, -64:]  # the last positions see all 10,500 audio tokens
    want = reference_logits(load_reference(hf_dir), batch)[0, -64:]
    assert rel_err(got, want) <= RTOL
