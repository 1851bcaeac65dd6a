"""The JAX thinker against transformers' Qwen2_5OmniThinkerForConditionalGeneration (float32, CPU)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from conftest import RTOL, reference_logits, rel_err, torch_batch, waveform

from hr_jax.batch import make_batch
from hr_jax.engine import forward, generate_batch, prefill
from hr_jax.model import load
from hr_jax.testing.checkpoints import load_reference


@pytest.mark.parametrize("seconds", [0.2, 0.57, 2.0], ids=["one_window", "partial_window", "several_windows"])
def test_audio_encoder_matches_transformers_audio_tower(tiny_model, tiny_reference, seconds):
    import jax.numpy as jnp

    from models.qwen2_5_omni.audio_encoder import encode_audio

    batch = make_batch(tiny_model, [waveform(seconds)], "hi")
    with torch.no_grad():
        want = tiny_reference.get_audio_features(
            torch.from_numpy(batch.input_features), torch.from_numpy(batch.feature_attention_mask).long()
        ).last_hidden_state.numpy()
    num_frames = jnp.asarray(batch.feature_attention_mask.sum(1))
    tokens, count = encode_audio(
        tiny_model.params.audio, tiny_model.config.audio, jnp.asarray(batch.input_features), num_frames
    )
    assert int(count[0]) == want.shape[0]
    assert rel_err(np.asarray(tokens)[0, : want.shape[0]], want) <= RTOL


def test_logits_match_transformers_at_every_position(tiny_pair):
    hf_dir, jax_dir = tiny_pair
    model, ref = load(jax_dir), load_reference(hf_dir)
    batch = make_batch(model, [waveform(1.3)], "What do you hear?")
    want = reference_logits(ref, batch)
    got = forward(model, batch)
    assert got.shape == want.shape
    assert rel_err(got, want) <= RTOL


def test_padded_batch_logits_match_transformers_on_real_tokens(tiny_pair):
    hf_dir, jax_dir = tiny_pair
    model, ref = load(jax_dir), load_reference(hf_dir)
    batch = make_batch(model, [waveform(2.3, 1), waveform(0.9, 2)], ["Describe it.", "Is the speaker a man?"])
    assert batch.attention_mask[1, 0] == 0, "rows should be left-padded"
    want = reference_logits(ref, batch)
    got = forward(model, batch)
    real = batch.attention_mask.astype(bool)
    assert rel_err(got[real], want[real]) <= RTOL


def test_padded_row_gives_same_logits_as_alone(tiny_model):
    audios, prompts = [waveform(2.3, 1), waveform(0.9, 2)], ["Describe it.", "Is the speaker a man?"]
    together = forward(tiny_model, make_batch(tiny_model, audios, prompts))
    alone = forward(tiny_model, make_batch(tiny_model, audios[1:], prompts[1:]))
    n = alone.shape[1]
    np.testing.assert_allclose(together[1, -n:], alone[0], rtol=0, atol=2e-5 * np.abs(alone).max())


def test_prefill_logits_equal_forward_at_last_token(tiny_model):
    batch = make_batch(tiny_model, [waveform(1.7, 3), waveform(0.6, 4)], ["One.", "Two words."])
    full = forward(tiny_model, batch)
    out = prefill(tiny_model, batch, ratio=0.0)
    assert rel_err(out.logits, full[:, -1]) <= RTOL
    assert out.spread is None and out.alpha is None


def test_greedy_generation_matches_transformers_token_for_token(tiny_model, tiny_reference):
    never_stop = tiny_model.replace(stop_ids=())
    batch = make_batch(never_stop, [waveform(1.9, 5), waveform(1.1, 6)], ["Transcribe.", "What is this?"])
    out = generate_batch(never_stop, batch, ratio=0.0, max_new_tokens=20)
    with torch.no_grad():
        ref = tiny_reference.generate(
            **torch_batch(batch), max_new_tokens=20, do_sample=False, eos_token_id=None, min_new_tokens=20
        )
    want = ref[:, batch.input_ids.shape[1] :].numpy()
    assert [len(t) for t in out.token_ids] == [20, 20]
    np.testing.assert_array_equal(np.array(out.token_ids), want)


def test_generation_stops_at_im_end(tiny_model):
    im_end = tiny_model.tokenizer.convert_tokens_to_ids("<|im_end|>")
    batch = make_batch(tiny_model, [waveform(1.0, 7)], "Say something.")
    free = generate_batch(tiny_model.replace(stop_ids=()), batch, max_new_tokens=6)
    first = free.token_ids[0][2]
    stopped = generate_batch(tiny_model.replace(stop_ids=(first, im_end)), batch, max_new_tokens=6)
    assert stopped.token_ids[0] == free.token_ids[0][: free.token_ids[0].index(first) + 1]
