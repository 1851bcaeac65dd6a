"""Each Phi-4-Multimodal module against its transformers counterpart, so a parity break points at one
module: the Conformer block, the conv subsampling, the relative attention bias and the rotary
embedding (LongRoPE, partial rotary). Float32, CPU, 1e-5 relative. Weights: one tiny random model
converted with the real converter."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import torch
from conftest import RTOL, rel_err

import hr_jax
from hr_jax.testing.phi4 import TINY_LONGROPE_SWITCH
from models.decoder import apply_rope, layer_prefill, rope_tables
from models.phi4mm.audio_encoder import conformer_layer, relative_bias, streaming_mask, subsample

pytest.importorskip("peft")


@pytest.fixture(scope="module")
def pair(tiny_phi4):
    """(our model, transformers' model with peft's merge of the speech adapter)."""
    from hr_jax.testing.phi4 import load_reference

    return hr_jax.load(tiny_phi4[1]), load_reference(tiny_phi4[0]).merge_and_unload()


def _layer(tree, i: int):
    return jax.tree.map(lambda w: w[i], tree)


def _encoder(ref):
    return ref.model.embed_tokens_extend.audio_embed.encoder


def test_conformer_block_matches_transformers_block(pair):
    model, ref = pair
    cfg = model.config.audio
    x = np.random.default_rng(0).standard_normal((2, 37, cfg.hidden_size)).astype(np.float32)
    bias_t = _encoder(ref).relative_attention_bias_layer(torch.from_numpy(x))
    with torch.no_grad():
        want = _encoder(ref).encoders[1](torch.from_numpy(x), bias_t + 1.0).numpy()  # mask adds +1 everywhere
    bias = relative_bias(model.params.audio.rel_bias, cfg, 37) + jnp.asarray(
        streaming_mask(cfg, 37), jnp.float32
    )
    keys = jnp.ones((2, 37), bool)
    got = conformer_layer(jnp.asarray(x), _layer(model.params.audio.layers, 1), cfg, bias, keys)
    assert rel_err(np.asarray(got), want) <= RTOL


def test_relative_bias_matches_transformers_t5_bias(pair):
    model, ref = pair
    length = 3 * model.config.audio.bias_max_distance  # distances beyond the clip on both sides
    with torch.no_grad():
        want = _encoder(ref).relative_attention_bias_layer(torch.zeros(1, length, 1))[0].numpy()
    got = relative_bias(model.params.audio.rel_bias, model.config.audio, length)
    np.testing.assert_array_equal(np.asarray(got), want)


@pytest.mark.parametrize("frames", [8, 77, 161])
def test_conv_subsampling_matches_transformers(pair, frames):
    model, ref = pair
    cfg = model.config.audio
    x = np.random.default_rng(frames).standard_normal((1, frames, cfg.input_size)).astype(np.float32)
    with torch.no_grad():
        want, _ = _encoder(ref).embed(torch.from_numpy(x), None)
    got, n = subsample(model.params.audio.subsampling, cfg, jnp.asarray(x), jnp.asarray([frames]))
    assert int(n[0]) == want.shape[1] == -(-frames // 8)
    assert rel_err(np.asarray(got), want.numpy()) <= RTOL


def test_streaming_mask_matches_transformers_chunked_mask(pair):
    from transformers.models.phi4_multimodal.modeling_phi4_multimodal import adaptive_enc_mask

    cfg = pair[0].config.audio
    import dataclasses

    chunked = dataclasses.replace(cfg, chunk_size=4, left_chunk=2)
    want = adaptive_enc_mask(23, np.arange(0, 23, 4), left_window=2).numpy()
    np.testing.assert_array_equal(streaming_mask(chunked, 23), want)
    assert streaming_mask(cfg, 23).all()  # chunk_size -1: every frame sees every frame


S = TINY_LONGROPE_SWITCH


@pytest.mark.parametrize("last", [100, S - 1, S, 9000], ids=["short", "short_edge", "long_edge", "long"])
def test_longrope_tables_match_transformers_rotary_embedding(pair, last):
    model, ref = pair
    text = model.config.text
    positions = np.array([[0, 1, 7, 63, last]])
    with torch.no_grad():
        dummy = torch.zeros(1, positions.shape[1], text.head_dim)
        cos_t, sin_t = ref.model.rotary_emb(dummy, torch.from_numpy(positions))
    cos, sin = rope_tables(jnp.asarray(positions), text)
    assert cos.shape[-1] == text.rotary_dim == 12
    np.testing.assert_allclose(np.asarray(cos), cos_t.numpy(), rtol=0, atol=2e-6)
    np.testing.assert_allclose(np.asarray(sin), sin_t.numpy(), rtol=0, atol=2e-6)


def test_partial_rotary_leaves_the_last_quarter_of_each_head_unrotated(pair):
    text = pair[0].config.text
    x = jnp.asarray(np.random.default_rng(1).standard_normal((1, 3, 2, text.head_dim)), jnp.float32)
    cos, sin = rope_tables(jnp.asarray([[5, 6, 7]]), text)
    y = apply_rope(x, cos, sin)
    np.testing.assert_array_equal(
        np.asarray(y[..., text.rotary_dim :]), np.asarray(x[..., text.rotary_dim :])
    )
    assert not np.allclose(np.asarray(y[..., : text.rotary_dim]), np.asarray(x[..., : text.rotary_dim]))


def test_decoder_layer_matches_transformers_phi3_layer(pair):
    model, ref = pair
    text = model.config.text
    n = 19
    x = np.random.default_rng(2).standard_normal((1, n, text.hidden_size)).astype(np.float32)
    positions = np.arange(n)[None]
    with torch.no_grad():
        rope = ref.model.rotary_emb(torch.from_numpy(x), torch.from_numpy(positions))
        causal = torch.triu(torch.full((n, n), float("-inf")), diagonal=1)[None, None]
        want = ref.model.layers[2](
            torch.from_numpy(x), attention_mask=causal, position_embeddings=rope
        ).numpy()
    cos, sin = rope_tables(jnp.asarray(positions), text)
    got, _, _ = layer_prefill(
        jnp.asarray(x), _layer(model.params.layers, 2), text, cos, sin, jnp.ones((1, n), bool)
    )
    assert rel_err(np.asarray(got), want) <= RTOL
