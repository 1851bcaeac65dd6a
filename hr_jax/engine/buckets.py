"""Static shapes ("buckets") that jitted entry points compile for.

One program is compiled per (batch size, padded length, ratio, method, …) bucket. Within a bucket,
audio content, per-row audio lengths and prompts may change freely without recompiling:

- sequence length L is padded (on the left) up to a multiple of `SEQ_MULTIPLE` tokens;
- mel frames T up to a multiple of `FRAME_MULTIPLE` (two encoder windows, 4 s of audio);
- audio-token slots `audio_cap` up to a multiple of `AUDIO_MULTIPLE` (≤ L);
- text-after-audio slots (the HeadRouter probe's queries) up to a multiple of `TEXT_MULTIPLE`;
- KV-cache room for decoding up to a multiple of `DECODE_MULTIPLE` new tokens;
- the pruned length `keep_len = min(L, non_audio_cap + floor(audio_cap · (1 − r)))`, where
  `non_audio_cap` bounds each row's non-audio tokens. When every row has the same prompt this is
  SPEC's `L − Na_max + floor(Na_max · (1 − r))` up to bucket rounding; with different prompt
  lengths per row it is the smallest static length that can hold every row's kept tokens.

Coarser buckets (`HR_JAX_BUCKET_SECONDS=S`, read when a batch is planned) round the sequence, the
audio slots and the mel frames up to S seconds of audio instead: more padding, far fewer compiles.
Worth it when a run sweeps many methods and ratios over clips of many lengths (a benchmark table).
"""

from __future__ import annotations

import os

from hr_jax.audio import HOP_LENGTH, SAMPLE_RATE

SEQ_MULTIPLE = 64
AUDIO_MULTIPLE = 64
TEXT_MULTIPLE = 16
DECODE_MULTIPLE = 64  # free KV-cache slots for decoding: max_new_tokens rounded up
BUCKET_SECONDS_ENV = "HR_JAX_BUCKET_SECONDS"


def round_up(n: int, multiple: int) -> int:
    return max(multiple, -(-int(n) // multiple) * multiple)


def bucket_seconds() -> float | None:
    """`HR_JAX_BUCKET_SECONDS` as a positive number of seconds, or None (the fine default buckets)."""
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
    """The rounding of the sequence and audio-slot lengths: `default` tokens, or a bucket's seconds of
    audio tokens at the family's `tokens_per_second` (Qwen2.5-Omni 25, Phi-4 12.5)."""
    seconds = bucket_seconds()
    return default if seconds is None else round_up(seconds * tokens_per_second, default)


def frame_multiple(base: int) -> int:
    """The rounding of feature frames: the family's own granularity `base` (Qwen: two encoder windows),
    or a bucket's seconds in whole multiples of it."""
    seconds = bucket_seconds()
    pair = base
    return pair if seconds is None else round_up(seconds * SAMPLE_RATE / HOP_LENGTH, pair)
