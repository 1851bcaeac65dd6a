"""The ways of walking the stacked decoder layers compute the same thing: prefill over a sub-range of
the stack equals prefill over a slice of it, and decode gives the same logits and caches unrolled
over per-layer weights as scanned over the stack, and with its matrices stored weight-major
(`[out, in]`, batched decode's layout) as stored `[in, out]`."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from hr_jax.engine.core import decode_step, decode_weights
from hr_jax.testing.checkpoints import tiny_config
from models.decoder import (
    decode_layers,
    matmul_weight_major,
    prefill_layers,
    resolve_decode_layout,
    rope_tables,
    unstack_layers,
)
from models.kv_cache import KVCache, PrunedKVCache
from models.params import init_params
from models.qwen2_5_omni.hf_config import config_from_hf


@pytest.fixture(scope="module")
def setup():
    cfg = config_from_hf(tiny_config())
    params = init_params(cfg, jax.random.key(0), "float32")
    h = jax.random.normal(jax.random.key(1), (2, 12, cfg.text.hidden_size))
    valid = jnp.asarray(np.arange(12)[None] >= np.array([[0], [5]]))  # row 1 left-padded
    pos = jnp.maximum(jnp.cumsum(valid, axis=1) - 1, 0)
    return cfg, params, h, valid, pos


def test_unstack_layers_gives_each_layer_of_the_stack(setup):
    _, params, *_ = setup
    layers = unstack_layers(params.layers, 1, 3)
    assert len(layers) == 2
    for i, layer in zip((1, 2), layers, strict=True):
        for got, stacked in zip(jax.tree.leaves(layer), jax.tree.leaves(params.layers), strict=True):
            np.testing.assert_array_equal(got, stacked[i])


def test_prefill_over_a_subrange_equals_prefill_over_the_sliced_stack(setup):
    cfg, params, h, valid, pos = setup
    sliced = jax.tree.map(lambda w: w[1:3], params.layers)
    want = prefill_layers(h, sliced, cfg.text, pos, valid, return_last_input=True)
    got = prefill_layers(h, params.layers, cfg.text, pos, valid, 1, 3, return_last_input=True)
    for g, w in zip(got, want, strict=True):
        np.testing.assert_allclose(g, w, rtol=1e-6, atol=1e-6)


def test_prefill_last_input_is_the_last_layers_input(setup):
    cfg, params, h, valid, pos = setup
    h1, *_ = prefill_layers(h, params.layers, cfg.text, pos, valid, 0, 1)
    *_, last_in = prefill_layers(h, params.layers, cfg.text, pos, valid, 0, 2, return_last_input=True)
    np.testing.assert_allclose(last_in, h1, rtol=1e-6, atol=1e-6)


def test_decode_unrolled_matches_decode_scanned(setup):
    cfg, params, h, valid, pos = setup
    text = cfg.text
    n = text.num_hidden_layers
    _, k, v = prefill_layers(h, params.layers, text, pos, valid)
    cache = KVCache.from_prefill(k, v, valid, free_slots=3)
    assert int(cache.length) == 12
    x = jax.random.normal(jax.random.key(2), (2, 1, text.hidden_size))
    cos, sin = rope_tables(valid.sum(1, keepdims=True), text)
    h_scan, c_scan = decode_layers(x, params.layers, text, cache, cos, sin)
    h_unr, c_unr = decode_layers(x, unstack_layers(params.layers, 0, n), text, cache, cos, sin)
    np.testing.assert_allclose(h_unr, h_scan, rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(c_unr.k, c_scan.k, rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(c_unr.v, c_scan.v, rtol=1e-6, atol=1e-6)
    np.testing.assert_array_equal(c_unr.valid, c_scan.valid)
    assert bool(c_unr.valid[:, 12].all()) and not bool(c_unr.valid[:, 13:].any())
    assert int(c_unr.length) == int(c_scan.length) == 13


def test_a_weight_major_product_is_the_plain_product():
    x = jax.random.normal(jax.random.key(3), (3, 1, 16))
    w = jax.random.normal(jax.random.key(4), (16, 24))
    got = jax.jit(matmul_weight_major)(x, w.T)
    assert got.shape == (3, 1, 24)
    np.testing.assert_allclose(got, x @ w, rtol=1e-5, atol=1e-5)


def test_decode_with_weight_major_matrices_matches_the_in_out_layout(setup):
    cfg, params, h, valid, pos = setup
    text = cfg.text
    _, k, v = prefill_layers(h, params.layers, text, pos, valid)
    lower = KVCache.from_prefill(k[:2], v[:2], valid, free_slots=2)
    upper = KVCache.from_prefill(k[2:], v[2:], valid, free_slots=2)
    cache = PrunedKVCache(lower=lower, upper=upper)
    tok, at = jnp.array([5, 9]), valid.sum(1).astype(jnp.int32)
    plain = decode_weights(params, cfg, 2, batch_size=1)
    major = decode_weights(params, cfg, 2, batch_size=2)
    assert not plain.weight_major and major.weight_major
    assert major.lower[0].gate_w.shape == params.layers.gate_w.shape[1:][::-1]
    step = jax.jit(decode_step, static_argnames="cfg")
    want, want_cache = step(params, cfg, tok, at, cache, plain)
    got, got_cache = step(params, cfg, tok, at, cache, major)
    assert got.dtype == jnp.float32
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(got_cache.upper.v, want_cache.upper.v, rtol=1e-5, atol=1e-5)


def test_decode_layout_is_an_explicit_option_and_auto_unrolls():
    assert resolve_decode_layout("auto") == "unrolled" and resolve_decode_layout("scan") == "scan"
    with pytest.raises(ValueError, match="sideways"):
        resolve_decode_layout("sideways")
