"""Non-speech sounds synthesized in NumPy at 16 kHz: tones, chords, noise colours, click trains, melodies
in a few styles, background scenes and short sound events.

Every generator takes an explicit ``numpy.random.Generator`` and returns a 1-D float32 array, so a clip
is a pure function of its seed. Classes are built to be *distinct and learnable* by a tiny model:

- sound events: ``dog bark`` (2-4 harmonic bursts with a falling pitch), ``siren`` (slow wailing sweep),
  ``door knock`` (groups of low damped knocks), ``beeping`` (short high pure pips), ``bird chirp``
  (fast upward sweeps above 2.5 kHz), ``phone ring`` (low dual tone with a fast tremolo);
- scenes: ``white noise``, ``pink noise``, ``brown noise`` (1/f^0, 1/f, 1/f^2 spectra), ``rain`` (dense
  droplets over a soft bed), ``hum`` (mains hum: 50/60 Hz and harmonics);
- melody styles: ``happy`` (major arpeggios, bright, medium-fast), ``sad`` (slow minor, descending, soft,
  low), ``dance`` (fast staccato over a kick drum and hi-hat), ``calm`` (slow sustained major chords).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

from hr_jax.audio import SAMPLE_RATE

SR = SAMPLE_RATE

SOUND_EVENTS: tuple[str, ...] = ("dog bark", "siren", "door knock", "beeping", "bird chirp", "phone ring")
SCENES: tuple[str, ...] = ("white noise", "pink noise", "brown noise", "rain", "hum")
MELODY_STYLES: tuple[str, ...] = ("happy", "sad", "dance", "calm")
NOISE_COLOURS: tuple[str, ...] = ("white", "pink", "brown")


# --------------------------------------------------------------------------------------------------
# Building blocks
# --------------------------------------------------------------------------------------------------


def n_samples(seconds: float) -> int:
    """Number of samples in ``seconds`` (at least 1)."""
    return max(1, int(round(seconds * SR)))


def normalize_rms(x: np.ndarray, rms: float, max_peak: float = 0.6) -> np.ndarray:
    """Scale ``x`` to the given RMS, then down to ``max_peak`` if its peak is higher (impulsive sounds
    would otherwise get huge peaks). Silence stays silence."""
    cur = float(np.sqrt(np.mean(np.square(x, dtype=np.float64)))) if x.size else 0.0
    if cur < 1e-12:
        return x.astype(np.float32)
    gain = rms / cur
    peak = float(np.abs(x).max()) * gain
    if peak > max_peak:
        gain *= max_peak / peak
    return (x * gain).astype(np.float32)


def envelope(n: int, attack: float = 0.01, release: float = 0.02) -> np.ndarray:
    """Linear attack/release envelope of ``n`` samples (times in seconds, clipped to fit)."""
    env = np.ones(n, dtype=np.float32)
    a = min(n // 2, int(attack * SR))
    r = min(n - a, int(release * SR))
    if a > 0:
        env[:a] = np.linspace(0.0, 1.0, a, endpoint=False, dtype=np.float32)
    if r > 0:
        env[n - r :] = np.linspace(1.0, 0.0, r, dtype=np.float32)
    return env


def decay(n: int, tau: float) -> np.ndarray:
    """Exponential decay ``exp(-t / tau)`` over ``n`` samples."""
    return np.exp(-np.arange(n, dtype=np.float32) / (tau * SR)).astype(np.float32)


_WAVE_HARMONICS: dict[str, Callable[[int], float]] = {
    "sine": lambda k: 1.0 if k == 1 else 0.0,
    "triangle": lambda k: (1.0 / k**2) * (1 if (k // 2) % 2 == 0 else -1) if k % 2 else 0.0,
    "square": lambda k: 1.0 / k if k % 2 else 0.0,
    "saw": lambda k: 1.0 / k,
}


def oscillator(freq: float | np.ndarray, n: int, wave: str = "sine", max_harmonics: int = 12) -> np.ndarray:
    """Band-limited oscillator (additive synthesis) with a constant or per-sample frequency in Hz."""
    if wave not in _WAVE_HARMONICS:
        raise ValueError(f"unknown wave {wave!r}; one of {sorted(_WAVE_HARMONICS)}")
    f = np.broadcast_to(np.asarray(freq, dtype=np.float64), (n,))
    phase = 2.0 * np.pi * np.cumsum(f) / SR
    fmax = float(f.max())
    out = np.zeros(n, dtype=np.float64)
    for k in range(1, max_harmonics + 1):
        amp = _WAVE_HARMONICS[wave](k)
        if amp == 0.0:
            continue
        if k * fmax >= 0.45 * SR:
            break
        out += amp * np.sin(k * phase)
    return out.astype(np.float32)


def tone(
    freq: float, seconds: float, wave: str = "sine", attack: float = 0.01, release: float = 0.03
) -> np.ndarray:
    """A steady tone with a short envelope."""
    n = n_samples(seconds)
    return oscillator(freq, n, wave) * envelope(n, attack, release)


def chord(
    freqs: Sequence[float], seconds: float, wave: str = "sine", attack: float = 0.02, release: float = 0.1
) -> np.ndarray:
    """Several tones summed (divided by their count)."""
    n = n_samples(seconds)
    out = sum(oscillator(f, n, wave) for f in freqs) / max(1, len(freqs))
    return (out * envelope(n, attack, release)).astype(np.float32)


def midi_to_hz(note: float) -> float:
    """MIDI note number to frequency (A4 = 69 = 440 Hz)."""
    return 440.0 * 2.0 ** ((note - 69.0) / 12.0)


def coloured_noise(colour: str, n: int, rng: np.random.Generator) -> np.ndarray:
    """White, pink (1/f power) or brown (1/f^2 power) noise, unit RMS, via spectral shaping."""
    white = rng.standard_normal(n)
    if colour == "white":
        return normalize_rms(white, 1.0, max_peak=np.inf)
    if colour not in NOISE_COLOURS:
        raise ValueError(f"unknown noise colour {colour!r}; one of {NOISE_COLOURS}")
    spec = np.fft.rfft(white)
    f = np.fft.rfftfreq(n, 1.0 / SR)
    f[0] = f[1] if n > 1 else 1.0
    f = np.maximum(f, 20.0)  # no energy pile-up below 20 Hz
    spec *= f ** (-0.5 if colour == "pink" else -1.0)
    return normalize_rms(np.fft.irfft(spec, n), 1.0, max_peak=np.inf)


def click_train(rate: float, seconds: float, rng: np.random.Generator, jitter: float = 0.0) -> np.ndarray:
    """Impulse train of short decaying clicks at ``rate`` Hz (``jitter``: relative timing randomness)."""
    n = n_samples(seconds)
    out = np.zeros(n, dtype=np.float32)
    click = (rng.standard_normal(80) * decay(80, 0.001)).astype(np.float32)
    t = 0.0
    while True:
        i = int(t * SR)
        if i + click.size > n:
            break
        out[i : i + click.size] += click
        t += (1.0 / rate) * (1.0 + jitter * float(rng.uniform(-1, 1)))
    return out


def place(dst: np.ndarray, src: np.ndarray, at: int) -> None:
    """Add ``src`` into ``dst`` starting at sample ``at`` (clipped to ``dst``)."""
    if at >= dst.size or at + src.size <= 0:
        return
    s0 = max(0, -at)
    end = min(dst.size, at + src.size)
    dst[max(0, at) : end] += src[s0 : s0 + end - max(0, at)]


def _concat(parts: Sequence[np.ndarray]) -> np.ndarray:
    return (
        np.concatenate([np.asarray(p, dtype=np.float32) for p in parts]) if parts else np.zeros(0, np.float32)
    )


def _silence(seconds: float) -> np.ndarray:
    return np.zeros(n_samples(seconds), dtype=np.float32)


# --------------------------------------------------------------------------------------------------
# Sound events
# --------------------------------------------------------------------------------------------------


def _dog_bark(rng: np.random.Generator) -> np.ndarray:
    parts: list[np.ndarray] = []
    for _ in range(int(rng.integers(2, 5))):
        n = n_samples(rng.uniform(0.14, 0.24))
        t = np.arange(n) / n
        f0 = rng.uniform(420, 650) * (rng.uniform(0.45, 0.6) ** t)  # falling pitch
        voiced = oscillator(f0, n, "saw", max_harmonics=10)
        rough = 1.0 + 0.5 * np.sin(2 * np.pi * rng.uniform(30, 50) * np.arange(n) / SR)
        noisy = coloured_noise("pink", n, rng) * 0.35
        env = envelope(n, 0.005, 0.01) * decay(n, rng.uniform(0.05, 0.09))
        parts += [((voiced * rough + noisy) * env).astype(np.float32), _silence(rng.uniform(0.12, 0.3))]
    return _concat(parts[:-1])


def _siren(rng: np.random.Generator) -> np.ndarray:
    n = n_samples(rng.uniform(1.6, 3.0))
    t = np.arange(n) / SR
    period = rng.uniform(0.7, 1.3)
    f = rng.uniform(800, 1000) + rng.uniform(250, 380) * np.sin(
        2 * np.pi * t / period + rng.uniform(0, 2 * np.pi)
    )
    x = oscillator(f, n, "sine") + 0.3 * oscillator(2 * f, n, "sine") + 0.1 * oscillator(3 * f, n, "sine")
    return (x * envelope(n, 0.05, 0.1)).astype(np.float32)


def _door_knock(rng: np.random.Generator) -> np.ndarray:
    modes = [rng.uniform(110, 180), rng.uniform(250, 400), rng.uniform(600, 900)]
    parts: list[np.ndarray] = []
    for g in range(int(rng.integers(1, 3))):
        for _ in range(int(rng.integers(3, 5))):
            n = n_samples(0.09)
            t = np.arange(n) / SR
            k = sum(a * np.sin(2 * np.pi * f * t) for a, f in zip((1.0, 0.6, 0.3), modes, strict=True))
            k = k * decay(n, rng.uniform(0.015, 0.03))
            burst = rng.standard_normal(n) * decay(n, 0.002) * 0.6
            parts += [(k + burst).astype(np.float32), _silence(rng.uniform(0.08, 0.18))]
        if g == 0:
            parts.append(_silence(rng.uniform(0.4, 0.7)))
    return _concat(parts[:-1])


def _beeping(rng: np.random.Generator) -> np.ndarray:
    f = rng.uniform(900, 1800)
    parts: list[np.ndarray] = []
    for _ in range(int(rng.integers(3, 7))):
        parts += [tone(f, rng.uniform(0.08, 0.15), "sine", 0.004, 0.004), _silence(rng.uniform(0.1, 0.22))]
    return _concat(parts[:-1])


def _bird_chirp(rng: np.random.Generator) -> np.ndarray:
    parts: list[np.ndarray] = []
    for _ in range(int(rng.integers(4, 10))):
        n = n_samples(rng.uniform(0.04, 0.09))
        t = np.arange(n) / n
        f = rng.uniform(2500, 3400) + rng.uniform(1500, 2500) * t**0.7
        x = oscillator(f, n, "sine") * np.sin(np.pi * t) ** 2
        parts += [x.astype(np.float32), _silence(rng.uniform(0.03, 0.15))]
    return _concat(parts[:-1])


def _phone_ring(rng: np.random.Generator) -> np.ndarray:
    f1 = rng.uniform(400, 480)
    f2 = f1 + rng.uniform(40, 60)
    trem = rng.uniform(15, 25)
    parts: list[np.ndarray] = []
    for _ in range(2):
        n = n_samples(rng.uniform(0.6, 1.0))
        t = np.arange(n) / SR
        x = (oscillator(f1, n) + oscillator(f2, n)) * 0.5
        gate = 0.55 + 0.45 * np.tanh(4.0 * np.sin(2 * np.pi * trem * t))  # smooth square tremolo
        parts += [(x * gate * envelope(n, 0.01, 0.02)).astype(np.float32), _silence(rng.uniform(0.3, 0.5))]
    return _concat(parts[:-1])


_EVENT_FNS: dict[str, Callable[[np.random.Generator], np.ndarray]] = {
    "dog bark": _dog_bark,
    "siren": _siren,
    "door knock": _door_knock,
    "beeping": _beeping,
    "bird chirp": _bird_chirp,
    "phone ring": _phone_ring,
}


def sound_event(name: str, rng: np.random.Generator, rms: float = 0.1) -> np.ndarray:
    """One of :data:`SOUND_EVENTS` (0.5-3 s), scaled to ``rms``."""
    if name not in _EVENT_FNS:
        raise ValueError(f"unknown sound event {name!r}; one of {SOUND_EVENTS}")
    return normalize_rms(_EVENT_FNS[name](rng), rms)


# --------------------------------------------------------------------------------------------------
# Scenes (background noise classes)
# --------------------------------------------------------------------------------------------------


def scene(name: str, seconds: float, rng: np.random.Generator, rms: float = 0.08) -> np.ndarray:
    """``seconds`` of one of :data:`SCENES`, scaled to ``rms`` with 0.2 s fades."""
    n = n_samples(seconds)
    if name in ("white noise", "pink noise", "brown noise"):
        x = coloured_noise(name.split()[0], n, rng)
    elif name == "rain":
        x = 0.25 * coloured_noise("pink", n, rng)
        drops = np.zeros(n, dtype=np.float32)
        count = int(rng.uniform(150, 300) * n / SR)
        drop_len = 120
        shape = decay(drop_len, 0.002)
        for at in rng.integers(0, max(1, n - drop_len), size=count):
            drops[at : at + drop_len] += (
                rng.standard_normal(drop_len).astype(np.float32) * shape * rng.uniform(0.3, 1)
            )
        drops = np.diff(drops, prepend=0.0).astype(np.float32)  # brighter droplets
        x = x + normalize_rms(drops, 1.0, max_peak=np.inf)
    elif name == "hum":
        base = 50.0 if rng.random() < 0.5 else 60.0
        t = np.arange(n) / SR
        x = sum(
            rng.uniform(0.2, 1.0) / k * np.sin(2 * np.pi * base * k * t + rng.uniform(0, 6.28))
            for k in range(1, 17)
        )
        x = x * (1.0 + 0.1 * np.sin(2 * np.pi * rng.uniform(0.2, 0.6) * t)) + 0.02 * rng.standard_normal(n)
    else:
        raise ValueError(f"unknown scene {name!r}; one of {SCENES}")
    return normalize_rms(np.asarray(x, dtype=np.float32) * envelope(n, 0.2, 0.2), rms)


# --------------------------------------------------------------------------------------------------
# Melodies
# --------------------------------------------------------------------------------------------------

_MAJOR = (0, 2, 4, 5, 7, 9, 11)
_MINOR = (0, 2, 3, 5, 7, 8, 10)


def _scale_note(root: int, mode: Sequence[int], degree: int) -> int:
    octave, idx = divmod(degree, len(mode))
    return root + 12 * octave + mode[idx]


def _kick(rng: np.random.Generator) -> np.ndarray:
    n = n_samples(0.12)
    f = rng.uniform(50, 60) * (1 + 2 * decay(n, 0.01))
    return oscillator(f, n) * decay(n, 0.04)


def _hat(rng: np.random.Generator) -> np.ndarray:
    n = n_samples(0.03)
    x = np.diff(rng.standard_normal(n + 1)).astype(np.float32)
    return x * decay(n, 0.008) * 0.3


def melody(style: str, seconds: float, rng: np.random.Generator, rms: float = 0.1) -> np.ndarray:
    """About ``seconds`` of music in one of :data:`MELODY_STYLES`, scaled to ``rms``."""
    n_total = n_samples(seconds)
    out = np.zeros(n_total, dtype=np.float32)
    if style == "happy":
        root = int(rng.integers(60, 70))
        step = 60.0 / rng.uniform(110, 140) / 2  # eighth notes
        pattern = [0, 2, 4, 7, 4, 2]
        chords = [0, 3, 4, 0]  # I IV V I
        i = 0
        while (at := int(i * step * SR)) < n_total:
            deg = chords[(i // len(pattern)) % len(chords)] + pattern[i % len(pattern)]
            note = tone(midi_to_hz(_scale_note(root, _MAJOR, deg)), step * 0.9, "triangle", 0.01, 0.05)
            place(out, note, at)
            i += 1
    elif style == "sad":
        root = int(rng.integers(45, 55))
        step = 60.0 / rng.uniform(50, 70)  # quarter notes
        deg = int(rng.integers(7, 11))
        i = 0
        while (at := int(i * step * SR)) < n_total:
            nn = n_samples(step * rng.choice([1.0, 1.0, 2.0]))
            f = midi_to_hz(_scale_note(root, _MINOR, deg)) * (
                1 + 0.006 * np.sin(2 * np.pi * 5 * np.arange(nn) / SR)
            )
            place(out, oscillator(f, nn, "triangle") * envelope(nn, 0.12, 0.3), at)
            deg = max(0, deg + int(rng.choice([-2, -1, -1, -1, 0, 1])))
            i += max(1, round(nn / SR / step))
    elif style == "dance":
        root = int(rng.integers(55, 67))
        mode = _MAJOR if rng.random() < 0.5 else _MINOR
        beat = 60.0 / rng.uniform(124, 145)
        step = beat / 4  # sixteenths
        riff = [int(d) for d in rng.integers(0, 8, size=8)]
        i = 0
        while (at := int(i * step * SR)) < n_total:
            if i % 4 == 0:
                place(out, _kick(rng) * 1.5, at)
            if i % 4 == 2:
                place(out, _hat(rng), at)
            if i % 2 == 0:
                note = tone(
                    midi_to_hz(_scale_note(root, mode, riff[(i // 2) % 8])),
                    step * 0.45,
                    "square",
                    0.002,
                    0.01,
                )
                place(out, note * 0.6, at)
            i += 1
    elif style == "calm":
        root = int(rng.integers(57, 67))
        progression = [0, 3, 4, 5] if rng.random() < 0.5 else [0, 5, 3, 4]  # I IV V vi / I vi IV V
        dur = rng.uniform(1.6, 2.4)
        i = 0
        while (at := int(i * dur * SR)) < n_total:
            deg = progression[i % len(progression)]
            freqs = [midi_to_hz(_scale_note(root, _MAJOR, deg + d)) for d in (0, 2, 4)]
            freqs.append(freqs[0] / 2)
            place(out, chord(freqs, dur * 1.3, "sine", attack=0.5, release=0.6), at)
            i += 1
    else:
        raise ValueError(f"unknown melody style {style!r}; one of {MELODY_STYLES}")
    return normalize_rms(out * envelope(n_total, 0.02, 0.15), rms)


# --------------------------------------------------------------------------------------------------
# Distractor sounds (for speech tasks, where the sound class does not matter)
# --------------------------------------------------------------------------------------------------

DISTRACTOR_KINDS: tuple[str, ...] = ("tone", "chord", "clicks", "noise", "event", "melody")


def distractor_sound(rng: np.random.Generator, rms: float = 0.05) -> tuple[str, str, np.ndarray]:
    """A random non-speech sound ``(kind, label, audio)``: tone, chord, click train, noise burst, event or
    melody; the label names the event or the melody style (``"<style> music"``), else it is the kind."""
    kind = DISTRACTOR_KINDS[int(rng.integers(len(DISTRACTOR_KINDS)))]
    label = kind
    if kind == "tone":
        x = tone(
            rng.uniform(200, 2000), rng.uniform(0.3, 1.5), str(rng.choice(["sine", "triangle", "square"]))
        )
    elif kind == "chord":
        root = int(rng.integers(48, 72))
        third = 4 if rng.random() < 0.5 else 3
        x = chord([midi_to_hz(root + d) for d in (0, third, 7)], rng.uniform(0.5, 2.0), "triangle")
    elif kind == "clicks":
        x = click_train(rng.uniform(2, 20), rng.uniform(0.5, 2.0), rng, jitter=float(rng.uniform(0, 0.3)))
    elif kind == "noise":
        n = n_samples(rng.uniform(0.3, 1.5))
        x = coloured_noise(str(rng.choice(NOISE_COLOURS)), n, rng) * envelope(n, 0.05, 0.1)
    elif kind == "event":
        label = SOUND_EVENTS[int(rng.integers(len(SOUND_EVENTS)))]
        x = sound_event(label, rng)
    else:
        style = MELODY_STYLES[int(rng.integers(len(MELODY_STYLES)))]
        label = f"{style} music"
        x = melody(style, rng.uniform(1.5, 3.0), rng)
    return kind, label, normalize_rms(x, rms)
