"""Speech from the ``espeak-ng`` command-line synthesizer, resampled to 16 kHz mono float32.

``espeak-ng`` (Debian package ``espeak-ng``; ``.ci/install-system-deps.sh`` installs it) is called as a
subprocess with ``--stdout``, so nothing is written to disk. Its output is deterministic for fixed
arguments, which makes every clip reproducible from its seed on the same espeak-ng version.

Voices are ``<accent>+<variant>``: the accent picks the language file (British, American, Scottish,
Caribbean English), the variant (``m1``..``m7``, ``f1``..``f5``) the speaker. Measured median F0 at the
pitch range used here (``-p`` 30..70): male variants about 75-125 Hz, female variants about 145-250 Hz,
so speaker gender is a clean acoustic property. (``en-gb+fN`` silently ignores the variant in
espeak-ng 1.51, which is why plain ``en`` is used for British English.)
"""

from __future__ import annotations

import io
import shutil
import subprocess
from dataclasses import dataclass

import numpy as np
import soundfile as sf
import soxr

from hr_jax.audio import SAMPLE_RATE

ACCENTS: tuple[str, ...] = ("en", "en-us", "en-gb-scotland", "en-029")
MALE_VARIANTS: tuple[str, ...] = ("m1", "m2", "m3", "m4", "m5", "m6", "m7")
FEMALE_VARIANTS: tuple[str, ...] = ("f1", "f2", "f3", "f4", "f5")
RATE_RANGE: tuple[int, int] = (135, 185)  # words per minute (espeak-ng -s)
PITCH_RANGE: tuple[int, int] = (30, 70)  # espeak-ng -p, 0..99 around the variant's base pitch

_INSTALL_HINT = (
    "espeak-ng is required to synthesize speech but was not found on PATH. Install it with "
    "`apt-get install -y espeak-ng` (Debian/Ubuntu) or run `.ci/install-system-deps.sh`."
)


class EspeakNotFoundError(RuntimeError):
    """Raised when the ``espeak-ng`` binary is not on ``PATH``."""


@dataclass(frozen=True)
class Voice:
    """One espeak-ng speaker: accent, variant and prosody."""

    accent: str
    variant: str
    rate: int
    pitch: int

    @property
    def gender(self) -> str:
        """``"male"`` or ``"female"``, from the variant name."""
        return "female" if self.variant.startswith("f") else "male"

    @property
    def name(self) -> str:
        """The ``-v`` argument for espeak-ng."""
        return f"{self.accent}+{self.variant}"

    def as_dict(self) -> dict[str, object]:
        """JSON-friendly description (stored in the record's ``meta``)."""
        return {"voice": self.name, "rate": self.rate, "pitch": self.pitch, "gender": self.gender}


def espeak_binary() -> str:
    """Path of the ``espeak-ng`` executable; raises :class:`EspeakNotFoundError` when missing."""
    path = shutil.which("espeak-ng")
    if path is None:
        raise EspeakNotFoundError(_INSTALL_HINT)
    return path


def random_voice(rng: np.random.Generator, gender: str | None = None) -> Voice:
    """Draw a voice; ``gender`` (``"male"``/``"female"``) fixes the variant family, else 50/50."""
    if gender is None:
        gender = "female" if rng.random() < 0.5 else "male"
    if gender not in ("male", "female"):
        raise ValueError(f"gender must be 'male' or 'female', got {gender!r}")
    variants = FEMALE_VARIANTS if gender == "female" else MALE_VARIANTS
    return Voice(
        accent=ACCENTS[int(rng.integers(len(ACCENTS)))],
        variant=variants[int(rng.integers(len(variants)))],
        rate=int(rng.integers(RATE_RANGE[0], RATE_RANGE[1] + 1)),
        pitch=int(rng.integers(PITCH_RANGE[0], PITCH_RANGE[1] + 1)),
    )


def _trim(x: np.ndarray, threshold: float = 1e-3, pad: int = 320) -> np.ndarray:
    """Drop leading/trailing near-silence, keeping ``pad`` samples (20 ms) on each side."""
    idx = np.flatnonzero(np.abs(x) > threshold)
    if idx.size == 0:
        return x[:0]
    return x[max(0, idx[0] - pad) : idx[-1] + 1 + pad]


def speak(text: str, voice: Voice) -> np.ndarray:
    """Synthesize ``text`` with ``voice``: 1-D float32 at 16 kHz, silence trimmed, peak-normalized to 0.9.

    Raises :class:`EspeakNotFoundError` when espeak-ng is missing and ``RuntimeError`` when it fails or
    produces no audio.
    """
    if not text.strip():
        raise ValueError("text to speak is empty")
    cmd = [espeak_binary(), "-v", voice.name, "-s", str(voice.rate), "-p", str(voice.pitch), "--stdout", text]
    proc = subprocess.run(cmd, capture_output=True, check=False)
    if proc.returncode != 0 or not proc.stdout:
        err = proc.stderr.decode(errors="replace").strip()
        raise RuntimeError(f"espeak-ng failed (rc={proc.returncode}) for voice {voice.name}: {err}")
    wav, sr = sf.read(io.BytesIO(proc.stdout), dtype="float32", always_2d=True)
    mono = wav.mean(axis=1)
    if sr != SAMPLE_RATE:
        mono = soxr.resample(mono, sr, SAMPLE_RATE, quality="HQ")
    mono = _trim(np.asarray(mono, dtype=np.float32))
    if mono.size == 0:
        raise RuntimeError(f"espeak-ng produced silence for {text!r} with voice {voice.name}")
    peak = float(np.abs(mono).max())
    return (mono * (0.9 / peak)).astype(np.float32)
