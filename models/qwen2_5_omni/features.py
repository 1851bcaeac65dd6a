"""Qwen2.5-Omni's audio front end (host side): the Whisper log-mel features its thinker consumes.

Everything here is NumPy (loading and resampling are `hr_jax.audio`'s). The features reproduce
``transformers.WhisperFeatureExtractor`` built from the checkpoint's own ``preprocessor_config.json``
(:class:`FeatureConfig`) and called the way the Qwen2.5-Omni processor calls it::

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
truncates, is refused, unless the caller asks for it explicitly with ``truncation=False`` (as users pass
``audio_kwargs={"truncation": False}`` to the processor): then nothing is cut, the rows are padded to
``max(n_samples, longest)`` and the features are the reference's called with ``truncation=False``.
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

from models.family import check_padding

SAMPLE_RATE = 16000
HOP_LENGTH = 160
N_FFT = 400
PREPROCESSOR_CONFIG_FILE = "preprocessor_config.json"

_LOG_FLOOR = 1e-10  # clamp before log10, as in the reference
_DYNAMIC_RANGE = 8.0  # log10 units kept below the per-waveform maximum
_STFT_BLOCK = 4096  # frames per vectorised STFT block (bounds the temporary memory)


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


TRUNCATION_HINT = (
    "pass truncation=False (hr_jax.make_batch / generate; the CLI's --no-truncation) to take longer audio, "
    "up to the decoder's position range, as the processor does with audio_kwargs={'truncation': False}"
)


def check_feature_length(n_samples: int, fe: FeatureConfig, index: int | None = None) -> None:
    """ValueError if ``n_samples`` 16 kHz samples exceed what the feature extractor takes (with
    truncation, its default)."""
    if n_samples > fe.n_samples:
        which = "audio" if index is None else f"audio {index}"
        raise ValueError(
            f"{which} is {n_samples / SAMPLE_RATE:.2f} s long, longer than the {fe.max_seconds:.0f} s the "
            f"checkpoint's feature extractor takes (preprocessor_config.json chunk_length={fe.chunk_length}; "
            f"the reference processor would silently cut it); {TRUNCATION_HINT}"
        )


def extract_features(
    waveforms: Sequence[np.ndarray],
    fe: FeatureConfig | None = None,
    padding: str = "max_length",
    truncation: bool = True,
) -> tuple[np.ndarray, np.ndarray]:
    """Batch Whisper features and frame mask, exactly as the Qwen2.5-Omni processor produces them.

    Args:
      waveforms: B non-empty 1-D 16 kHz waveforms (``[n_b]``), each at most ``fe.n_samples`` long.
      fe: the checkpoint's feature config (default: the released models', 128 bins, 300 s).
      padding: "max_length" (the processor's, below) or "longest": the same arrays cut after the
        longest row's ``ceil(n / 160)`` frames (what the model reads; a 30 s clip costs 3,000 frames of
        host work and memory, not 30,000).
      truncation: True (the processor's default) refuses audio over ``n_samples``, which the reference
        would cut; False takes it whole, padding every row to ``max(n_samples, longest)`` samples.

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
        if truncation:
            check_feature_length(w.shape[0], fe, i)
        rows.append(w)

    n_samples = fe.n_samples if truncation else max(fe.n_samples, max(w.shape[0] for w in rows))
    n_frames = n_samples // HOP_LENGTH
    if check_padding(padding) == "longest":
        n_frames = min(n_frames, max(num_feature_frames(w.shape[0]) for w in rows))
    features = np.empty((len(rows), fe.feature_size, n_frames), dtype=np.float32)
    mask = np.zeros((len(rows), n_frames), dtype=np.int32)
    for b, w in enumerate(rows):
        own, pad_value = _own_frames(w, fe, n_samples)
        own = own[:, :n_frames]
        features[b, :, : own.shape[1]] = own
        features[b, :, own.shape[1] :] = pad_value
        mask[b, : num_feature_frames(w.shape[0])] = 1
    return features, mask


def _own_frames(w: np.ndarray, fe: FeatureConfig, n_samples: int | None = None) -> tuple[np.ndarray, float]:
    """The frames of `w` that see its samples (`[mel, f]`) in a row padded to `n_samples` (default
    the config's), and the value every later frame takes."""
    n = w.shape[0]
    own_len = min(n_samples or fe.n_samples, num_feature_frames(n + N_FFT) * HOP_LENGTH)
    spec = _log_mel_unnormalised(np.pad(w, (0, own_len - n)), fe.feature_size)
    floor = spec.max() - _DYNAMIC_RANGE
    own = ((np.maximum(spec, floor) + 4.0) / 4.0).astype(np.float32)
    return own, (max(math.log10(_LOG_FLOOR), floor) + 4.0) / 4.0


def clip_features(waveform: np.ndarray, fe: FeatureConfig | None = None) -> np.ndarray:
    """`[mel, ceil(n / 160)]` float32: the valid frames of `extract_features([waveform])`, computed
    without the `[mel, nb_max_frames]` padding (the training stream's front end; a 2 s clip costs its
    own 200 frames, not 30,000)."""
    fe = fe or FeatureConfig()
    w = np.asarray(waveform)
    if w.ndim != 1 or w.shape[0] == 0:
        raise ValueError(f"waveform must be non-empty 1-D [n], got shape {w.shape}")
    check_feature_length(w.shape[0], fe)
    own, pad_value = _own_frames(w, fe)
    frames = num_feature_frames(w.shape[0])
    if own.shape[1] < frames:  # only at the length cap: frames past the STFT's own see padding
        own = np.pad(own, ((0, 0), (0, frames - own.shape[1])), constant_values=pad_value)
    return own[:, :frames]


@dataclasses.dataclass(frozen=True)
class LogMelExtractor:
    """Whisper log-mel front end of the checkpoint (see `hr_jax.audio`), from its preprocessor config."""

    config: FeatureConfig = FeatureConfig()

    @property
    def max_samples(self) -> int | None:
        """The longest waveform it takes with truncation (the reference processor cuts longer ones)."""
        return self.config.n_samples

    def __call__(
        self, waveforms: list[np.ndarray], padding: str = "max_length", truncation: bool = True
    ) -> tuple[np.ndarray, np.ndarray]:
        """`[B, mel, T]` features and `[B, T]` mask, T = nb_max_frames or the longest clip's frames
        (see `extract_features`; `truncation=False` takes audio over the config's length)."""
        return extract_features(waveforms, self.config, padding, truncation)

    @classmethod
    def for_checkpoint(cls, ckpt_dir: str | os.PathLike, cfg: Any) -> LogMelExtractor:
        """The extractor `ckpt_dir/preprocessor_config.json` describes (the released models' without one)."""
        fe = FeatureConfig.from_dir(ckpt_dir) or FeatureConfig(feature_size=cfg.audio.num_mel_bins)
        if fe.feature_size != cfg.audio.num_mel_bins:
            raise ValueError(
                f"{ckpt_dir}: preprocessor_config.json feature_size={fe.feature_size} but the audio encoder "
                f"takes num_mel_bins={cfg.audio.num_mel_bins}"
            )
        return cls(fe)
