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
"""

from __future__ import annotations

SEQ_MULTIPLE = 64
AUDIO_MULTIPLE = 64
TEXT_MULTIPLE = 16
DECODE_MULTIPLE = 64  # free KV-cache slots for decoding: max_new_tokens rounded up


def round_up(n: int, multiple: int) -> int:
    return max(multiple, -(-int(n) // multiple) * multiple)


def frame_multiple(window_frames: int) -> int:
    return 2 * window_frames
