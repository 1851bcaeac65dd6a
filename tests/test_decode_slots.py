"""Decode slots (`hr_jax.engine.slots`): what a slot decodes does not depend on what the other slots
hold. Checked where it can break: Phi-4's LongRoPE picks its factors from the largest position, which a
batch shares but independent slots must not."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import waveform

import hr_jax
from hr_jax.engine import PruningSpec, buckets, run_prefill
from hr_jax.engine.core import decode_weights_core
from hr_jax.engine.slots import SlotState, decode_slots, empty_slots, first_tokens, insert_rows
from hr_jax.testing.phi4 import TINY_LONGROPE_SWITCH
from models.decoder import resolve_decode_layout

STEPS = 4


@pytest.fixture(scope="module")
def phi4(tiny_phi4):
    return hr_jax.load(tiny_phi4[1])


def _decoded(model, batches: list[hr_jax.Batch]) -> SlotState:
    """Each batch prefilled alone, written into slots 0, 1, ..., then `STEPS` greedy steps together."""
    prefills = [run_prefill(model, b, PruningSpec())[0] for b in batches]
    room = max(max(p.cache.lower.capacity, p.cache.upper.capacity) for p in prefills) + STEPS
    caps = (buckets.round_up(room, 256),) * 2
    m = prefills[0].cache.prune_layer
    state = empty_slots(model.config, len(batches), m, caps, model.dtype)
    zeros = np.zeros((1,), np.float32)
    for slot, p in enumerate(prefills):
        first = first_tokens(p.logits, zeros, np.ones((1,), np.float32), np.zeros((1,), np.int32))
        state = insert_rows(
            state, p, first, np.asarray([slot], np.int32), zeros, zeros + 1, np.zeros(1, np.int32)
        )
    weights = decode_weights_core(
        model.params, model.config, m, len(batches), resolve_decode_layout(model.options.decode_layout)
    )
    state, _ = decode_slots(model.params, model.config, state, weights, STEPS)
    return state


def test_a_short_phi4_slot_decoded_beside_a_long_one_writes_the_keys_it_writes_alone(phi4):
    def request(words: int, seed: int) -> hr_jax.Batch:
        return hr_jax.make_batch(phi4, [waveform(1.0, seed)], ["What is said here?" + " the" * words])

    short, long = request(8, 1), request(TINY_LONGROPE_SWITCH + 40, 2)
    assert long.input_ids.shape[1] > TINY_LONGROPE_SWITCH > short.input_ids.shape[1] + STEPS
    together, alone = _decoded(phi4, [short, long]), _decoded(phi4, [short])
    for group in ("lower", "upper"):
        got = getattr(together.cache, group).first_rows(1)
        want = getattr(alone.cache, group).first_rows(1)
        np.testing.assert_array_equal(got.length, want.length)
        n = int(want.length[0])  # the slot's keys: its prompt's, then the STEPS tokens decoded
        np.testing.assert_allclose(got.k[..., :n, :], want.k[..., :n, :], rtol=1e-5, atol=1e-6)
