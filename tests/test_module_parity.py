"""Each model module against its transformers counterpart (MaxText style), so a parity break points at one
module: the audio encoder layer, the decoder layer and the rotary embedding. Float32, CPU, 1e-5 relative."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import torch
from conftest import RTOL, rel_err

from models.decoder import layer_prefill, rope_tables
from models.qwen2_5_omni.audio_encoder import encoder_layer


@pytest.fixture(scope="module")
def pair(tiny_model, tiny_reference):
    """(our thinker, transformers' thinker) with the same weights (the converted tiny checkpoint)."""
    return tiny_model, tiny_reference


def _layer(tree, i: int):
    return jax.tree.map(lambda w: w[i], tree)


@pytest.mark.parametrize("lengths", [(20,), (20, 7)], ids=["one_full_window", "full_and_partial_window"])
def test_audio_encoder_layer_matches_transformers_layer(pair, lengths):
    model, ref = pair
    cfg = model.config.audio
    torch_layer = ref.model.audio_tower.layers[1]
    x = np.random.default_rng(0).standard_normal((sum(lengths), cfg.d_model)).astype(np.float32)
    with torch.no_grad():
        cu = torch.tensor(np.cumsum((0, *lengths)), dtype=torch.int32)
        want = torch_layer(torch.from_numpy(x), cu_seqlens=cu)
        want = (want[0] if isinstance(want, tuple) else want).numpy()
    width = cfg.window_frames
    windows = np.zeros((len(lengths), width, cfg.d_model), np.float32)
    mask = np.zeros((len(lengths), width), bool)
    for w, (start, n) in enumerate(zip(np.cumsum((0, *lengths[:-1])), lengths, strict=True)):
        windows[w, :n], mask[w, :n] = x[start : start + n], True
    got = np.asarray(
        encoder_layer(jnp.asarray(windows), _layer(model.params.audio.layers, 1), jnp.asarray(mask), cfg)
    )
    assert rel_err(got[mask], want) <= RTOL


def test_rotary_tables_match_transformers_rotary_embedding(pair):
    model, ref = pair
    text = model.config.text
    positions = np.array([[0, 1, 2, 5, 17, 300, 4000]])
    with torch.no_grad():
        dummy = torch.zeros(1, positions.shape[1], text.head_dim)
        cos_t, sin_t = ref.model.language_model.rotary_emb(dummy, torch.from_numpy(positions))
    cos, sin = rope_tables(jnp.asarray(positions), text)
    np.testing.assert_allclose(np.asarray(cos), cos_t.numpy(), rtol=0, atol=2e-6)
    np.testing.assert_allclose(np.asarray(sin), sin_t.numpy(), rtol=0, atol=2e-6)


def test_decoder_layer_matches_transformers_layer(pair):
    model, ref = pair
    text = model.config.text
    n = 23
    h = np.random.default_rng(1).standard_normal((1, n, text.hidden_size)).astype(np.float32)
    positions = np.arange(n)[None]
    with torch.no_grad():
        cos_sin = ref.model.language_model.rotary_emb(torch.from_numpy(h), torch.from_numpy(positions))
        causal = torch.full((n, n), torch.finfo(torch.float32).min).triu(1)[None, None]
        out = ref.model.language_model.layers[2](
            torch.from_numpy(h), attention_mask=causal, position_ids=torch.from_numpy(positions),
            position_embeddings=cos_sin,
        )  # fmt: skip
        want = (out[0] if isinstance(out, tuple) else out).numpy()
    cos, sin = rope_tables(jnp.asarray(positions), text)
    got, _, _ = layer_prefill(
        jnp.asarray(h), _layer(model.params.layers, 2), text, cos, sin, jnp.ones((1, n), bool)
    )
    assert rel_err(np.asarray(got), want) <= RTOL
