"""Pruned prefill and generation against transformers run on the same gathered sequence.

The reference: transformers' layers 0..M−1 over the whole prompt, then the hidden states at the
positions this implementation reports as kept, then transformers' layers M.. over those with their
original position ids (and, for generation, transformers' own DynamicCache).
"""

from __future__ import annotations

import jax
import numpy as np
import pytest
import torch
from conftest import waveform

from hr_jax.batch import make_batch
from hr_jax.engine import forward, generate_batch, prefill
from hr_jax.pruning import PRUNING_METHODS as METHODS
from hr_jax.pruning.router import Router

RTOL = 1e-5
M = 2


@pytest.fixture(scope="module")
def batch(tiny_model):
    # Different audio lengths per row so rows keep different numbers of tokens.
    return make_batch(
        tiny_model, [waveform(3.1, 1), waveform(1.7, 2)], ["What is said here?", "Which sound?"]
    )


@pytest.fixture(scope="module")
def router(tiny_model):
    h = tiny_model.config.text.num_attention_heads
    rng = np.random.default_rng(0)
    w_sem, w_aco = rng.random(h), rng.random(h)
    return Router(
        model="tiny", prune_layer=M, num_heads=h, w_sem=tuple(w_sem / w_sem.sum()),
        w_aco=tuple(w_aco / w_aco.sum()), mu={"semantic": 0.01, "uniform": 0.03, "acoustic": 0.05},
        sigma=0.02, prefilter=2.0,
    )  # fmt: skip


def _text_model(ref):
    return ref.model.language_model


def _rope(ref, h: torch.Tensor, positions: torch.Tensor):
    return _text_model(ref).rotary_emb(h, positions[None].expand(3, -1, -1))


def _causal(n: int) -> torch.Tensor:
    return torch.triu(torch.full((n, n), float("-inf")), diagonal=1)[None, None]


def reference_pruned_logits(ref, batch, kept: np.ndarray, m: int = M) -> np.ndarray:
    """Last-token logits of each row: transformers layers < m unpruned, layers >= m on `kept`."""
    tb = {k: torch.from_numpy(v).long() if "mask" in k or "ids" in k else torch.from_numpy(v)
          for k, v in batch.to_dict().items()}  # fmt: skip
    with torch.no_grad():
        hidden = ref(**tb, output_hidden_states=True).hidden_states[m]
        positions = torch.from_numpy(np.maximum(np.cumsum(batch.attention_mask, 1) - 1, 0))
        out = []
        for b in range(batch.size):
            idx = torch.from_numpy(kept[b][kept[b] >= 0]).long()
            h, pos = hidden[b : b + 1, idx], positions[b : b + 1, idx]
            rope = _rope(ref, h, pos)
            for layer in _text_model(ref).layers[m:]:
                h = layer(h, attention_mask=_causal(h.shape[1]), position_embeddings=rope)
            out.append(ref.lm_head(_text_model(ref).norm(h))[0, -1].numpy())
    return np.stack(out)


@pytest.mark.parametrize("method", METHODS)
def test_ratio_zero_is_the_unpruned_model(tiny_model, batch, method):
    full = forward(tiny_model, batch)[:, -1]
    out = prefill(tiny_model, batch, 0.0, method=method)
    np.testing.assert_array_equal(out.kept_audio, out.num_audio)
    assert np.abs(out.logits - full).max() <= RTOL * np.abs(full).max()


@pytest.mark.parametrize("method", METHODS)
def test_pruned_logits_match_transformers_on_gathered_sequence(
    tiny_model, tiny_reference, batch, router, method
):
    out = prefill(tiny_model, batch, 0.6, method=method, router=router)
    want = reference_pruned_logits(tiny_reference, batch, out.kept_positions)
    assert np.abs(out.logits - want).max() <= RTOL * np.abs(want).max()


@pytest.mark.parametrize("method", METHODS)
def test_kept_positions_keep_every_text_token_and_k_audio_tokens_in_order(tiny_model, batch, router, method):
    ratio = 0.6
    out = prefill(tiny_model, batch, ratio, method=method, router=router)
    audio_id = tiny_model.config.audio_token_id
    for b in range(batch.size):
        kept = out.kept_positions[b][out.kept_positions[b] >= 0]
        assert np.all(np.diff(kept) > 0)
        real = np.flatnonzero(batch.attention_mask[b])
        is_audio = batch.input_ids[b] == audio_id
        assert set(real[~is_audio[real]]) <= set(kept), "every non-audio token survives"
        na = int(is_audio.sum())
        assert int(is_audio[kept].sum()) == int(np.floor(na * (1 - ratio))) == out.kept_audio[b]
        assert out.num_audio[b] == na


def test_frame_keeps_uniform_stride(tiny_model, batch):
    out = prefill(tiny_model, batch, 0.7, method="frame")
    audio_id = tiny_model.config.audio_token_id
    for b in range(batch.size):
        audio = np.flatnonzero(batch.input_ids[b] == audio_id)
        na, k = len(audio), int(np.floor(len(audio) * 0.3))
        kept = out.kept_positions[b][out.kept_positions[b] >= 0]
        want = audio[[i * na // k for i in range(k)]]
        np.testing.assert_array_equal(kept[np.isin(kept, audio)], want)


def test_random_is_reproducible_per_seed(tiny_model, batch):
    a = prefill(tiny_model, batch, 0.5, method="random", seed=3).kept_positions
    b = prefill(tiny_model, batch, 0.5, method="random", seed=3).kept_positions
    c = prefill(tiny_model, batch, 0.5, method="random", seed=4).kept_positions
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)


def test_fastv_ranks_by_last_token_attention_of_transformers_eager_weights(tiny_model, tiny_reference, batch):
    tb = {k: torch.from_numpy(v).long() if "mask" in k or "ids" in k else torch.from_numpy(v)
          for k, v in batch.to_dict().items()}  # fmt: skip
    with torch.no_grad():
        attn = tiny_reference(**tb, output_attentions=True).attentions[M - 1]  # [B, H, L, L]
    score = attn[:, :, -1, :].mean(1).numpy()  # last prompt token, mean over heads
    out = prefill(tiny_model, batch, 0.5, method="fastv")
    audio_id = tiny_model.config.audio_token_id
    for b in range(batch.size):
        audio = np.flatnonzero(batch.input_ids[b] == audio_id)
        k = int(np.floor(len(audio) * 0.5))
        order = audio[np.argsort(-score[b, audio], kind="stable")[:k]]
        kept = out.kept_positions[b]
        np.testing.assert_array_equal(np.sort(order), kept[np.isin(kept, audio)])


def test_dart_keeps_exactly_k_audio_tokens(tiny_model, batch):
    out = prefill(tiny_model, batch, 0.5, method="dart")
    np.testing.assert_array_equal(out.kept_audio, np.floor(out.num_audio * 0.5).astype(int))


def test_headrouter_reports_spread_and_alpha(tiny_model, batch, router):
    out = prefill(tiny_model, batch, 0.5, method="headrouter", router=router)
    assert out.spread.shape == (2,) and np.all(out.spread >= 0)
    np.testing.assert_allclose(out.alpha.sum(1), 1.0, rtol=1e-6)
    hard = prefill(tiny_model, batch, 0.5, method="hard", router=router)
    assert set(np.unique(hard.alpha)) <= {0.0, 1.0}


@pytest.mark.parametrize("ratio", [-0.1, 1.0, 1.5, float("nan")])
def test_ratio_outside_unit_interval_is_refused(tiny_model, batch, ratio):
    with pytest.raises(ValueError, match="ratio"):
        prefill(tiny_model, batch, ratio)


def test_ratio_leaving_no_audio_token_is_refused(tiny_model):
    tiny = make_batch(tiny_model, [waveform(0.25)], "hi")  # a handful of audio tokens
    with pytest.raises(ValueError, match="leaves no audio token"):
        prefill(tiny_model, tiny, 0.99)


def test_unknown_method_is_refused(tiny_model, batch):
    with pytest.raises(ValueError, match="unknown method"):
        prefill(tiny_model, batch, 0.5, method="magic")


def test_one_compilation_per_bucket(tiny_model, router):
    from hr_jax.engine.core import prefill_core

    first = make_batch(tiny_model, [waveform(3.0, 1), waveform(2.2, 2)], ["Question one?", "Two?"])
    prefill(tiny_model, first, 0.6, method="headrouter", router=router)
    before = prefill_core._cache_size()
    # New audio content and different per-row audio lengths, same bucket.
    second = make_batch(tiny_model, [waveform(2.5, 8), waveform(2.9, 9)], ["Another one?", "Hm?"])
    prefill(tiny_model, second, 0.6, method="headrouter", router=router)
    assert prefill_core._cache_size() == before


def _reference_pruned_generation(ref, batch, kept: np.ndarray, n_new: int, m: int = M) -> list[list[int]]:
    """Greedy decoding in transformers: layers < m cache the whole prompt, layers >= m the kept tokens."""
    from transformers import DynamicCache

    tb = {k: torch.from_numpy(v).long() if "mask" in k or "ids" in k else torch.from_numpy(v)
          for k, v in batch.to_dict().items()}  # fmt: skip
    tm = _text_model(ref)
    results = []
    with torch.no_grad():
        hidden0 = ref(**tb, output_hidden_states=True).hidden_states[0]
        for b in range(batch.size):
            real = np.flatnonzero(batch.attention_mask[b])
            h = hidden0[b : b + 1, torch.from_numpy(real)]
            pos = torch.arange(len(real))[None]
            cache = DynamicCache(config=tm.config)
            rope = _rope(ref, h, pos)
            for layer in tm.layers[:m]:
                h = layer(h, attention_mask=_causal(h.shape[1]), position_embeddings=rope,
                          past_key_values=cache, use_cache=True)  # fmt: skip
            keep = kept[b][kept[b] >= 0] - real[0]
            h, kpos = h[:, torch.from_numpy(keep)], pos[:, torch.from_numpy(keep)]
            rope = _rope(ref, h, kpos)
            for layer in tm.layers[m:]:
                h = layer(h, attention_mask=_causal(h.shape[1]), position_embeddings=rope,
                          past_key_values=cache, use_cache=True)  # fmt: skip
            tokens, next_pos = [], len(real)
            for _ in range(n_new):
                tok = int(ref.lm_head(tm.norm(h))[0, -1].argmax())
                tokens.append(tok)
                h = tm.embed_tokens(torch.tensor([[tok]]))
                rope = _rope(ref, h, torch.tensor([[next_pos]]))
                for layer in tm.layers:
                    h = layer(
                        h,
                        attention_mask=None,
                        position_embeddings=rope,
                        past_key_values=cache,
                        use_cache=True,
                    )
                next_pos += 1
            results.append(tokens)
    return results


@pytest.mark.parametrize("method", ["headrouter", "frame"])
def test_pruned_greedy_generation_matches_transformers_with_its_own_cache(
    tiny_model, tiny_reference, batch, router, method
):
    never_stop = tiny_model.replace(stop_ids=())
    out = generate_batch(never_stop, batch, 0.6, method=method, router=router, max_new_tokens=10)
    want = _reference_pruned_generation(tiny_reference, batch, out.kept_positions, 10)
    assert out.token_ids == want


def test_pruning_runs_under_a_batch_sharded_mesh(tiny_model, batch, router):
    mesh = jax.sharding.Mesh(np.array(jax.local_devices()[:1]), ("data",))
    a = generate_batch(tiny_model, batch, 0.5, router=router, max_new_tokens=4, mesh=mesh)
    b = generate_batch(tiny_model, batch, 0.5, router=router, max_new_tokens=4)
    assert a.token_ids == b.token_ids
