"""The family interface is complete: a third family that lives in `tests/toy_family` alone, registered by
this module and never shipped, converts from its Hugging Face layout, loads, prunes, generates, shards
and has a FLOP model and a preset, with no edit outside its package."""

from __future__ import annotations

import json

import jax
import numpy as np
import pytest
import toy_family
from conftest import waveform

import hr_jax
from hr_jax.checkpoint import ConversionError, convert, export_hf, load_params
from hr_jax.testing.checkpoints import TINY_CORPUS
from hr_jax.tokenizer import build_tokenizer
from models.family import family_for_hf_config, register_family, unregister_family
from models.params import init_params


@pytest.fixture(scope="module")
def toy():
    register_family(toy_family.FAMILY)
    yield toy_family.FAMILY
    unregister_family(toy_family.FAMILY.name)


@pytest.fixture(scope="module")
def converted(toy, tmp_path_factory):
    """(HF dir, converted dir, the parameters written) of a random toy model."""
    root = tmp_path_factory.mktemp("toy")
    ids = build_tokenizer(TINY_CORPUS.splitlines(), 512, root / "hf")
    cfg = toy_family.small_config(audio_token_id=ids["<|AUDIO|>"])
    params = init_params(cfg, jax.random.key(3))
    export_hf(params, cfg, root / "hf")
    return root / "hf", convert(root / "hf", root / "jax", dtype="float32"), params


def test_a_registered_family_is_recognised_by_its_config_json(toy):
    assert family_for_hf_config({"model_type": "toy_audio_lm"}) is toy
    assert family_for_hf_config({"model_type": "qwen2_audio", "text_config": {}, "audio_config": {}}) is None


def test_its_checkpoint_converts_and_loads_with_every_weight_as_written(converted):
    _, out, params = converted
    cfg, loaded = load_params(out)
    assert cfg.family == "toy"
    for a, b in zip(jax.tree.leaves(params), jax.tree.leaves(loaded), strict=True):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))


def test_a_missing_tensor_is_named_by_the_shared_checks(converted, tmp_path):
    hf, _, _ = converted
    from safetensors.numpy import load_file, save_file

    tensors = load_file(str(hf / "model.safetensors"))
    del tensors["audio.proj_b"]
    for f in hf.iterdir():
        if f.suffix != ".safetensors":
            (tmp_path / f.name).write_bytes(f.read_bytes())
    save_file(tensors, str(tmp_path / "model.safetensors"))
    with pytest.raises(ConversionError, match="missing tensor 'audio.proj_b'"):
        convert(tmp_path, tmp_path / "out")


def test_it_prunes_and_generates_through_the_engine(converted):
    model = hr_jax.load(converted[1])
    audio = [waveform(2.0, seed=1), waveform(1.2, seed=2)]
    batch = hr_jax.make_batch(model, audio, ["What is said?", "Describe it."])
    full = hr_jax.prefill(model, batch, 0.0)
    pruned = hr_jax.prefill(model, batch, 0.5, method="headrouter")
    na = [50, 30]  # 2.0 s and 1.2 s at 25 tokens a second
    kept_audio = [(np.asarray(batch.input_ids[r])[pruned.kept_positions[r][pruned.kept_positions[r] >= 0]]
                   == model.config.audio_token_id).sum() for r in range(2)]  # fmt: skip
    assert kept_audio == [n // 2 for n in na]
    last = hr_jax.forward(model, batch)[np.arange(2), -1]
    np.testing.assert_allclose(full.logits, last, rtol=1e-5, atol=1e-5)
    texts = hr_jax.generate(model, audio, 0.5, prompt="What is said?", method="frame", max_new_tokens=4)
    assert len(texts) == 2 and all(isinstance(t, str) for t in texts)


def test_it_shards_its_decoder_and_has_a_flop_model_and_a_preset(toy):
    from bench import flops as F
    from bench.presets import preset_config
    from hr_jax.sharding import axis_rules

    cfg = preset_config("toy-small")
    assert cfg.family == "toy" and "toy_in" not in axis_rules(cfg) and axis_rules(cfg)["q_heads"] == "model"
    sh = F.bench_shapes(4.0, cfg)
    assert (sh.frames, sh.n_audio) == (400, 100)
    assert F.encoder_cost(cfg, 400).flops == 2 * 100 * 4 * 16 * 32


def test_its_hf_config_round_trips(converted, toy):
    hf, out, _ = converted
    cfg, _ = load_params(out)
    assert toy.config_from_hf(json.loads((hf / "config.json").read_text())) == cfg
