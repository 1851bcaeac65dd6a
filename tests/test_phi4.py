"""Phi-4-Multimodal against transformers + peft (its speech adapter), tiny random models, float32 CPU.

Each clip is compared with transformers running that clip alone (batch 1), which is how AudioMarathon
runs Phi-4 and the semantics hr_jax keeps per row.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from conftest import RTOL, rel_err, waveform

import hr_jax
from hr_jax.engine import forward, generate_batch, prefill
from hr_jax.pruning import PRUNING_METHODS
from hr_jax.testing.phi4 import TINY_LONGROPE_SWITCH
from models.phi4mm.audio_encoder import encode_audio
from models.phi4mm.features import Phi4LogMel

pytest.importorskip("peft")
M = 2
SWITCH = TINY_LONGROPE_SWITCH


@pytest.fixture(scope="module")
def phi4_dirs(tiny_phi4):
    return tiny_phi4


@pytest.fixture(scope="module")
def model(phi4_dirs):
    return hr_jax.load(phi4_dirs[1])


@pytest.fixture(scope="module")
def reference(phi4_dirs):
    from hr_jax.testing.phi4 import load_reference

    return load_reference(phi4_dirs[0])


@pytest.fixture(scope="module")
def merged_reference(phi4_dirs):
    """The same model with peft's own merge of the adapter (for layer-by-layer references)."""
    from hr_jax.testing.phi4 import load_reference

    return load_reference(phi4_dirs[0]).merge_and_unload()


def reference_inputs(model, wave: np.ndarray, prompt: str = "What is said here?", extra_text: int = 0):
    """(Batch, transformers kwargs) of one clip: the extractor's features, our prompt ids."""
    from transformers import Phi4MultimodalFeatureExtractor

    feats = Phi4MultimodalFeatureExtractor()(wave, sampling_rate=16000, return_tensors="pt")
    batch = hr_jax.make_batch(model, [wave], [prompt + " the" * extra_text])
    kwargs = {
        "input_ids": torch.from_numpy(batch.input_ids).long(),
        "attention_mask": torch.from_numpy(batch.attention_mask).long(),
        "audio_input_features": feats["audio_input_features"],
        "audio_embed_sizes": feats["audio_embed_sizes"],
    }
    return batch, kwargs


@pytest.mark.parametrize("seconds", [0.0251, 0.73, 3.14159])
def test_features_match_the_transformers_extractor(seconds):
    from transformers import Phi4MultimodalFeatureExtractor

    wave = waveform(seconds, 3)
    want = Phi4MultimodalFeatureExtractor()(wave, sampling_rate=16000, return_tensors="np")[
        "audio_input_features"
    ]
    got, mask = Phi4LogMel()([wave])
    assert got.shape == (1, 80, want.shape[1]) and mask.sum() == want.shape[1]
    assert rel_err(got[0].T, want[0]) <= RTOL


def test_audio_shorter_than_one_window_is_refused():
    with pytest.raises(ValueError, match="shorter than one 400-sample"):
        Phi4LogMel()([np.ones(399, np.float32)])


@pytest.mark.parametrize("seconds", [2.3, 41.7])  # 41.7 s: 522 subsampled frames, two 500-frame chunks
def test_audio_encoder_matches_transformers(model, reference, seconds):
    wave = waveform(seconds, 5)
    batch, kw = reference_inputs(model, wave)
    with torch.no_grad():
        emb = reference.base_model.model.model.embed_tokens_extend.audio_embed
        h = emb.encoder(kw["audio_input_features"], None)
        want = emb.down_proj_for_speech(torch.nn.functional.gelu(emb.up_proj_for_speech(h))).numpy()
    frames = batch.feature_attention_mask.sum(1)
    got, n = encode_audio(model.params.audio, model.config.audio, batch.input_features, frames)
    assert int(n[0]) == want.shape[1]
    assert rel_err(np.asarray(got)[0, : want.shape[1]], want[0]) <= RTOL


def test_encoder_ignores_the_frames_a_bucket_pads_with(model):
    wave = waveform(1.9, 6)
    batch = hr_jax.make_batch(model, [wave], ["x"])
    frames = batch.feature_attention_mask.sum(1)
    alone, _ = encode_audio(model.params.audio, model.config.audio, batch.input_features, frames)
    padded = np.pad(batch.input_features, ((0, 0), (0, 0), (0, 333)), constant_values=7.0)
    more, _ = encode_audio(model.params.audio, model.config.audio, padded, frames)
    n = alone.shape[1]
    np.testing.assert_allclose(np.asarray(more)[:, :n], np.asarray(alone), rtol=0, atol=1e-5)


@pytest.mark.parametrize("seconds", [1.3, 45.0])
def test_logits_at_every_position_match_transformers_with_the_speech_lora(model, reference, seconds):
    batch, kw = reference_inputs(model, waveform(seconds, 7))
    with torch.no_grad():
        want = reference(**kw).logits.numpy()
    assert rel_err(forward(model, batch), want) <= RTOL


def test_greedy_tokens_match_transformers_generate(model, reference):
    batch, kw = reference_inputs(model, waveform(2.0, 8))
    never_stop = model.replace(stop_ids=())
    out = generate_batch(never_stop, batch, max_new_tokens=12)
    with torch.no_grad():
        want = reference.generate(**kw, max_new_tokens=12, min_new_tokens=12, do_sample=False)
    assert out.token_ids[0] == want[0, batch.input_ids.shape[1] :].tolist()


@pytest.mark.parametrize("extra_text", [SWITCH - 196, SWITCH + 104])  # the prompt ends below / above it
def test_longrope_prefill_and_decode_on_each_side_of_the_switch(model, reference, extra_text):
    batch, kw = reference_inputs(model, waveform(1.0, 9), extra_text=extra_text)
    length = batch.input_ids.shape[1]
    assert (length + 6 <= SWITCH) if extra_text < SWITCH else (length > SWITCH)
    with torch.no_grad():
        want_logits = reference(**kw).logits[0, -1].numpy()
        want = reference.generate(**kw, max_new_tokens=6, min_new_tokens=6, do_sample=False)
    out = prefill(model, batch)
    assert rel_err(out.logits[0], want_logits) <= RTOL
    gen = generate_batch(model.replace(stop_ids=()), batch, max_new_tokens=6)
    assert gen.token_ids[0] == want[0, length:].tolist()


def test_long_and_short_rope_factors_differ(model):
    lr = model.config.text.longrope
    assert (
        lr is not None and lr.short_factor != lr.long_factor and lr.original_max_position_embeddings == SWITCH
    )


def test_an_export_loads_in_transformers_with_the_same_logits(model, tmp_path):
    """`export_hf` writes transformers' native layout with the speech LoRA merged in (so no adapter)."""
    from hr_jax.checkpoint import export_hf
    from hr_jax.testing.phi4 import load_reference

    exported = load_reference(export_hf(model.params, model.config, tmp_path / "hf"), lora=False)
    batch, kw = reference_inputs(model, waveform(1.0, 5))
    with torch.no_grad():
        want = exported(**kw).logits[0].numpy()
    assert rel_err(forward(model, batch)[0], want) <= RTOL


def test_both_released_layouts_convert_to_the_same_parameters(tmp_path, phi4_dirs):
    import jax

    from hr_jax.checkpoint import convert, load_params
    from hr_jax.testing.phi4 import build_tiny_phi4

    remote = convert(build_tiny_phi4(tmp_path / "remote", "remote"), tmp_path / "jax", dtype="float32")
    (cfg_a, a), (cfg_b, b) = load_params(phi4_dirs[1]), load_params(remote)
    assert cfg_a.text == cfg_b.text and cfg_a.audio == cfg_b.audio
    for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b), strict=True):
        np.testing.assert_array_equal(np.asarray(x), np.asarray(y))


def test_no_lora_converts_the_base_weights(tmp_path, phi4_dirs):
    from safetensors.numpy import load_file

    from hr_jax.checkpoint import convert, load_params

    out = convert(phi4_dirs[0], tmp_path / "base", dtype="float32", merge_lora=False)
    cfg, params = load_params(out)
    base = load_file(str(phi4_dirs[0] / "model.safetensors"))["model.layers.1.self_attn.o_proj.weight"]
    np.testing.assert_array_equal(np.asarray(params.layers.o_w[1]), base.T)
    _, merged = load_params(phi4_dirs[1])
    assert not np.array_equal(np.asarray(merged.layers.o_w[1]), base.T)


@pytest.mark.parametrize("method", PRUNING_METHODS)
def test_ratio_zero_is_the_unpruned_model(model, method):
    batch, _ = reference_inputs(model, waveform(3.0, 10))
    full = forward(model, batch)[:, -1]
    out = prefill(model, batch, 0.0, method=method)
    assert rel_err(out.logits, full) <= RTOL


@pytest.mark.parametrize("method", PRUNING_METHODS)
def test_every_method_keeps_k_audio_tokens_and_every_text_token(model, method):
    batch = hr_jax.make_batch(model, [waveform(3.0, 11), waveform(1.6, 12)], ["Which sound?", "Say it."])
    out = prefill(model, batch, 0.6, method=method, prune_layer=M)
    audio = model.config.audio_token_id
    for b in range(2):
        kept = out.kept_positions[b][out.kept_positions[b] >= 0]
        real = np.flatnonzero(batch.attention_mask[b])
        is_audio = batch.input_ids[b] == audio
        assert set(real[~is_audio[real]]) <= set(kept)
        assert int(is_audio[kept].sum()) == int(np.floor(is_audio.sum() * 0.4)) == out.kept_audio[b]


def _reference_pruned_last_logits(ref, kw, kept: np.ndarray, m: int = M) -> np.ndarray:
    """transformers' layers < m over the whole prompt, then layers >= m over the kept tokens at their
    original positions (LongRoPE picked from those, as the pruned forward would)."""
    text = ref.model
    with torch.no_grad():
        hidden = ref(**kw, output_hidden_states=True).hidden_states[m]
        idx = torch.from_numpy(kept[kept >= 0]).long()
        h, pos = hidden[:, idx], idx[None]
        rope = text.rotary_emb(h, pos)
        causal = torch.triu(torch.full((h.shape[1],) * 2, float("-inf")), diagonal=1)[None, None]
        for layer in text.layers[m:]:
            h = layer(h, attention_mask=causal, position_embeddings=rope)
        return ref.lm_head(text.norm(h))[0, -1].numpy()


@pytest.mark.parametrize("method", PRUNING_METHODS)
def test_pruned_logits_match_transformers_on_the_kept_sequence(model, merged_reference, method):
    batch, kw = reference_inputs(model, waveform(2.5, 13))
    out = prefill(model, batch, 0.6, method=method, prune_layer=M)
    want = _reference_pruned_last_logits(merged_reference, kw, out.kept_positions[0])
    assert rel_err(out.logits[0], want) <= RTOL


def _eager_attention(ref, kw) -> np.ndarray:
    with torch.no_grad():
        return ref(**kw, output_attentions=True).attentions[M - 1][0].numpy()  # [H, L, L]


def test_fastv_keeps_the_audio_tokens_the_last_token_attends_most_in_eager_attention(model, merged_reference):
    batch, kw = reference_inputs(model, waveform(2.5, 14))
    score = _eager_attention(merged_reference, kw)[:, -1, :].mean(0)
    out = prefill(model, batch, 0.5, method="fastv", prune_layer=M)
    audio = np.flatnonzero(batch.input_ids[0] == model.config.audio_token_id)
    k = len(audio) // 2
    want = np.sort(audio[np.argsort(-score[audio], kind="stable")[:k]])
    kept = out.kept_positions[0]
    np.testing.assert_array_equal(kept[np.isin(kept, audio)], want)


def test_frame_keeps_a_uniform_stride_of_audio_tokens(model):
    batch, _ = reference_inputs(model, waveform(2.5, 15))
    out = prefill(model, batch, 0.7, method="frame", prune_layer=M)
    audio = np.flatnonzero(batch.input_ids[0] == model.config.audio_token_id)
    na, k = len(audio), int(np.floor(len(audio) * 0.3))
    kept = out.kept_positions[0]
    np.testing.assert_array_equal(kept[np.isin(kept, audio)], audio[[i * na // k for i in range(k)]])


def test_prompt_is_the_audiomarathon_phi4_turn(model):
    batch = hr_jax.make_batch(model, [waveform(1.0, 16)], ["Describe it."])
    text = model.tokenizer.decode(batch.input_ids[0])
    n = int((batch.input_ids[0] == model.config.audio_token_id).sum())
    assert text == "<|user|>" + "<|endoftext11|>" * n + "Describe it.<|end|><|assistant|>"
    assert n == -(-int(batch.feature_attention_mask.sum()) // 8)


def test_calibrate_writes_a_phi4_router_that_prunes(phi4_dirs, model, tmp_path):
    import json

    import soundfile as sf

    from hr_jax.calibrate import calibrate_main
    from hr_jax.pruning.router import Router

    recs = []
    for i, cat in enumerate(["semantic", "acoustic", "semantic", "acoustic"]):
        sf.write(tmp_path / f"a{i}.wav", waveform(1.5 + 0.3 * i, 20 + i), 16000)
        recs.append({"audio": f"a{i}.wav", "prompt": "What?", "answer": "yes", "category": cat})
    (tmp_path / "cal.jsonl").write_text("\n".join(json.dumps(r) for r in recs))
    out = tmp_path / "router.json"
    args = ["--ckpt", str(phi4_dirs[1]), "--data", str(tmp_path / "cal.jsonl"), "--out", str(out)]
    assert calibrate_main(args) == 0
    router = Router.load(out)
    assert router.num_heads == model.config.text.num_attention_heads
    batch, _ = reference_inputs(model, waveform(2.0, 30))
    assert prefill(model, batch, 0.5, router=router).alpha.shape == (1, 3)


@pytest.mark.parametrize("suite", ["audiomarathon", "mmau-pro"])
def test_eval_runs_each_benchmark_on_phi4(model, tmp_path, suite):
    import json

    from hr_jax.eval.runner import run_eval
    from hr_jax.testing.eval_data import write_audiomarathon_fixture, write_mmau_pro_fixture

    if suite == "audiomarathon":
        data = write_audiomarathon_fixture(str(tmp_path / "data"), tasks=("gtzan",), n=2)
    else:
        (tmp_path / "data").mkdir()
        data = write_mmau_pro_fixture(str(tmp_path / "data"), per_category=1)
    out = tmp_path / "run"
    summary = run_eval(
        model, data, suite, None, ["vanilla", "frame"], [0.5], str(out), batch_size=2,
        max_new_tokens=3, asr_max_new_tokens=3, progress=False,
    )  # fmt: skip
    assert summary["status"] == "complete"
    rows = [json.loads(line) for f in out.rglob("frame_r0.5.jsonl") for line in f.read_text().splitlines()]
    assert rows and all(r["kept_audio"] == r["num_audio"] // 2 for r in rows)


def test_generation_that_crosses_the_switch_recomputes_the_cache_with_the_long_factors(model, reference):
    """transformers drops its short-factor cache when a sequence first passes the switch (the released
    model's 4096 positions; `TINY_LONGROPE_SWITCH` here), to
    recompute it with the long factors. Its 5.x generate then runs the last token alone, without the
    context (the dropped cache is not rebuilt); hr_jax recomputes the whole prefix, which is what the
    reference below computes: greedy decoding by full forwards over prompt + tokens so far."""
    batch, kw = reference_inputs(model, waveform(1.0, 31), extra_text=SWITCH - 28)
    length = batch.input_ids.shape[1]
    assert length < SWITCH < length + 6  # the switch comes a few tokens in
    ids = kw.pop("input_ids")
    kw.pop("attention_mask")
    with torch.no_grad():
        for _ in range(8):
            nxt = reference(input_ids=ids, **kw).logits[0, -1].argmax()
            ids = torch.cat([ids, nxt.view(1, 1)], dim=1)
    out = generate_batch(model.replace(stop_ids=()), batch, max_new_tokens=8)
    assert out.token_ids[0] == ids[0, length:].tolist()
