"""hr_jax.engine: the specs gather the keyword arguments once; planning decides what is static."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import waveform

from hr_jax.batch import make_batch
from hr_jax.engine import PruningSpec, SamplingSpec, generate_with, prepare
from hr_jax.pruning import VANILLA


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        (dict(ratio=1.0), r"ratio must be in \[0, 1\)"),
        (dict(ratio=-0.1), r"ratio must be in \[0, 1\)"),
        (dict(ratio=float("nan")), r"ratio must be in \[0, 1\)"),
        (dict(method="magic"), "unknown method 'magic'"),
        (dict(method=VANILLA, ratio=0.5), "unpruned model"),
    ],
)
def test_pruning_spec_refuses_bad_arguments(kwargs, message):
    with pytest.raises(ValueError, match=message):
        PruningSpec(**kwargs)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        (dict(max_new_tokens=0), "max_new_tokens"),
        (dict(temperature=-1.0), "temperature"),
        (dict(top_p=0.0), "top_p"),
        (dict(top_p=1.5), "top_p"),
    ],
)
def test_sampling_spec_refuses_bad_arguments(kwargs, message):
    with pytest.raises(ValueError, match=message):
        SamplingSpec(**kwargs)


@pytest.mark.parametrize("method", [VANILLA, "headrouter", "dart", "random"])
def test_ratio_zero_plans_no_selection_whatever_the_method(tiny_model, method):
    batch = make_batch(tiny_model, [waveform(1.5, 0)], "Say it.")
    p = prepare(tiny_model, batch, PruningSpec(0.0, method))
    assert p.plan.selection is None and p.plan.method == VANILLA


def test_a_pruning_plan_keeps_floor_na_times_one_minus_r(tiny_model):
    batch = make_batch(tiny_model, [waveform(2.0, 1), waveform(1.0, 2)], "Say it.")
    p = prepare(tiny_model, batch, PruningSpec(0.6, "frame"))
    na = ((batch.input_ids == tiny_model.config.audio_token_id) & (batch.attention_mask > 0)).sum(1)
    np.testing.assert_array_equal(np.asarray(p.inputs.keep_k), np.floor(na * 0.4).astype(int))
    sel = p.plan.selection
    assert sel.method == "frame" and sel.keep_len < p.inputs.input_ids.shape[1]


def test_vanilla_generation_equals_any_method_at_ratio_zero(tiny_model):
    batch = make_batch(tiny_model, [waveform(1.5, 3)], "Say it.")
    sampling = SamplingSpec(max_new_tokens=6)
    a = generate_with(tiny_model, batch, PruningSpec(0.0, VANILLA), sampling)
    b = generate_with(tiny_model, batch, PruningSpec(0.0, "headrouter"), sampling)
    assert a.token_ids == b.token_ids and a.alpha is None and b.alpha is None
    np.testing.assert_array_equal(a.kept_audio, a.num_audio)


def test_generate_output_locates_the_audio_span(tiny_model):
    batch = make_batch(tiny_model, [waveform(1.5, 4)], "Say it.")
    out = generate_with(tiny_model, batch, PruningSpec(0.5, "frame"), SamplingSpec(max_new_tokens=2))
    first = int(np.argmax(batch.input_ids[0] == tiny_model.config.audio_token_id))
    assert int(out.audio_start[0]) == first
    kept = out.kept_positions[0][out.kept_positions[0] >= 0]
    kept_audio = kept[(kept >= first) & (kept < first + int(out.num_audio[0]))]
    assert kept_audio.size == int(out.kept_audio[0])


def test_buckets_grow_geometrically_with_at_most_an_eighth_of_padding():
    from hr_jax.engine.buckets import PER_OCTAVE, bucket

    assert [bucket(n, 64) for n in (1, 64, 65, 512, 513)] == [64, 64, 128, 512, 576]
    for n in range(1, 40000, 7):
        b = bucket(n, 64)
        assert b >= n and b % 64 == 0 and (b - n < 64 or b - n <= n / PER_OCTAVE)
    # AudioMarathon-like lengths, 1 to 10 minutes of audio at 25 tokens a second
    lengths = range(25 * 60, 25 * 600)
    assert len({bucket(n, 64) for n in lengths}) == 28 < len({-(-n // 64) for n in lengths}) // 7


def test_two_lengths_in_one_bucket_share_their_program(tiny_model):
    from hr_jax.engine import run_prefill
    from hr_jax.engine.core import prefill_core

    spec = PruningSpec(0.5, "frame")
    run_prefill(tiny_model, make_batch(tiny_model, [waveform(40.0, 1)], "hi"), spec)
    before = prefill_core._cache_size()
    run_prefill(tiny_model, make_batch(tiny_model, [waveform(40.5, 2)], "hi"), spec)
    assert prefill_core._cache_size() == before
