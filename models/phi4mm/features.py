"""Phi-4-Multimodal's audio front end (host side, NumPy): 80 log-mel bins of 16 kHz audio.

It reproduces transformers' `Phi4MultimodalFeatureExtractor` on one clip (what the processor computes
for a batch of one): frames of 400 samples every 160 (no centring, `(N - 400) // 160 + 1` of them),
pre-emphasis 0.97 within each frame (its first sample against itself), x 32768, a symmetric Hamming
window, a 512-point FFT, the power spectrum through Kaldi-scale mel filters (0-7690 Hz, triangular in
mel space), clamped at 1 and natural-logged. The older remote-code extractor's filters differ by about
1e-2; these are transformers'.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from models.family import check_padding

SAMPLE_RATE = 16000
HOP_LENGTH = 160
WIN_LENGTH = 400
N_FFT = 512
PREEMPHASIS = 0.97
PCM_SCALE = 32768.0
MEL_MAX_HZ = 7690.0
_BLOCK = 4096  # frames per vectorised FFT block (bounds temporary memory)


@functools.lru_cache(maxsize=4)
def mel_filters(n_mels: int, min_hz: float = 0.0, max_hz: float = MEL_MAX_HZ) -> np.ndarray:
    """`[N_FFT // 2 + 1, n_mels]` float32 Kaldi-scale filters, triangular in mel space."""
    from transformers.audio_utils import mel_filter_bank

    f = mel_filter_bank(
        num_frequency_bins=N_FFT // 2 + 1,
        num_mel_filters=n_mels,
        min_frequency=min_hz,
        max_frequency=max_hz,
        sampling_rate=SAMPLE_RATE,
        triangularize_in_mel_space=True,
        mel_scale="kaldi",
    ).astype(np.float32)
    f.setflags(write=False)
    return f


def num_frames(n_samples: int) -> int:
    """Feature frames of `n_samples` samples: `(n - 400) // 160 + 1` (0 below one window)."""
    return max(0, (int(n_samples) - WIN_LENGTH) // HOP_LENGTH + 1)


def log_mel(waveform: np.ndarray, n_mels: int = 80, mel_max_hz: float = MEL_MAX_HZ) -> np.ndarray:
    """`[frames, n_mels]` float32 log-mel of one 16 kHz waveform `[n]` (`n >= 400`)."""
    x = np.asarray(waveform, np.float32)
    n = num_frames(x.shape[0])
    if n == 0:
        raise ValueError(
            f"audio of {x.shape[0]} samples is shorter than one {WIN_LENGTH}-sample analysis window "
            f"({WIN_LENGTH / SAMPLE_RATE * 1000:.0f} ms at 16 kHz)"
        )
    frames = np.lib.stride_tricks.sliding_window_view(x, WIN_LENGTH)[::HOP_LENGTH][:n]
    window = np.hamming(WIN_LENGTH)  # symmetric, float64, as torch.hamming_window(periodic=False)
    filters = mel_filters(n_mels, 0.0, mel_max_hz)
    out = np.empty((n, n_mels), np.float32)
    for s in range(0, n, _BLOCK):
        f = frames[s : s + _BLOCK]
        prev = np.concatenate([f[:, :1], f[:, :-1]], axis=1)  # the first sample is its own predecessor
        f = (f - np.float32(PREEMPHASIS) * prev) * np.float32(PCM_SCALE)
        spec = np.fft.rfft(window * f, n=N_FFT, axis=-1).astype(np.complex64)
        power = np.square(np.abs(spec))
        out[s : s + _BLOCK] = np.log(np.maximum(power @ filters, 1.0))
    return out


@dataclasses.dataclass(frozen=True)
class Phi4FeatureConfig:
    """The `preprocessor_config.json` fields that shape the features; others are refused by name."""

    feature_size: int = 80
    mel_max_frequency: float = MEL_MAX_HZ
    audio_compression_rate: int = 8

    @classmethod
    def from_dict(cls, d: Mapping[str, Any], source: str = "preprocessor_config.json") -> Phi4FeatureConfig:
        # The released remote-code file names the class Phi4MMProcessor / Phi4MMAudioFeatureExtractor.
        fixed = {
            "sampling_rate": (d.get("sampling_rate", SAMPLE_RATE), SAMPLE_RATE),
            "hop_length": (d.get("hop_length", HOP_LENGTH), HOP_LENGTH),
            "win_length": (d.get("win_length", WIN_LENGTH), WIN_LENGTH),
            "n_fft": (d.get("n_fft", N_FFT), N_FFT),
            "preemphasis": (float(d.get("preemphasis", PREEMPHASIS)), PREEMPHASIS),
            "audio_downsample_rate": (d.get("audio_downsample_rate", 1), 1),
            "audio_feat_stride": (d.get("audio_feat_stride", 1), 1),
            "mel_min_frequency": (float(d.get("mel_min_frequency", 0.0)), 0.0),
        }
        for field, (got, want) in fixed.items():
            if got != want:
                raise ValueError(f"{source}: {field}={got!r} is not implemented (hr_jax supports {want!r})")
        return cls(
            feature_size=int(d.get("feature_size", 80)),
            mel_max_frequency=float(d.get("mel_max_frequency", MEL_MAX_HZ)),
            audio_compression_rate=int(d.get("audio_compression_rate", 8)),
        )

    @classmethod
    def from_dir(cls, directory: str | os.PathLike) -> Phi4FeatureConfig | None:
        path = Path(directory) / "preprocessor_config.json"
        if not path.is_file():
            return None
        d = json.loads(path.read_text())
        d = d.get("audio_processor", d) if isinstance(d.get("audio_processor"), dict) else d
        return cls.from_dict(d, source=str(path))


@dataclasses.dataclass(frozen=True)
class Phi4LogMel:
    """Batch front end: `[B, mel, T]` features (rows zero-padded to the longest) and `[B, T]` mask."""

    config: Phi4FeatureConfig = Phi4FeatureConfig()
    max_samples: int | None = None  # no limit of its own (the decoder's positions bound the audio)

    def __call__(
        self, waveforms: Sequence[np.ndarray], padding: str = "max_length", truncation: bool = True
    ) -> tuple[np.ndarray, np.ndarray]:
        """`[B, mel, T]` features and `[B, T]` mask, T the longest clip's frames (the Phi-4 processor
        pads to the longest, so both `padding`s are the same; it cuts nothing, so `truncation` changes
        nothing)."""
        check_padding(padding)
        if len(waveforms) == 0:
            raise ValueError("the feature extractor needs at least one waveform")
        mels = [log_mel(w, self.config.feature_size, self.config.mel_max_frequency) for w in waveforms]
        t = max(m.shape[0] for m in mels)
        feats = np.zeros((len(mels), self.config.feature_size, t), np.float32)
        mask = np.zeros((len(mels), t), np.int32)
        for b, m in enumerate(mels):
            feats[b, :, : m.shape[0]] = m.T
            mask[b, : m.shape[0]] = 1
        return feats, mask
