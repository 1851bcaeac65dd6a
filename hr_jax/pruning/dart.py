"""DART baseline (duplication-aware pivots), as AudioMarathon runs it on Qwen2.5-Omni.

Unlike the other methods DART's greedy pivot procedure yields the kept mask directly (exactly `k_b`
per row); `dart_select` documents the procedure and where it departs from the public code.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from jax import lax

from hr_jax.pruning.slots import Slots, take_rows
from hr_jax.pruning.topk import as_f32, rows_sort
from models.decoder import rms_norm

Array = jax.Array

HIGHEST = lax.Precision.HIGHEST
_BIG = 2**30  # "not selected" sequence number


def _top_slots(score: Array, mask: Array, count: int) -> tuple[Array, Array]:
    """Indices ``[B, count]`` of the ``count`` highest scores among masked slots (ties -> earlier slot)
    in descending order, and whether each is a valid slot. ``count`` is clipped to the slot count."""
    count = min(count, score.shape[1])
    order = rows_sort(jnp.where(mask, 0, 1), jnp.where(mask, -score, 0.0))[:, :count]
    return order, jnp.take_along_axis(mask, order, axis=1)


def dart_select(
    k_audio: Array,
    k_text: Array,
    h_audio: Array,
    h_text: Array,
    audio_mask: Array,
    text_mask: Array,
    k: Array,
    *,
    audio_pivots: int = 4,
    text_pivots: int = 4,
) -> Array:
    """DART baseline (duplication-aware pivots), as AudioMarathon runs it on Qwen2.5-Omni.

    Args:
      k_audio: ``[B, Na, ...]`` layer M-1 keys of the audio slots *after RoPE* (e.g. ``[B, Na, Hkv, D]``;
        all KV heads are concatenated, i.e. the L1 norm runs over every trailing axis; a ``[B, Na, 1]``
        array of precomputed L1 norms works too).
      k_text: ``[B, T, ...]`` the same for the text slots (text after the audio span).
      h_audio: ``[B, Na, Hd]`` input of layer M passed through the model's final RMSNorm, audio slots.
      h_text: ``[B, T, Hd]`` the same for the text slots.
      audio_mask: ``[B, Na]`` bool; text_mask: ``[B, T]`` bool.
      k: ``[B]`` int audio tokens to keep (clipped to ``[0, Na_b]``).
      audio_pivots, text_pivots: static pivot counts (4 and 4, as AudioMarathon).

    Returns:
      ``keep``: ``[B, Na]`` bool, exactly ``min(k_b, Na_b)`` valid audio slots per row. Text slots are
      never in the output (text pivots only steer the choice).

    Procedure (reference: AudioMarathon ``src/Modeling/modeling_qwen2_5_omni_dart.py``,
    ``get_retained_audio_token``, itself DART's ``get_retained_image_token``; P = 8 pivots):
      1. Audio pivots: the ``audio_pivots`` valid audio slots with the largest key L1 norm; text pivots:
         the ``text_pivots`` valid text slots with the largest key L1 norm (reference: all tokens after
         the audio span). Ties go to the earlier slot. Audio pivots are kept (as in the reference).
      2. ``q = k_b // P`` (reference: ``int(Na * (1 - r) / (4 + 4))``, which equals ``int(k / 8)``).
      3. Pivots in turn -- audio pivots by descending L1, then text pivots by descending L1 -- each take
         the ``q`` remaining (not yet chosen, non-pivot, valid) audio slots least cosine-similar to it
         on the normalised hidden states; chosen slots leave the pool. *Choice*: the reference iterates
         a Python ``set`` of positions (hash order, effectively arbitrary); we fix the L1 order. Ties in
         similarity go to the earlier slot (reference: ``torch.topk``, unspecified).
      4. The union minus the text pivots holds ``n_audio_pivots + P q`` audio slots, which is not ``k``
         in general (reference keeps that many). *SPEC*: exactly ``k``. Everything chosen is numbered
         in the order above (pivots, then pick by pick); if the union is too large only the first ``k``
         are kept (the last pivots lose their last picks; for ``k < 4`` only the top-L1 audio pivots);
         if too small the pivots continue round-robin, in the same order, each taking its next
         least-similar remaining slot until ``k`` are chosen (at most 3 extra picks when all 8
         pivots exist; more only for rows with fewer than 4 text slots).
      Cosine similarity: ``x.y / (max(|x|, 1e-8) max(|y|, 1e-8))`` in float32 (torch's formula).
    """
    am = jnp.asarray(audio_mask, bool)
    tm = jnp.asarray(text_mask, bool)
    B, Na = am.shape
    n = jnp.sum(am, axis=-1).astype(jnp.int32)
    kk = jnp.clip(jnp.asarray(k, jnp.int32), 0, n)
    rows = jnp.arange(B)[:, None]

    def l1(x, mask):
        x = jnp.abs(as_f32(x)).reshape(x.shape[0], x.shape[1], -1)
        return jnp.where(mask, jnp.sum(x, axis=-1), 0.0)

    pa_idx, pa_ok = _top_slots(l1(k_audio, am), am, audio_pivots)
    pt_idx, pt_ok = _top_slots(l1(k_text, tm), tm, text_pivots)
    ha = as_f32(h_audio)
    ht = as_f32(h_text)
    pivots = jnp.concatenate(
        [
            jnp.take_along_axis(ha, pa_idx[..., None], axis=1),
            jnp.take_along_axis(ht, pt_idx[..., None], axis=1),
        ],
        axis=1,
    )  # [B, P, Hd]
    piv_ok = jnp.concatenate([pa_ok, pt_ok], axis=1)  # [B, P]
    eps = 1e-8
    dots = jnp.einsum("bpd,bnd->bpn", pivots, ha, precision=HIGHEST)
    norm_p = jnp.maximum(jnp.linalg.norm(pivots, axis=-1), eps)
    norm_a = jnp.maximum(jnp.linalg.norm(ha, axis=-1), eps)
    sims = dots / (norm_p[:, :, None] * norm_a[:, None, :])
    # Cosines lie in [-1, 1]; anything else (masked garbage, a non-existent pivot) becomes 3, and the
    # `remaining` masks below keep invalid slots out of every choice.
    sims = jnp.where(am[:, None, :] & piv_ok[:, :, None] & jnp.isfinite(sims), sims, 3.0)

    # Sequence number of every chosen audio slot (_BIG = not chosen); keep = seq < k.
    seq = jnp.full((B, Na), _BIG, jnp.int32)
    seq = seq.at[rows, pa_idx].set(jnp.where(pa_ok, jnp.arange(pa_idx.shape[1], dtype=jnp.int32), _BIG))
    pos = jnp.sum(pa_ok, axis=-1).astype(jnp.int32)
    remaining = am & (seq == _BIG)
    q = kk // (audio_pivots + text_pivots)
    iota = lax.broadcasted_iota(jnp.int32, (B, Na), 1)

    def pivot_step(state, xs):  # one pivot in turn (lax.scan keeps the program small)
        seq, pos, remaining = state
        sim_p, ok_p = xs  # [B, Na], [B]
        order = rows_sort(jnp.where(remaining, 0, 1), sim_p)
        rank = jnp.zeros((B, Na), jnp.int32).at[rows, order].set(iota)
        take = remaining & (rank < q[:, None]) & ok_p[:, None]
        seq = jnp.where(take, pos[:, None] + rank, seq)
        pos = pos + jnp.sum(take, axis=-1).astype(jnp.int32)
        return (seq, pos, remaining & ~take), None

    (seq, pos, remaining), _ = lax.scan(
        pivot_step, (seq, pos, remaining), (jnp.moveaxis(sims, 1, 0), jnp.moveaxis(piv_ok, 1, 0))
    )

    # Fill round-robin over the valid pivots until k are chosen.
    n_valid_piv = jnp.maximum(jnp.sum(piv_ok, axis=-1), 1)
    piv_rank = jnp.cumsum(piv_ok, axis=-1) - 1  # index of each valid pivot among the valid ones

    def active(state):
        _, pos, remaining, _ = state
        return (pos < kk) & jnp.any(remaining, axis=-1)

    def body(state):
        seq, pos, remaining, step = state
        act = active(state)
        want = step % n_valid_piv
        p_b = jnp.argmax(piv_ok & (piv_rank == want[:, None]), axis=-1)
        s = jnp.take_along_axis(sims, p_b[:, None, None], axis=1)[:, 0, :]
        j = jnp.argmin(jnp.where(remaining, s + 0.0, 4.0), axis=-1)  # first minimum: earlier slot
        hit = (iota == j[:, None]) & act[:, None] & remaining  # act implies j is a remaining slot
        seq = jnp.where(hit, pos[:, None], seq)
        return seq, pos + act.astype(jnp.int32), remaining & ~hit, step + act.astype(jnp.int32)

    seq, pos, remaining, _ = lax.while_loop(
        lambda st: jnp.any(active(st)), body, (seq, pos, remaining, jnp.zeros((B,), jnp.int32))
    )
    return am & (seq < kk[:, None])


def dart_keep(keys: Array, h_out: Array, final_norm: Array, eps: float, slots: Slots, keep_k: Array) -> Array:
    """`dart`: keep `[B, Na]`. keys `[B, L, Hkv, hd]` layer M-1's keys after RoPE; h_out `[B, L, D]`
    the input of layer M, compared after the model's final RMSNorm (`final_norm` `[D]`, `eps`)."""
    hn = rms_norm(h_out, final_norm, eps)
    return dart_select(
        take_rows(keys, slots.audio),
        take_rows(keys, slots.text),
        take_rows(hn, slots.audio),
        take_rows(hn, slots.text),
        slots.audio_mask,
        slots.text_mask,
        keep_k,
    )
