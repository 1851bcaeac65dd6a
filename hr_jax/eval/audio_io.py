"""Audio access for evaluation: duration probing (for length bucketing) and waveform loading.

Waveforms are loaded with ``hr_jax.audio.load_audio`` (16 kHz mono float32, resampling done
there). When that module is not importable, 16 kHz files are read with soundfile directly and
other rates are refused, so evaluation code never silently feeds the model a wrong rate.

Samples with several audio files (some MMAU-Pro questions) are concatenated in order with
``MULTI_AUDIO_GAP_S`` seconds of silence between clips, because the engine takes one audio
stream per sample.
"""

from __future__ import annotations

import os
from collections.abc import Sequence

import numpy as np

from hr_jax.audio import SAMPLE_RATE, load_audio

MULTI_AUDIO_GAP_S = 0.5


def _load_one(path: str) -> np.ndarray:
    """One file as 16 kHz mono float32 (`hr_jax.audio.load_audio`: resampled, channels averaged)."""
    return np.asarray(load_audio(path), dtype=np.float32)


def load_waveform(paths: str | Sequence[str]) -> np.ndarray:
    """Load one or several audio files as one 16 kHz mono float32 waveform.

    Raises:
        FileNotFoundError: a file does not exist.
        ValueError: a file cannot be decoded or is empty.
    """
    if isinstance(paths, str):
        paths = [paths]
    parts: list[np.ndarray] = []
    gap = np.zeros(int(MULTI_AUDIO_GAP_S * SAMPLE_RATE), dtype=np.float32)
    for i, p in enumerate(paths):
        wav = _load_one(p)
        if wav.ndim != 1 or wav.size == 0:
            raise ValueError(f"{p}: empty or not mono audio (shape {wav.shape})")
        if i:
            parts.append(gap)
        parts.append(wav)
    if not parts:
        raise ValueError("no audio path given")
    return np.concatenate(parts) if len(parts) > 1 else parts[0]


def probe_duration(path: str) -> float:
    """Duration of an audio file in seconds, from its header when soundfile can read it.

    Falls back to decoding the whole file with :func:`load_waveform` (formats soundfile does
    not know).

    Raises:
        FileNotFoundError: the file does not exist.
        ValueError: the file cannot be read or holds no samples.
    """
    if not os.path.exists(path):
        raise FileNotFoundError(path)
    import soundfile as sf

    try:
        info = sf.info(path)
        frames, sr = int(info.frames), int(info.samplerate)
        if frames > 0 and sr > 0:
            return frames / sr
        raise ValueError(f"{path}: audio holds no samples")
    except ValueError:
        raise
    except Exception:
        pass
    wav = load_waveform(path)
    return wav.size / SAMPLE_RATE


def total_duration(durations: Sequence[float]) -> float:
    """Duration of several clips concatenated by :func:`load_waveform`."""
    if not durations:
        return 0.0
    return float(sum(durations) + MULTI_AUDIO_GAP_S * (len(durations) - 1))
