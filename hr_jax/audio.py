"""Audio front end: loading, resampling and the Whisper log-mel features Qwen2.5-Omni consumes.

Everything here is NumPy (host side). The features reproduce ``transformers.WhisperFeatureExtractor``
built from the checkpoint's own ``preprocessor_config.json`` (:class:`FeatureConfig`) and called the way
the Qwen2.5-Omni processor calls it::

    fe(waveforms, sampling_rate=16000, padding="max_length", return_attention_mask=True)

Reference pipeline, per waveform of ``n <= n_samples`` samples (cast to float32 first):

1. right-pad with zeros to ``n_samples = chunk_length * 16000`` (4,800,000 = 300 s for the released
   models, not Whisper's 30 s);
2. centred STFT (reflect padding of ``n_fft // 2``, periodic Hann window, hop 160), power spectrum;
   the last STFT frame is dropped, leaving ``nb_max_frames = n_samples // 160`` frames;
3. Slaney mel filter bank (0-8 kHz), ``log10(max(mel, 1e-10))``;
4. ``max(x, x.max() - 8)`` with the maximum taken per waveform, then ``(x + 4) / 4``;
5. attention mask: the sample mask subsampled ``[::160]``, i.e. ``ceil(n / 160)`` valid frames.

:func:`extract_features` gives exactly that for every length up to ``n_samples``, but computes the STFT
only where a frame can see a sample of the waveform: every later frame is all zeros in the reference
too, so it is filled with the value all-zero frames take. Longer audio, which the reference silently
truncates, is refused.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import math
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

SAMPLE_RATE = 16000
HOP_LENGTH = 160
N_FFT = 400
SAMPLES_PER_AUDIO_TOKEN = 4 * HOP_LENGTH  # 40 ms: conv stride 2, then stride-2 pooling, over 10 ms frames
TOKENS_PER_SECOND = SAMPLE_RATE // SAMPLES_PER_AUDIO_TOKEN  # 25
PREPROCESSOR_CONFIG_FILE = "preprocessor_config.json"

_MAX_CHANNELS = 8  # a 2-D array [c, n] with c <= 8 < n is read as channels-first
_LOG_FLOOR = 1e-10  # clamp before log10, as in the reference
_DYNAMIC_RANGE = 8.0  # log10 units kept below the per-waveform maximum
_STFT_BLOCK = 4096  # frames per vectorised STFT block (bounds the temporary memory)


# --------------------------------------------------------------------------------------------------
# Loading
# --------------------------------------------------------------------------------------------------


def _int_to_float(a: np.ndarray) -> np.ndarray:
    """Scale integer PCM to float64 in [-1, 1] (signed: / 2**(bits-1); unsigned: offset then scale)."""
    info = np.iinfo(a.dtype)
    scale = float(2 ** (info.bits - 1))
    if info.min == 0:  # unsigned PCM (e.g. 8-bit WAV) is centred on 2**(bits-1)
        return (a.astype(np.float64) - scale) / scale
    return a.astype(np.float64) / scale


def _read_file(path: str | os.PathLike) -> tuple[np.ndarray, int]:
    """Read an audio file with soundfile -> ([n, channels] float64, sample rate)."""
    import soundfile as sf

    if not os.path.exists(path):
        raise FileNotFoundError(f"audio file not found: {os.fspath(path)!r}")
    try:
        data, rate = sf.read(os.fspath(path), dtype="float64", always_2d=True)
    except Exception as e:  # soundfile.LibsndfileError, RuntimeError, IsADirectoryError, ...
        raise ValueError(f"could not read audio file {os.fspath(path)!r}: {e}") from e
    return data, int(rate)


def load_audio(audio: str | os.PathLike | np.ndarray, sample_rate: int | None = None) -> np.ndarray:
    """Load / validate audio as a mono 16 kHz float32 waveform.

    Args:
      audio: a path to any file soundfile reads, or an array: ``[n]``, ``[n, channels]`` (soundfile's
        layout) or ``[channels, n]`` when ``channels <= 8 < n``. Integer PCM is scaled to [-1, 1].
      sample_rate: rate of an array input; None means 16 kHz. For a path the file's own rate is used and
        ``sample_rate`` must be None or equal to it.

    Returns:
      ``[n']`` float32 waveform at ``SAMPLE_RATE``; channels are averaged, other rates are resampled
      with soxr (high quality).

    Raises:
      FileNotFoundError: the path does not exist.
      ValueError: unreadable file, not 1-D/2-D, empty, NaN/Inf samples, all-zero (silent) audio,
        non-positive or mismatching sample rate.
    """
    if sample_rate is not None and not sample_rate > 0:
        raise ValueError(f"sample rate must be positive, got {sample_rate}")

    if isinstance(audio, (str, os.PathLike)):
        data, file_rate = _read_file(audio)
        if sample_rate is not None and sample_rate != file_rate:
            raise ValueError(
                f"sample_rate={sample_rate} given for {os.fspath(audio)!r}, but the file is {file_rate} Hz"
            )
        rate = file_rate
        source = f"audio file {os.fspath(audio)!r}"
    else:
        data = np.asarray(audio)
        rate = SAMPLE_RATE if sample_rate is None else sample_rate
        source = "audio"
        if data.ndim not in (1, 2):
            raise ValueError(
                f"audio must be a 1-D [n] or 2-D [n, channels] array, got {data.ndim}-D shape {data.shape}"
            )
        if data.dtype == np.bool_ or not (
            np.issubdtype(data.dtype, np.integer) or np.issubdtype(data.dtype, np.floating)
        ):
            raise ValueError(f"audio must be an integer or floating-point array, got dtype {data.dtype}")
        if data.ndim == 2 and data.shape[0] <= _MAX_CHANNELS < data.shape[1]:
            data = data.T  # [channels, n] -> [n, channels]
        if np.issubdtype(data.dtype, np.integer):
            data = _int_to_float(data)
        else:
            data = data.astype(np.float64)

    if data.size == 0:
        raise ValueError(f"{source} is empty (0 samples)")
    finite = np.isfinite(data)
    if not finite.all():
        n_nan = int(np.isnan(data).sum())
        n_inf = int(data.size - finite.sum()) - n_nan
        raise ValueError(f"{source} contains {n_nan} NaN and {n_inf} Inf samples (of {data.size})")

    mono = data.mean(axis=1) if data.ndim == 2 else data
    if not np.any(mono):
        raise ValueError(f"{source} is silent: all {mono.shape[0]} samples are exactly zero")

    if rate != SAMPLE_RATE:
        import soxr

        mono = soxr.resample(mono, rate, SAMPLE_RATE, quality="HQ")
        if mono.shape[0] == 0:
            raise ValueError(f"{source} is empty (0 samples) after resampling {rate} Hz -> {SAMPLE_RATE} Hz")
    return np.ascontiguousarray(mono, dtype=np.float32)


def check_length(waveform: np.ndarray, max_seconds: float) -> None:
    """Raise ValueError if the 16 kHz ``waveform`` ([n]) lasts longer than ``max_seconds``."""
    seconds = np.shape(waveform)[-1] / SAMPLE_RATE
    if seconds > max_seconds:
        raise ValueError(
            f"audio is {seconds:.2f} s long, longer than the limit of {max_seconds:.2f} s "
            f"(set by the model's positional range)"
        )


# --------------------------------------------------------------------------------------------------
# Log-mel features
# --------------------------------------------------------------------------------------------------


@functools.lru_cache(maxsize=8)
def _mel_filters(n_mels: int) -> np.ndarray:
    """Whisper's Slaney mel filter bank, ``[N_FFT // 2 + 1, n_mels]`` float64 (read-only)."""
    from transformers.audio_utils import mel_filter_bank

    filters = mel_filter_bank(
        num_frequency_bins=1 + N_FFT // 2,
        num_mel_filters=n_mels,
        min_frequency=0.0,
        max_frequency=8000.0,
        sampling_rate=SAMPLE_RATE,
        norm="slaney",
        mel_scale="slaney",
    ).astype(np.float64)
    filters.setflags(write=False)
    return filters


@functools.lru_cache(maxsize=1)
def _hann() -> np.ndarray:
    """Periodic Hann window of ``N_FFT`` samples (``torch.hann_window`` / transformers' ``"hann"``)."""
    w = 0.5 - 0.5 * np.cos(2.0 * np.pi * np.arange(N_FFT) / N_FFT)
    w.setflags(write=False)
    return w


def _log_mel_unnormalised(waveform: np.ndarray, n_mels: int) -> np.ndarray:
    """``log10(max(mel_power, 1e-10))`` of ``waveform`` ([n], n > N_FFT // 2) -> ``[n_mels, n // 160]``."""
    x = waveform.astype(np.float32).astype(np.float64)  # the reference casts to float32 first
    half = N_FFT // 2
    padded = np.pad(x, (half, half), mode="reflect")
    n_frames = x.shape[0] // HOP_LENGTH  # 1 + n // hop STFT frames, the last one dropped
    frames = np.lib.stride_tricks.sliding_window_view(padded, N_FFT)[::HOP_LENGTH][:n_frames]
    window, filters = _hann(), _mel_filters(n_mels)
    out = np.empty((n_frames, n_mels), dtype=np.float64)
    for start in range(0, n_frames, _STFT_BLOCK):  # blocks of frames, each fully vectorised
        spec = np.fft.rfft(frames[start : start + _STFT_BLOCK] * window, n=N_FFT, axis=-1)
        re_im = spec.view(np.float64).reshape(*spec.shape, 2)  # [frames, bins, (re, im)], no copy
        np.square(re_im, out=re_im)
        out[start : start + _STFT_BLOCK] = (re_im[..., 0] + re_im[..., 1]) @ filters
    return np.log10(np.maximum(out, _LOG_FLOOR)).T


def log_mel(waveform: np.ndarray, n_mels: int = 128) -> np.ndarray:
    """Whisper log-mel spectrogram of exactly the given samples (no padding is added).

    Args:
      waveform: ``[n]`` 16 kHz samples, ``n > N_FFT // 2`` (200).
      n_mels: number of mel bins.

    Returns:
      ``[n_mels, n // HOP_LENGTH]`` float32: centred reflect-padded STFT without its last frame, Slaney mel,
      ``log10`` clamped to ``max - 8`` and mapped by ``(x + 4) / 4``. ``log_mel(pad(w, n_samples))`` equals
      the reference feature extractor on ``[w]``.
    """
    waveform = np.asarray(waveform)
    if waveform.ndim != 1:
        raise ValueError(f"waveform must be 1-D [n], got shape {waveform.shape}")
    if waveform.shape[0] <= N_FFT // 2:
        raise ValueError(f"waveform needs more than {N_FFT // 2} samples, got {waveform.shape[0]}")
    spec = _log_mel_unnormalised(waveform, n_mels)
    spec = np.maximum(spec, spec.max() - _DYNAMIC_RANGE)
    return ((spec + 4.0) / 4.0).astype(np.float32)


def num_feature_frames(n_samples: int) -> int:
    """Valid mel frames for ``n_samples`` 16 kHz samples: ``ceil(n / HOP_LENGTH)``."""
    return -(-int(n_samples) // HOP_LENGTH)


@dataclasses.dataclass(frozen=True)
class FeatureConfig:
    """The fields of a Whisper ``preprocessor_config.json`` that shape Qwen2.5-Omni's features.

    Defaults are the released Qwen2.5-Omni-3B/7B values. Fields whose other values would change the
    numerics in ways hr_jax does not implement (dither, normalisation, another hop, window or rate) are
    refused by :meth:`from_dict` with an error naming the field.
    """

    feature_size: int = 128
    chunk_length: int = 300  # seconds; the reference pads (and truncates) every waveform to this

    @property
    def n_samples(self) -> int:
        """Samples every waveform is padded to (``chunk_length * 16000``, as the reference computes it)."""
        return self.chunk_length * SAMPLE_RATE

    @property
    def nb_max_frames(self) -> int:
        """Mel frames of every row: ``n_samples // hop``."""
        return self.n_samples // HOP_LENGTH

    @property
    def max_seconds(self) -> float:
        return self.n_samples / SAMPLE_RATE

    @classmethod
    def from_dict(cls, d: Mapping[str, Any], source: str = PREPROCESSOR_CONFIG_FILE) -> FeatureConfig:
        """Reads a ``preprocessor_config.json`` dict; ValueError naming a field hr_jax does not implement."""
        kind = d.get("feature_extractor_type", "WhisperFeatureExtractor")
        fixed = {
            "feature_extractor_type": (kind, "WhisperFeatureExtractor"),
            "sampling_rate": (d.get("sampling_rate", SAMPLE_RATE), SAMPLE_RATE),
            "hop_length": (d.get("hop_length", HOP_LENGTH), HOP_LENGTH),
            "n_fft": (d.get("n_fft", N_FFT), N_FFT),
            "dither": (float(d.get("dither", 0.0)), 0.0),
            "padding_value": (float(d.get("padding_value", 0.0)), 0.0),
            "padding_side": (d.get("padding_side", "right"), "right"),
            "do_normalize": (bool(d.get("do_normalize", False)), False),
        }
        for field, (got, want) in fixed.items():
            if got != want:
                raise ValueError(f"{source}: {field}={got!r} is not implemented (hr_jax supports {want!r})")
        chunk = d.get("chunk_length", 30)  # WhisperFeatureExtractor's default when the file omits it
        if not (isinstance(chunk, int) and chunk > 0):
            raise ValueError(f"{source}: chunk_length must be a positive integer of seconds, got {chunk!r}")
        size = d.get("feature_size", 128)
        if not (isinstance(size, int) and size > 0):
            raise ValueError(f"{source}: feature_size must be a positive integer, got {size!r}")
        return cls(feature_size=size, chunk_length=chunk)

    @classmethod
    def from_dir(cls, directory: str | os.PathLike) -> FeatureConfig | None:
        """The config in ``directory/preprocessor_config.json``, or None when the file is absent."""
        path = Path(directory) / PREPROCESSOR_CONFIG_FILE
        if not path.is_file():
            return None
        return cls.from_dict(json.loads(path.read_text()), source=str(path))


def check_feature_length(n_samples: int, fe: FeatureConfig, index: int | None = None) -> None:
    """ValueError if ``n_samples`` 16 kHz samples exceed what the feature extractor takes."""
    if n_samples > fe.n_samples:
        which = "audio" if index is None else f"audio {index}"
        raise ValueError(
            f"{which} is {n_samples / SAMPLE_RATE:.2f} s long, longer than the {fe.max_seconds:.0f} s the "
            f"checkpoint's feature extractor takes (preprocessor_config.json chunk_length={fe.chunk_length}; "
            f"the reference processor would silently cut it); split or trim the audio"
        )


def extract_features(
    waveforms: Sequence[np.ndarray], fe: FeatureConfig | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Batch Whisper features and frame mask, exactly as the Qwen2.5-Omni processor produces them.

    Args:
      waveforms: B non-empty 1-D 16 kHz waveforms (``[n_b]``), each at most ``fe.n_samples`` long.
      fe: the checkpoint's feature config (default: the released models', 128 bins, 300 s).

    Returns:
      ``input_features [B, feature_size, nb_max_frames]`` float32 and ``feature_attention_mask
      [B, nb_max_frames]`` int32 with ``ceil(n_b / 160)`` leading ones: what
      ``WhisperFeatureExtractor(**preprocessor_config)(waveforms, padding="max_length",
      return_attention_mask=True)`` returns.

    Only the first ``min(n_samples, roundup(n_b + n_fft, hop))`` samples of a row are transformed: a
    frame after them sees only padding zeros (the last computed frame's window reaches 40 samples past
    its end, which a reflection of zeros fills as the reference's zeros would), so it takes the value of
    an all-zero frame, ``(max(-10, row_max - 8) + 4) / 4``.
    """
    fe = fe or FeatureConfig()
    if len(waveforms) == 0:
        raise ValueError("extract_features needs at least one waveform")
    rows = []
    for i, w in enumerate(waveforms):
        w = np.asarray(w)
        if w.ndim != 1:
            raise ValueError(f"waveform {i} must be 1-D [n], got shape {w.shape}")
        if w.shape[0] == 0:
            raise ValueError(f"waveform {i} is empty (0 samples)")
        check_feature_length(w.shape[0], fe, i)
        rows.append(w)

    n_frames = fe.nb_max_frames
    features = np.empty((len(rows), fe.feature_size, n_frames), dtype=np.float32)
    mask = np.zeros((len(rows), n_frames), dtype=np.int32)
    for b, w in enumerate(rows):
        n = w.shape[0]
        own_len = min(fe.n_samples, num_feature_frames(n + N_FFT) * HOP_LENGTH)
        spec = _log_mel_unnormalised(np.pad(w, (0, own_len - n)), fe.feature_size)
        floor = spec.max() - _DYNAMIC_RANGE
        own_frames = spec.shape[1]
        features[b, :, :own_frames] = (np.maximum(spec, floor) + 4.0) / 4.0
        features[b, :, own_frames:] = (max(math.log10(_LOG_FLOOR), floor) + 4.0) / 4.0
        mask[b, : num_feature_frames(n)] = 1
    return features, mask
