"""Slot bookkeeping of the selection step, written once: where in each row the audio tokens and the
probe's text tokens sit, and how a keep mask over audio slots becomes the kept sequence.

"Text after the audio" (the HeadRouter probe's queries and DART's text pivots) is the rule of
`Slots.from_tokens`: the real, non-audio tokens after the row's last `<|AUDIO|>` token.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import struct


def first_true(mask: jax.Array, size: int) -> tuple[jax.Array, jax.Array]:
    """Indices of the first `size` True entries of each row of `mask [B, L]` (ascending; -1 past the
    count) `[B, size]`, and the counts `[B]`."""
    order = jnp.argsort(~mask, axis=1, stable=True)[:, :size].astype(jnp.int32)
    count = mask.sum(axis=1).astype(jnp.int32)
    return jnp.where(jnp.arange(size)[None] < count[:, None], order, -1), count


def take_rows(x: jax.Array, idx: jax.Array) -> jax.Array:
    """x `[B, L, ...]` at per-row indices idx `[B, K]` -> `[B, K, ...]`; -1 reads slot 0 (callers mask it)."""
    idx = jnp.maximum(idx, 0)
    return jnp.take_along_axis(x, idx.reshape(idx.shape + (1,) * (x.ndim - 2)), axis=1)


@struct.dataclass
class Slots:
    """Sequence indices the scorers read, per row (static widths, -1 past each row's count).

    audio: `[B, Na]` the `<|AUDIO|>` tokens; text: `[B, T]` the real tokens after the last audio
    token; last_real: `[B]` the last real token; num_audio: `[B]`.
    """

    audio: jax.Array
    text: jax.Array
    last_real: jax.Array
    num_audio: jax.Array

    @classmethod
    def from_tokens(cls, is_audio: jax.Array, valid: jax.Array, audio_cap: int, text_cap: int) -> Slots:
        """From `is_audio`/`valid` `[B, L]`; `audio_cap`/`text_cap` are the static slot widths."""
        seq = valid.shape[1]
        audio, num_audio = first_true(is_audio, audio_cap)
        last_audio = jnp.max(jnp.where(is_audio, jnp.arange(seq)[None], -1), axis=1)
        is_text = valid & ~is_audio & (jnp.arange(seq)[None] > last_audio[:, None])
        text, _ = first_true(is_text, text_cap)
        last_real = seq - 1 - jnp.argmax(valid[:, ::-1], axis=1)
        return cls(audio=audio, text=text, last_real=last_real, num_audio=num_audio)

    @property
    def audio_mask(self) -> jax.Array:
        return self.audio >= 0

    @property
    def text_mask(self) -> jax.Array:
        return self.text >= 0


def kept_sequence(
    keep_audio: jax.Array, slots: Slots, is_audio: jax.Array, valid: jax.Array, keep_len: int
) -> tuple[jax.Array, jax.Array]:
    """Sequence indices `[B, keep_len]` of the tokens that survive (every real non-audio token and
    the kept audio tokens, ascending, -1 in spare slots) and kept audio tokens per row `[B]`.

    keep_audio: `[B, Na]` bool over audio slots; is_audio/valid: `[B, L]`.
    """
    bsz, seq = valid.shape
    rows = jnp.arange(bsz)[:, None]
    kept = (
        jnp.zeros((bsz, seq), bool).at[rows, jnp.maximum(slots.audio, 0)].max(keep_audio & slots.audio_mask)
    )
    keep_seq = valid & (~is_audio | kept)
    idx, _ = first_true(keep_seq, keep_len)
    return idx, (keep_seq & is_audio).sum(1).astype(jnp.int32)
