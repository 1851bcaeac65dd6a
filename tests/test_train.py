"""Training (hr_jax.training): a tiny run learns and resumes exactly; exports load in transformers with
the same logits as hr_jax (HF -> hr_jax -> HF round trip)."""

from __future__ import annotations

import json
import shutil

import jax
import numpy as np
import pytest

from hr_jax import training as T

needs_espeak = pytest.mark.skipif(shutil.which("espeak-ng") is None, reason="espeak-ng not installed")


def tiny_train_config(**kw) -> T.TrainConfig:
    model = T.demo_model(
        text=dict(vocab_size=512, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                  num_attention_heads=4, num_key_value_heads=2, head_dim=8),
        audio=dict(d_model=16, encoder_layers=1, encoder_attention_heads=2, encoder_ffn_dim=32, n_window=100),
    )  # fmt: skip
    base = dict(
        model=model, steps=3, batch_size=2, group=1, lr=1e-2, warmup_steps=1, save_every=2,
        min_seconds=3.5, max_seconds=3.5, tasks=("sound_event",),
    )  # fmt: skip
    base.update(kw)
    return T.TrainConfig(**base)


def _params(out, tcfg):
    step, _, params, _ = T.restore_latest(out, tcfg)
    return step, params


def _rel(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.abs(a - b).max() / np.abs(b).max())


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """An uninterrupted 3-step run and one stopped after 2 steps then resumed, in this process (the
    compilation cache is the caller's choice, so training leaves the process as it found it)."""
    from hr_jax.testing.checkpoints import TINY_CORPUS
    from hr_jax.tokenizer import build_tokenizer

    root = tmp_path_factory.mktemp("train")
    tcfg = tiny_train_config()
    build_tokenizer(
        TINY_CORPUS.splitlines(), tcfg.vocab_size, root / "tok"
    )  # fast stand-in for the synth corpus
    kw = dict(progress=False, workers=0, tokenizer_dir=root / "tok")
    T.train(tcfg, root / "full", **kw)
    T.train(tcfg, root / "split", stop_after=2, **kw)
    mid = T.restore_latest(root / "split", tcfg)[0]
    T.train(tcfg, root / "split", **kw)
    return tcfg, root / "full", root / "split", (mid, None)


@needs_espeak
def test_three_steps_decrease_loss(runs):
    tcfg, full, _, _ = runs
    log = [json.loads(x) for x in (full / "train_log.jsonl").read_text().splitlines()]
    assert [r["step"] for r in log] == [1, 2, 3]
    assert (full / "loss.png").stat().st_size > 0
    # the same batch scores better with the trained parameters than with the initial ones
    tok = T.load_tokenizer(full / "tokenizer")
    stage = tcfg.stages()[0]
    exs = [T.make_train_example(tok, i, tcfg.task_names(), tcfg, stage) for i in range(2)]
    batch = T.collate(exs, int(tok.pad_token_id), tcfg.target_slots)
    cfg, p0 = T.init_train_params(tcfg)
    _, p3 = _params(full, tcfg)
    weights = (tcfg.label_weight, tcfg.ctc_weight)
    l0 = float(T.loss_fn(p0, cfg, batch, weights)[0])
    l3 = float(T.loss_fn(p3, cfg, batch, weights)[0])
    assert l3 < l0 - 0.1, (l0, l3)
    assert log[-1]["loss"] < log[0]["loss"]


@needs_espeak
def test_resume_is_exact(runs):
    tcfg, full, split, (step_mid, _) = runs
    assert step_mid == 2
    s_full, p_full = _params(full, tcfg)
    s_split, p_split = _params(split, tcfg)
    assert s_full == s_split == 3
    for a, b in zip(jax.tree.leaves(p_full), jax.tree.leaves(p_split), strict=True):
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-6, atol=1e-7)
    la = [json.loads(x)["loss"] for x in (full / "train_log.jsonl").read_text().splitlines()]
    lb = [json.loads(x)["loss"] for x in (split / "train_log.jsonl").read_text().splitlines()]
    np.testing.assert_allclose(la, lb, rtol=1e-5)


@needs_espeak
def test_trained_export_loads_in_transformers_with_same_logits(runs, tmp_path):
    import torch

    import hr_jax
    from convert.hf_to_jax import convert
    from hr_jax.testing.checkpoints import load_reference

    tcfg, full, _, _ = runs
    hf = T.export_run(full, tmp_path / "hf")
    jx = convert(hf, tmp_path / "jax", dtype="float32")
    model = hr_jax.load(jx)
    _, trained = _params(full, tcfg)
    for a, b in zip(jax.tree.leaves(model.params), jax.tree.leaves(trained["model"]), strict=True):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    from hr_jax.synth import make_example

    wave, rec = make_example("sound_event", 0, split="test", min_seconds=3.5, max_seconds=3.5)
    batch = hr_jax.make_batch(model, [wave], [T.prompt_for(rec, "eval")])
    ours = hr_jax.forward(model, batch)
    ref = load_reference(hf)
    with torch.no_grad():
        theirs = ref(**{
            k: torch.from_numpy(np.asarray(v)).long() if ("mask" in k or "ids" in k) else torch.from_numpy(v)
            for k, v in batch.to_dict().items()
        }).logits.numpy()  # fmt: skip
    assert _rel(ours, theirs) < 1e-5


def test_export_round_trip_hf_to_jax_to_hf(tiny_pair, tmp_path):
    """HF -> convert -> hr_jax -> export_hf: same tensors, and transformers' logits on the re-exported
    checkpoint equal hr_jax's (relative 1e-5)."""
    import torch
    from safetensors.numpy import load_file

    import hr_jax
    from hr_jax.checkpoint import export_hf
    from hr_jax.testing.checkpoints import load_reference

    hf_dir, jax_dir = tiny_pair
    model = hr_jax.load(jax_dir)
    base = json.loads(open(f"{hf_dir}/config.json").read())
    out = export_hf(model.params, model.config, tmp_path / "hf2", base_config=base)
    for f in T.TOKENIZER_FILES:
        shutil.copy(f"{hf_dir}/{f}", out / f)
    exported = load_file(str(out / "model.safetensors"))
    orig = {}
    for p in sorted(__import__("pathlib").Path(hf_dir).glob("*.safetensors")):
        orig.update(load_file(str(p)))
    orig = {
        k.removeprefix("thinker."): v for k, v in orig.items() if not k.startswith(("talker.", "token2wav."))
    }
    orig = {k: v for k, v in orig.items() if not k.startswith("visual.")}
    assert set(exported) == set(orig)
    for k, v in exported.items():
        np.testing.assert_array_equal(v, orig[k], err_msg=k)

    from tests.conftest import waveform

    batch = hr_jax.make_batch(model, [waveform(2.5, 1), waveform(1.2, 2)], ["What is said?", "Describe it."])
    ours = hr_jax.forward(model, batch)
    ref = load_reference(out)
    with torch.no_grad():
        theirs = ref(**{
            k: torch.from_numpy(np.asarray(v)).long() if ("mask" in k or "ids" in k) else torch.from_numpy(v)
            for k, v in batch.to_dict().items()
        }).logits.numpy()  # fmt: skip
    real = batch.attention_mask.astype(bool)
    assert _rel(ours[real], theirs[real]) < 1e-5
