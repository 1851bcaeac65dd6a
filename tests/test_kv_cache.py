"""models.kv_cache: a cache knows its fill length; appending opens one slot in every row; k/v are kept
k `[layers, B, Hkv, S, hd]` and v `[layers, B, Hkv, hd, S]`."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from models.kv_cache import KVCache, PrunedKVCache

LAYERS, B, L, HKV, HD = 3, 2, 5, 2, 4


def prefill_cache(free_slots: int = 3) -> KVCache:
    k = jax.random.normal(jax.random.key(0), (LAYERS, B, L, HKV, HD))
    v = jax.random.normal(jax.random.key(1), (LAYERS, B, L, HKV, HD))
    valid = jnp.array([[False, True, True, True, True], [True] * L])  # row 0 left-padded
    return KVCache.from_prefill(k, v, valid, free_slots)


def test_from_prefill_keeps_the_prompt_and_adds_free_slots():
    cache = prefill_cache(free_slots=3)
    assert cache.capacity == L + 3 and cache.num_layers == LAYERS
    assert int(cache.length) == L
    np.testing.assert_array_equal(cache.valid[:, L:], False)
    np.testing.assert_array_equal(cache.k[:, :, :, L:], 0.0)


def test_from_prefill_lays_keys_out_by_head_and_slot_and_values_by_head_and_channel():
    k = jax.random.normal(jax.random.key(0), (LAYERS, B, L, HKV, HD))
    cache = KVCache.from_prefill(k, -k, jnp.ones((B, L), bool), 2)
    assert cache.k.shape == (LAYERS, B, HKV, L + 2, HD) and cache.v.shape == (LAYERS, B, HKV, HD, L + 2)
    keys, values = cache.layer(2)
    np.testing.assert_array_equal(keys[1, 1, 3], k[2, 1, 3, 1])
    np.testing.assert_array_equal(values[1, 1, :, 3], -k[2, 1, 3, 1])


def test_append_opens_the_next_slot_in_every_row():
    cache, slot = prefill_cache().append()
    assert int(slot) == L and int(cache.length) == L + 1
    np.testing.assert_array_equal(cache.valid[:, L], True)
    np.testing.assert_array_equal(cache.valid[:, L + 1 :], False)
    np.testing.assert_array_equal(cache.valid[0, :L], [False, True, True, True, True])  # padding stays out


def test_write_stores_one_layer_at_the_slot_only():
    before = prefill_cache()
    cache, slot = before.append()
    k_new = jnp.full((B, 1, HKV, HD), 7.0)
    v_new = jnp.full((B, 1, HKV, HD), -7.0)
    cache = cache.write(1, slot, k_new, v_new)
    np.testing.assert_array_equal(cache.k[1, :, :, L], 7.0)
    np.testing.assert_array_equal(cache.v[1, :, :, :, L], -7.0)
    np.testing.assert_array_equal(cache.k[0, :, :, L], 0.0)  # other layers untouched
    np.testing.assert_array_equal(cache.k[:, :, :, :L], before.k[:, :, :, :L])  # the prompt untouched


def test_append_and_write_work_under_jit_with_a_traced_length():
    @jax.jit
    def two_tokens(cache: KVCache) -> KVCache:
        for value in (1.0, 2.0):
            cache, slot = cache.append()
            x = jnp.full((B, 1, HKV, HD), value)
            cache = cache.write(0, slot, x, x)
        return cache

    cache = two_tokens(prefill_cache())
    assert int(cache.length) == L + 2
    np.testing.assert_array_equal(cache.k[0, :, :, L], 1.0)
    np.testing.assert_array_equal(cache.k[0, :, :, L + 1], 2.0)


def test_pruned_cache_splits_at_the_lower_groups_depth():
    lower = prefill_cache()
    k = lower.k[:1, :, :, :3].swapaxes(2, 3)  # back to the prefill's [layers, B, L, Hkv, hd]
    upper = KVCache.from_prefill(k, lower.v[:1, :, :, :, :3].transpose(0, 1, 4, 2, 3), lower.valid[:, :3], 3)
    cache = PrunedKVCache(lower=lower, upper=upper)
    assert cache.prune_layer == LAYERS
    assert int(cache.upper.length) == 3 and int(cache.lower.length) == L
