"""Audio front end: loading/validation and log-mel parity with transformers' WhisperFeatureExtractor."""

from __future__ import annotations

import numpy as np
import pytest

from hr_jax.audio import (
    HOP_LENGTH,
    SAMPLE_RATE,
    FeatureConfig,
    check_length,
    clip_features,
    extract_features,
    load_audio,
    log_mel,
)

FEATURE_ATOL = 1e-4
# preprocessor_config.json of the released Qwen2.5-Omni-3B / -7B, as shipped.
RELEASED_PREPROCESSOR = {
    "chunk_length": 300, "dither": 0.0, "feature_extractor_type": "WhisperFeatureExtractor",
    "feature_size": 128, "hop_length": 160, "n_fft": 400, "n_samples": 4800000, "nb_max_frames": 30000,
    "padding_side": "right", "padding_value": 0.0, "processor_class": "Qwen2_5OmniProcessor",
    "return_attention_mask": True, "sampling_rate": 16000,
}  # fmt: skip
RELEASED = FeatureConfig.from_dict(RELEASED_PREPROCESSOR)


def _whisper(preprocessor: dict):
    """WhisperFeatureExtractor built from a preprocessor config and called as the Qwen2.5-Omni processor
    calls it (padding="max_length", its default truncation) -> (features, mask)."""
    from transformers import WhisperFeatureExtractor
    from transformers.utils import logging

    logging.set_verbosity_error()
    fe = WhisperFeatureExtractor(**preprocessor)

    def run(waveforms):
        out = fe(
            list(waveforms),
            sampling_rate=SAMPLE_RATE,
            padding="max_length",
            return_attention_mask=True,
            return_tensors="np",
        )
        return out["input_features"], out["attention_mask"]

    return run


@pytest.fixture(scope="module")
def reference():
    return _whisper(RELEASED_PREPROCESSOR)


def _speech_like(n: int, seed: int) -> np.ndarray:
    """Harmonics with a slow amplitude envelope plus a little noise, float32 [n]."""
    rng = np.random.default_rng(seed)
    t = np.arange(n) / SAMPLE_RATE
    f0 = 120.0 + 40.0 * seed
    x = sum(np.sin(2 * np.pi * k * f0 * t + k) / k for k in range(1, 8))
    x = x * (0.6 + 0.4 * np.sin(2 * np.pi * 1.3 * t)) + 0.03 * rng.standard_normal(n)
    return (0.2 * x).astype(np.float32)


def _sine(freq: float, rate: int, seconds: float) -> np.ndarray:
    t = np.arange(int(round(seconds * rate))) / rate
    return (0.5 * np.sin(2 * np.pi * freq * t)).astype(np.float32)


def _peak_hz(x: np.ndarray) -> float:
    spectrum = np.abs(np.fft.rfft(x * np.hanning(len(x))))
    return float(np.fft.rfftfreq(len(x), 1 / SAMPLE_RATE)[spectrum.argmax()])


# ------------------------------------------------------------------ features vs the reference


def _assert_matches(got, want) -> None:
    (feats, mask), (ref_feats, ref_mask) = got, want
    assert feats.shape == ref_feats.shape and feats.dtype == np.float32 and mask.dtype == np.int32
    assert np.abs(feats - ref_feats).max() <= FEATURE_ATOL
    np.testing.assert_array_equal(mask, ref_mask)


@pytest.mark.parametrize("seconds", [0.37, 1.0, 7.3, 29.0, 30.0, 31.0, 40.0, 120.0, 299.99, 300.0])
def test_features_and_mask_match_the_released_processor_at_every_length(reference, seconds):
    w = _speech_like(int(round(seconds * SAMPLE_RATE)), seed=1)
    got = extract_features([w], RELEASED)
    assert got[0].shape == (1, 128, 30_000)
    _assert_matches(got, reference([w]))


def test_length_that_is_not_a_multiple_of_the_hop_matches_the_released_processor(reference):
    w = _speech_like(40 * SAMPLE_RATE + 77, seed=4)
    _assert_matches(extract_features([w], RELEASED), reference([w]))


def test_mixed_length_batch_matches_the_released_processor(reference):
    lengths = [5_920, 16_000, 116_877, 480_000, 40_159, 1, 640_000, 1_920_013]
    ws = [_speech_like(n, seed=i) for i, n in enumerate(lengths)]
    got = extract_features(ws, RELEASED)
    _assert_matches(got, reference(ws))
    np.testing.assert_array_equal(got[1].sum(1), [-(-n // HOP_LENGTH) for n in lengths])


def test_features_follow_the_checkpoints_chunk_length():
    whisper_30s = dict(RELEASED_PREPROCESSOR, chunk_length=30, n_samples=480_000, nb_max_frames=3000)
    w = _speech_like(7 * SAMPLE_RATE, seed=2)
    got = extract_features([w], FeatureConfig.from_dict(whisper_30s))
    assert got[0].shape == (1, 128, 3000)
    _assert_matches(got, _whisper(whisper_30s)([w]))


def test_features_match_reference_numpy_path_to_float32_rounding():
    """The reference's float64 NumPy path (used without torch) agrees far tighter than its torch STFT."""
    from transformers import WhisperFeatureExtractor

    fe = WhisperFeatureExtractor(**RELEASED_PREPROCESSOR)
    ws = [_speech_like(n, seed=i) for i, n in enumerate([116_877, 650_000])]
    padded = np.stack([np.pad(w, (0, fe.n_samples - len(w))) for w in ws]).astype(np.float32)
    feats, _ = extract_features(ws, RELEASED)
    assert np.abs(feats - fe._np_extract_fbank_features(padded, "cpu")).max() <= 1e-6


def test_audio_longer_than_the_processor_takes_is_refused():
    with pytest.raises(ValueError, match=r"audio 1 is 300\.01 s long.*chunk_length=300"):
        extract_features([_speech_like(1000, 0), _speech_like(300 * SAMPLE_RATE + 160, 1)], RELEASED)


def test_rows_do_not_depend_on_the_rest_of_the_batch():
    ws = [_speech_like(n, seed=i) for i, n in enumerate([479_990, 499_200, 520_000])]
    feats, mask = extract_features(ws, RELEASED)
    for row, w in enumerate(ws):
        own_feats, own_mask = extract_features([w], RELEASED)
        np.testing.assert_array_equal(mask[row], own_mask[0])
        np.testing.assert_array_equal(feats[row], own_feats[0])


@pytest.mark.parametrize("n", [201, 16_000, 35_123, 4_800_000 - 50, 4_800_000])
def test_clip_features_are_the_valid_frames_of_the_padded_features(n):
    w = _speech_like(n, seed=3)
    feats, mask = extract_features([w], RELEASED)
    got = clip_features(w, RELEASED)
    assert got.shape == (128, int(mask.sum())) and got.dtype == np.float32
    np.testing.assert_array_equal(got, feats[0, :, : int(mask.sum())])


def test_longest_padding_is_the_processor_arrays_cut_after_the_longest_clip():
    lengths = [5_920, 116_877, 40_159]
    ws = [_speech_like(n, seed=i) for i, n in enumerate(lengths)]
    full, full_mask = extract_features(ws, RELEASED)
    cut, cut_mask = extract_features(ws, RELEASED, padding="longest")
    assert cut.shape == (3, 128, -(-116_877 // HOP_LENGTH))
    np.testing.assert_array_equal(cut, full[:, :, : cut.shape[2]])
    np.testing.assert_array_equal(cut_mask, full_mask[:, : cut.shape[2]])


def test_an_unknown_feature_padding_is_refused_by_name():
    with pytest.raises(ValueError, match="feature padding 'longer'"):
        extract_features([_speech_like(16_000, seed=0)], RELEASED, padding="longer")


def test_log_mel_is_whisper_log_mel_of_unpadded_samples(reference):
    w = _speech_like(16_000, seed=3)
    spec = log_mel(w)
    assert spec.shape == (128, 16_000 // HOP_LENGTH) and spec.dtype == np.float32
    padded = log_mel(np.pad(w, (0, RELEASED.n_samples - len(w))))
    assert np.abs(padded - reference([w])[0][0]).max() <= FEATURE_ATOL
    assert log_mel(w, n_mels=80).shape == (80, 100)


@pytest.mark.parametrize(
    "field, value",
    [("dither", 1e-4), ("do_normalize", True), ("hop_length", 320), ("n_fft", 512), ("sampling_rate", 24000),
     ("padding_value", 1.0), ("padding_side", "left"), ("feature_extractor_type", "SeamlessM4TFE")],
)  # fmt: skip
def test_preprocessor_fields_that_are_not_implemented_are_refused_by_name(field, value):
    with pytest.raises(ValueError, match=f"{field}="):
        FeatureConfig.from_dict(dict(RELEASED_PREPROCESSOR, **{field: value}))


def test_released_preprocessor_config_reads_as_300_seconds_of_128_bins():
    assert (RELEASED.feature_size, RELEASED.n_samples, RELEASED.nb_max_frames) == (128, 4_800_000, 30_000)


# ------------------------------------------------------------------ loading


@pytest.mark.parametrize("rate", [44_100, 8_000])
def test_resampling_gives_16k_length_and_frequency(rate):
    out = load_audio(_sine(1000.0, rate, 2.0), sample_rate=rate)
    assert out.dtype == np.float32 and out.ndim == 1
    assert abs(len(out) - 2 * SAMPLE_RATE) <= 1
    assert abs(_peak_hz(out) - 1000.0) <= 1.0


def test_16k_array_is_returned_unchanged():
    w = _sine(440.0, SAMPLE_RATE, 0.5)
    np.testing.assert_array_equal(load_audio(w), w)


def test_stereo_is_downmixed_by_averaging_channels():
    left, right = _sine(440.0, SAMPLE_RATE, 0.5), _sine(880.0, SAMPLE_RATE, 0.5)
    expected = (left.astype(np.float64) + right) / 2
    np.testing.assert_allclose(load_audio(np.stack([left, right], axis=1)), expected, atol=1e-7)
    np.testing.assert_allclose(load_audio(np.stack([left, right], axis=0)), expected, atol=1e-7)


def test_int16_pcm_is_scaled_to_unit_range():
    pcm = np.array([0, 16_384, -32_768, 32_767, 1], dtype=np.int16)
    np.testing.assert_allclose(load_audio(pcm), pcm / 32_768.0, rtol=0, atol=1e-7)


def test_reads_wav_file_written_with_soundfile(tmp_path):
    import soundfile as sf

    stereo = np.stack([_sine(500.0, 22_050, 1.5), _sine(500.0, 22_050, 1.5)], axis=1)
    path = tmp_path / "clip.wav"
    sf.write(path, stereo, 22_050, subtype="PCM_16")
    out = load_audio(path)
    assert abs(len(out) - int(1.5 * SAMPLE_RATE)) <= 1
    assert abs(_peak_hz(out) - 500.0) <= 1.0
    assert load_audio(str(path)).shape == out.shape


# ------------------------------------------------------------------ bad input


def test_empty_audio_is_rejected():
    with pytest.raises(ValueError, match=r"empty \(0 samples\)"):
        load_audio(np.zeros(0, dtype=np.float32))


def test_nan_and_inf_samples_are_rejected_with_count():
    w = _sine(440.0, SAMPLE_RATE, 0.1)
    w[[3, 7]] = np.nan
    w[9] = np.inf
    with pytest.raises(ValueError, match="contains 2 NaN and 1 Inf samples"):
        load_audio(w)


def test_silent_audio_is_rejected():
    with pytest.raises(ValueError, match="silent: all 1600 samples are exactly zero"):
        load_audio(np.zeros(1600, dtype=np.float32))


@pytest.mark.parametrize("shape", [(), (2, 3, 100)])
def test_arrays_that_are_not_1d_or_2d_are_rejected(shape):
    with pytest.raises(ValueError, match="1-D .* or 2-D"):
        load_audio(np.ones(shape, dtype=np.float32))


@pytest.mark.parametrize("rate", [0, -16_000])
def test_non_positive_sample_rate_is_rejected(rate):
    with pytest.raises(ValueError, match="sample rate must be positive"):
        load_audio(_sine(440.0, SAMPLE_RATE, 0.1), sample_rate=rate)


def test_unreadable_file_is_rejected_naming_the_path(tmp_path):
    path = tmp_path / "not_audio.wav"
    path.write_bytes(b"this is not a wav file")
    with pytest.raises(ValueError, match="could not read audio file .*not_audio.wav"):
        load_audio(path)


def test_missing_file_raises_file_not_found_naming_the_path(tmp_path):
    with pytest.raises(FileNotFoundError, match="missing.flac"):
        load_audio(tmp_path / "missing.flac")


def test_check_length_rejects_audio_over_the_limit():
    w = np.ones(SAMPLE_RATE * 3, dtype=np.float32)
    check_length(w, max_seconds=3.0)
    with pytest.raises(ValueError, match=r"3\.00 s long, longer than the limit of 2\.50 s"):
        check_length(w, max_seconds=2.5)
