"""Static shapes ("buckets") that jitted entry points compile for.

One program is compiled per (batch size, padded length, ratio, method, …) bucket. Within a bucket,
audio content, per-row audio lengths and prompts may change freely without recompiling:

- the sequence length L, the audio-token slots `audio_cap` (≤ L) and the mel frames T are rounded up
  to geometric buckets (`bucket`): multiples of a base (`SEQ_MULTIPLE` tokens, `AUDIO_MULTIPLE` tokens,
  the family's frame granularity, 4 s of frames) up to `PER_OCTAVE` bases, then `PER_OCTAVE` steps per
  doubling of the length. Padding is at most 1/`PER_OCTAVE` (12.5%) of a length, and the number of
  programs a sweep compiles grows with the logarithm of its length range, not linearly: a sweep over
  clips of 1 to 10 minutes meets 28 sequence buckets instead of 212;
- text-after-audio slots (the HeadRouter probe's queries) up to a multiple of `TEXT_MULTIPLE`;
- KV-cache room for decoding up to a multiple of `DECODE_MULTIPLE` new tokens;
- the pruned length `keep_len = min(L, non_audio_cap + floor(audio_cap · (1 − r)))`, where
  `non_audio_cap` bounds each row's non-audio tokens. When every row has the same prompt this is
  SPEC's `L − Na_max + floor(Na_max · (1 − r))` up to bucket rounding; with different prompt
  lengths per row it is the smallest static length that can hold every row's kept tokens.

Coarser buckets (`HR_JAX_BUCKET_SECONDS=S`, read when a batch is planned, on the host) round the
sequence, the audio slots and the mel frames up to whole multiples of S seconds of audio instead: more
padding, fewer compiles still, for a sweep over many methods and ratios (a benchmark table).
"""

from __future__ import annotations

import os

from hr_jax.audio import HOP_LENGTH, SAMPLE_RATE

SEQ_MULTIPLE = 64
AUDIO_MULTIPLE = 64
TEXT_MULTIPLE = 16
DECODE_MULTIPLE = 64  # free KV-cache slots for decoding: max_new_tokens rounded up
PER_OCTAVE = 8  # geometric buckets per doubling of a length: padding at most 1/8 of it
BUCKET_SECONDS_ENV = "HR_JAX_BUCKET_SECONDS"


def round_up(n: int, multiple: int) -> int:
    return max(multiple, -(-int(n) // multiple) * multiple)


def bucket(n: int, multiple: int) -> int:
    """`n` rounded up to its geometric bucket: a multiple of `multiple`; below `PER_OCTAVE` multiples
    every multiple is a bucket, above, a length of u multiples (2^k <= u < 2^(k+1)) rounds up to a
    multiple of 2^k / PER_OCTAVE of them, so the padding is under 1/PER_OCTAVE of `n`."""
    units = max(1, -(-int(n) // multiple))
    step = max(1, (1 << (units.bit_length() - 1)) // PER_OCTAVE)
    return -(-units // step) * step * multiple


def bucket_seconds() -> float | None:
    """`HR_JAX_BUCKET_SECONDS` as a positive number of seconds, or None (the geometric buckets)."""
    raw = os.environ.get(BUCKET_SECONDS_ENV, "")
    if not raw:
        return None
    try:
        seconds = float(raw)
    except ValueError:
        seconds = -1.0
    if not seconds > 0:
        raise ValueError(f"{BUCKET_SECONDS_ENV}={raw!r}: expected a positive number of seconds")
    return seconds


def token_multiple(default: int, tokens_per_second: float) -> int:
    """The coarse rounding of the sequence and audio-slot lengths: `default` tokens, or a bucket's
    seconds of audio tokens at the family's `tokens_per_second` (Qwen2.5-Omni 25, Phi-4 12.5)."""
    seconds = bucket_seconds()
    return default if seconds is None else round_up(seconds * tokens_per_second, default)


def frame_multiple(base: int) -> int:
    """The coarse rounding of feature frames: the family's own granularity `base` (Qwen: two encoder
    windows), or a bucket's seconds in whole multiples of it."""
    seconds = bucket_seconds()
    return base if seconds is None else round_up(seconds * SAMPLE_RATE / HOP_LENGTH, base)


def token_bucket(n: int, default: int, tokens_per_second: float) -> int:
    """A sequence or audio-slot length `n` rounded to its bucket (geometric, or the coarse seconds)."""
    if bucket_seconds() is None:
        return bucket(n, default)
    return round_up(n, token_multiple(default, tokens_per_second))


def frame_bucket(n: int, base: int) -> int:
    """A count of feature frames rounded to its bucket, in whole multiples of the family's `base`."""
    if bucket_seconds() is None:
        return bucket(n, base)
    return round_up(n, frame_multiple(base))
