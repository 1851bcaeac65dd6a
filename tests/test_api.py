"""The public API and CLI: inputs accepted, outputs returned, errors raised."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch
from conftest import waveform

import hr_jax
from hr_jax.batch import Batch
from hr_jax.cli import main as cli_main


def test_generate_takes_one_audio_and_returns_a_string(tiny_model):
    text = hr_jax.generate(tiny_model, waveform(1.0), 0.5, prompt="Hi?", max_new_tokens=4, router=None)
    assert isinstance(text, str)


def test_generate_takes_a_list_and_returns_a_list(tiny_model, tmp_path):
    path = tmp_path / "clip.wav"
    sf.write(path, waveform(0.8, 3), 16000)
    texts = hr_jax.generate(
        tiny_model, [str(path), waveform(1.2, 4)], 0.0, prompt=["A?", "B?"], max_new_tokens=3
    )
    assert isinstance(texts, list) and len(texts) == 2


def test_other_sample_rates_are_resampled(tiny_model):
    at_16k = hr_jax.make_batch(tiny_model, [waveform(1.0)], "x")
    wave_8k = waveform(1.0)[::2]
    at_8k = hr_jax.make_batch(tiny_model, [(wave_8k, 8000)], "x")
    assert at_8k.input_ids.shape == at_16k.input_ids.shape


def test_batch_fields_are_named_and_shaped_like_the_processor(tiny_model):
    b = hr_jax.make_batch(tiny_model, [waveform(2.0), waveform(1.0)], ["one", "two three"])
    assert set(b.to_dict()) == {"input_ids", "attention_mask", "input_features", "feature_attention_mask"}
    assert b.input_features.shape[:2] == (2, 128) and b.feature_attention_mask.shape == (
        2,
        b.input_features.shape[2],
    )
    assert b.input_ids.shape == b.attention_mask.shape
    audio = tiny_model.config.audio_token_id
    assert list((b.input_ids == audio).sum(1)) == [50, 25]  # 25 audio tokens per second


def test_batch_features_end_after_the_longest_clip_unless_the_processors_padding_is_asked(tiny_model):
    clips = [waveform(2.0), waveform(1.0)]
    b = hr_jax.make_batch(tiny_model, clips, "x")
    full = hr_jax.make_batch(tiny_model, clips, "x", feature_padding="max_length")
    assert b.input_features.shape[2] == 200 and full.input_features.shape[2] == 30_000
    np.testing.assert_array_equal(b.input_features, full.input_features[:, :, :200])


def test_the_feature_padding_does_not_change_the_outputs(tiny_model):
    clips = [waveform(1.6, 1), waveform(0.7, 2)]
    b = hr_jax.make_batch(tiny_model, clips, "x")
    full = hr_jax.make_batch(tiny_model, clips, "x", feature_padding="max_length")
    np.testing.assert_array_equal(
        hr_jax.prefill(tiny_model, b, 0.5).logits, hr_jax.prefill(tiny_model, full, 0.5).logits
    )


def test_batch_round_trips_through_processor_style_tensors(tiny_model):
    b = hr_jax.make_batch(tiny_model, [waveform(1.0)], "x")
    again = Batch.from_processor({k: torch.from_numpy(v) for k, v in b.to_dict().items()})
    for k, v in b.to_dict().items():
        np.testing.assert_array_equal(getattr(again, k), v)


def test_audio_longer_than_the_position_range_is_refused(tiny_model):
    limit = tiny_model.config.text.max_position_embeddings / 25
    too_long = waveform(limit + 5)
    with pytest.raises(ValueError, match="longer than the limit"):
        hr_jax.make_batch(tiny_model, [too_long], "x")


@pytest.mark.parametrize(
    "audio, message",
    [
        (np.zeros(16000, np.float32), "silent"),
        (np.array([], np.float32), "empty"),
        (np.full(16000, np.nan, np.float32), "NaN"),
    ],
)
def test_bad_audio_is_refused_with_a_clear_message(tiny_model, audio, message):
    with pytest.raises(ValueError, match=message):
        hr_jax.generate(tiny_model, audio, 0.0, max_new_tokens=2)


def test_missing_audio_file_is_refused(tiny_model, tmp_path):
    with pytest.raises(FileNotFoundError, match="nope.wav"):
        hr_jax.generate(tiny_model, str(tmp_path / "nope.wav"), 0.0)


def test_prompts_must_match_audios(tiny_model):
    with pytest.raises(ValueError, match="one prompt per audio"):
        hr_jax.make_batch(tiny_model, [waveform(1.0)], ["a", "b"])


def test_model_is_a_pytree_that_passes_through_jit(tiny_model):
    import jax

    leaves = jax.tree.leaves(tiny_model)
    assert len(leaves) == len(jax.tree.leaves(tiny_model.params))
    embed_sum = jax.jit(lambda m: m.params.embed.sum())(tiny_model)
    assert np.isfinite(float(embed_sum))


def test_cli_generate_prints_the_reply(tiny_ckpt, tmp_path, capsys):
    path = tmp_path / "clip.wav"
    sf.write(path, waveform(1.0, 5), 16000)
    code = cli_main(["generate", "--ckpt", tiny_ckpt[1], "--audio", str(path), "--ratio", "0.5",
                     "--method", "frame", "--max-new-tokens", "3"])  # fmt: skip
    assert code == 0
    out = capsys.readouterr().out
    assert str(path) in out and "/25 audio tokens]" in out


def test_cli_reports_bad_input_as_an_error_exit(tiny_ckpt, tmp_path, capsys):
    code = cli_main(["generate", "--ckpt", tiny_ckpt[1], "--audio", str(tmp_path / "missing.wav")])
    assert code == 2
    assert "missing.wav" in capsys.readouterr().err


def test_the_compilation_cache_is_the_callers_choice(tmp_path, monkeypatch):
    import jax

    from hr_jax.compilation_cache import enable_compilation_cache

    configured = jax.config.jax_compilation_cache_dir  # the test session's (tests/conftest.py)
    threshold = jax.config.jax_persistent_cache_min_compile_time_secs
    assert configured and enable_compilation_cache() == Path(configured)  # kept, thresholds too
    assert jax.config.jax_persistent_cache_min_compile_time_secs == threshold
    monkeypatch.setenv("JAX_COMPILATION_CACHE_DIR", configured)  # restored after the test
    try:
        got = enable_compilation_cache(tmp_path / "jax")  # a directory named explicitly is used
        assert got == tmp_path / "jax" and got.is_dir() and jax.config.jax_compilation_cache_dir == str(got)
    finally:
        jax.config.update("jax_compilation_cache_dir", configured)
        jax.config.update("jax_persistent_cache_min_compile_time_secs", threshold)


def test_only_torchs_advisory_is_silenced_in_transformers_log():
    import logging

    import hr_jax  # noqa: F401 - installs the filter

    logger = logging.getLogger("transformers")
    record = lambda msg: logging.LogRecord("transformers", logging.WARNING, __file__, 1, msg, None, None)  # noqa: E731
    assert not all(
        f.filter(record("PyTorch was not found. Models won't be available")) for f in logger.filters
    )
    assert all(f.filter(record("some other warning")) for f in logger.filters)


def test_engine_options_come_from_the_cli_with_the_environment_as_default(monkeypatch):
    import argparse

    from hr_jax.cli_options import add_model_options, engine_options

    monkeypatch.setenv("HR_JAX_ATTENTION", "bogus")
    with pytest.raises(ValueError, match="HR_JAX_ATTENTION='bogus'"):
        add_model_options(argparse.ArgumentParser())
    monkeypatch.setenv("HR_JAX_ATTENTION", "dense")
    ap = argparse.ArgumentParser()
    add_model_options(ap)
    assert engine_options(ap.parse_args(["--ckpt", "x"])) == hr_jax.EngineOptions(attention="dense")
    assert engine_options(ap.parse_args(["--ckpt", "x", "--attention", "streaming"])).attention == "streaming"
