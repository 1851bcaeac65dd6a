"""Calibration: answer scoring, μ/σ_G from spreads, head-ablation profiles, the router file and heatmap."""

from __future__ import annotations

import json

import numpy as np
import pytest
import soundfile as sf
from conftest import waveform

from hr_jax.batch import make_batch
from hr_jax.calibrate import (
    CalibrationSample,
    calibrate,
    calibrate_main,
    load_samples,
    plot_selectivity_heatmap,
)
from hr_jax.engine import forward, prefill
from hr_jax.engine.scoring import answer_ids, answer_logprob
from hr_jax.pruning.router import Router


def test_unpruned_answer_logprob_equals_forward_on_prompt_plus_answer(tiny_model):
    batch = make_batch(tiny_model, [waveform(1.2, 1)], "Say it.")
    ids, mask = answer_ids(tiny_model, ["the answer"])
    got = answer_logprob(tiny_model, batch, ["the answer"], 0.0)
    n = int(mask.sum())
    full = type(batch)(
        input_ids=np.concatenate([batch.input_ids, ids[:, :n]], 1),
        attention_mask=np.concatenate([batch.attention_mask, np.ones((1, n), np.int32)], 1),
        input_features=batch.input_features,
        feature_attention_mask=batch.feature_attention_mask,
    )
    logits = forward(tiny_model, full)[0, batch.input_ids.shape[1] - 1 : -1]
    logp = (
        logits
        - np.log(np.exp(logits - logits.max(-1, keepdims=True)).sum(-1, keepdims=True))
        - logits.max(-1, keepdims=True)
    )
    want = logp[np.arange(n), ids[0, :n]].sum()
    assert abs(got[0] - want) <= 1e-4 * abs(want)


@pytest.fixture(scope="module")
def samples():
    cats = ["semantic", "semantic", "acoustic", "acoustic", "acoustic", "mixed"]
    return [
        CalibrationSample(waveform(1.5, i), f"Question {i}?", f"answer {i}", c)  # one bucket: few compiles
        for i, c in enumerate(cats)
    ]


@pytest.fixture(scope="module")
def sharp_model(tiny_model):
    """The tiny model with layer M-1's q/k scaled up, so the probe's attention is far from uniform
    and spreads are well above float32 noise."""
    layers = tiny_model.params.layers
    scaled = layers.replace(q_w=layers.q_w.at[1].multiply(40.0), k_w=layers.k_w.at[1].multiply(40.0))
    return tiny_model.replace(params=tiny_model.params.replace(layers=scaled))


@pytest.fixture(scope="module")
def result(sharp_model, samples):
    # One sample per batch, so the hand computation below sees the very same bucketed shapes.
    return calibrate(sharp_model, samples, ratio=0.5, batch_size=1, progress=False)


def test_calibration_recovers_mu_and_sigma_from_spreads_by_hand(sharp_model, samples, result):
    tiny_model = sharp_model
    probe = Router.uniform("tiny", 2, tiny_model.config.text.num_attention_heads)
    spreads = {}
    for s in samples:
        out = prefill(tiny_model, make_batch(tiny_model, [s.audio], [s.prompt]), 0.5, router=probe)
        spreads.setdefault(s.category, []).append(float(out.spread[0]))
    mu = {c: np.mean(v) for c, v in spreads.items()}
    ss = sum(np.sum((np.array(v) - mu[c]) ** 2) for c, v in spreads.items())
    sigma = np.sqrt(ss / (len(samples) - 3))
    r = result.router
    assert r.mu["semantic"] == pytest.approx(mu["semantic"], rel=1e-4)
    assert r.mu["acoustic"] == pytest.approx(mu["acoustic"], rel=1e-4)
    assert r.mu["uniform"] == pytest.approx(mu["mixed"], rel=1e-4)
    assert min(spreads["semantic"] + spreads["acoustic"]) > 1e-3, "spreads must be well above noise"
    assert r.sigma == pytest.approx(max(sigma, 0.1 * abs(mu["acoustic"] - mu["semantic"])), rel=1e-3)


def test_profiles_are_normalised_positive_part_of_centred_head_ablation(result):
    cats = np.array(result.categories)
    for name, w in (("semantic", result.router.w_sem), ("acoustic", result.router.w_aco)):
        d = result.delta[cats == name].mean(0)
        pos = np.maximum(d - d.mean(), 0)
        want = pos / pos.sum() if pos.sum() > 0 else np.full(len(d), 1 / len(d))
        np.testing.assert_allclose(w, want, rtol=1e-6, atol=1e-9)
        assert sum(w) == pytest.approx(1.0)


def test_heatmap_is_written(result, tmp_path):
    path = tmp_path / "heat.png"
    plot_selectivity_heatmap(result, path)
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_cli_writes_a_router_that_loads(tiny_ckpt, tmp_path, capsys):
    recs = []
    for i, cat in enumerate(["semantic", "acoustic", "semantic", "acoustic"]):
        sf.write(tmp_path / f"a{i}.wav", waveform(0.8 + 0.2 * i, i), 16000)
        recs.append({"audio": f"a{i}.wav", "prompt": "What?", "answer": "yes", "category": cat})
    (tmp_path / "cal.jsonl").write_text("\n".join(json.dumps(r) for r in recs))
    out = tmp_path / "router.json"
    assert (
        calibrate_main(["--ckpt", tiny_ckpt[1], "--data", str(tmp_path / "cal.jsonl"), "--out", str(out)])
        == 0
    )
    router = Router.load(out)
    assert set(json.loads(out.read_text())) == {
        "model", "prune_layer", "num_heads", "w_sem", "w_aco", "mu", "sigma", "prefilter"
    }  # fmt: skip
    assert router.num_heads == 4
    assert "sigma_G" in capsys.readouterr().out
    assert (tmp_path / "router_selectivity.png").exists()


def test_records_without_category_are_refused(tmp_path):
    (tmp_path / "bad.json").write_text(json.dumps([{"audio": "x.wav", "prompt": "q", "answer": "a"}]))
    with pytest.raises(ValueError, match="no calibration records"):
        load_samples(tmp_path / "bad.json")
