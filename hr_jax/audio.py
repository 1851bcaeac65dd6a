"""Audio loading (any file soundfile reads, any rate, channels averaged) and the audio constants.

The log-mel features are each model family's own: Qwen2.5-Omni's Whisper features are
`models.qwen2_5_omni.features` (re-exported here, where they have always been importable from),
Phi-4-Multimodal's are `models.phi4mm.features`.
"""

from __future__ import annotations

import os

import numpy as np

from models.qwen2_5_omni.features import (  # noqa: F401 - re-exported: Qwen's front end, importable as before
    HOP_LENGTH,
    N_FFT,
    PREPROCESSOR_CONFIG_FILE,
    FeatureConfig,
    check_feature_length,
    clip_features,
    extract_features,
    log_mel,
    num_feature_frames,
)

SAMPLE_RATE = 16000
SAMPLES_PER_AUDIO_TOKEN = 4 * HOP_LENGTH  # 40 ms: conv stride 2, then stride-2 pooling, over 10 ms frames
TOKENS_PER_SECOND = SAMPLE_RATE // SAMPLES_PER_AUDIO_TOKEN  # 25

_MAX_CHANNELS = 8  # a 2-D array [c, n] with c <= 8 < n is read as channels-first


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
