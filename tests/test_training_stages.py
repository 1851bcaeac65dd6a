"""Staged training (hr_jax.training, issue 20): what each stage trains, held-out scoring, milestones,
and the speech-only clips of stage "encoder"."""

from __future__ import annotations

import json
import os
import shutil
import sys
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from hr_jax import training as T
from hr_jax.training.config import CTC_SLOTS, SPEECH_CLIPS
from hr_jax.training.data import render_clip
from hr_jax.training.heldout import ctc_greedy
from hr_jax.training.loop import make_train_step
from hr_jax.training.milestone import write_milestone
from hr_jax.training.state import initial_params, make_optimizer, param_groups

needs_espeak = pytest.mark.skipif(shutil.which("espeak-ng") is None, reason="espeak-ng not installed")
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from test_train import tiny_train_config  # noqa: E402


def _batch(tcfg: T.TrainConfig, seed: int = 0, frames: int = 400) -> dict[str, np.ndarray]:
    """A random full batch of 2 rows (both halves: decoder inputs and the heads' targets)."""
    from models.qwen2_5_omni.config import num_audio_tokens

    rng = np.random.default_rng(seed)
    b, v, length, na = 2, tcfg.vocab_size, 160, num_audio_tokens(frames)
    cfg = tcfg.model
    ids = rng.integers(0, v - 40, size=(b, length)).astype(np.int32)
    ids[:, 10 : 10 + na] = cfg.audio_token_id
    ctc_w = np.zeros((b, CTC_SLOTS), np.float32)
    ctc_w[:, :5] = 1
    return {
        "input_ids": ids, "attention_mask": np.ones((b, length), np.int32),
        "input_features": rng.standard_normal((b, cfg.audio.num_mel_bins, frames)).astype(np.float32),
        "feature_attention_mask": np.ones((b, frames), np.int32),
        "targets": rng.integers(0, v - 40, size=(b, 8)).astype(np.int32),
        "target_pos": np.tile(np.arange(length - 8, length, dtype=np.int32), (b, 1)),
        "target_w": np.ones((b, 8), np.float32),
        "labels": rng.integers(0, 5, size=(b, na)).astype(np.int32), "labels_w": np.ones((b, na), np.float32),
        "ctc": rng.integers(1, 50, size=(b, CTC_SLOTS)).astype(np.int32), "ctc_w": ctc_w,
    }  # fmt: skip


def _step(tcfg: T.TrainConfig, steps: int = 2):
    """(initial, trained) params after `steps` steps of `tcfg`'s stage on a random batch."""
    cfg, p0 = T.init_train_params(tcfg)
    opt, _ = make_optimizer(tcfg)
    state = opt.init(p0)
    step = make_train_step(cfg, opt, (tcfg.label_weight, tcfg.ctc_weight), tcfg.stage)
    params = jax.tree.map(jnp.copy, p0)
    for i in range(steps):
        params, state, _ = step(params, state, _batch(tcfg, i))
    return p0, params


def _changed(p0, p1) -> dict[str, bool]:
    """Group -> whether any of its leaves changed."""
    groups = jax.tree.leaves(param_groups(p0))
    out: dict[str, bool] = {}
    for g, a, b in zip(groups, jax.tree.leaves(p0), jax.tree.leaves(p1), strict=True):
        out[g] = out.get(g, False) or not np.array_equal(np.asarray(a), np.asarray(b))
    return out


def test_stage_encoder_trains_the_encoder_its_projection_and_heads_and_leaves_the_decoder_bitwise():
    changed = _changed(*_step(tiny_train_config(stage="encoder", weight_decay=0.1)))
    assert changed == {"encoder": True, "projection": True, "heads": True, "decoder": False}


def test_stage_decoder_with_encoder_lr_scale_0_freezes_the_encoder_bitwise():
    changed = _changed(*_step(tiny_train_config(stage="decoder", encoder_lr_scale=0.0, weight_decay=0.1)))
    assert changed == {"encoder": False, "projection": True, "heads": True, "decoder": True}


def test_encoder_lr_scale_scales_the_encoders_first_step():
    """Adam's first step is lr x sign-like; the encoder's moves by the scale, the decoder's does not."""
    base = dict(stage="joint", weight_decay=0.0, warmup_steps=1, clip_norm=1e9)
    p0, full = _step(tiny_train_config(encoder_lr_scale=1.0, **base), steps=1)
    _, tenth = _step(tiny_train_config(encoder_lr_scale=0.1, **base), steps=1)
    d_full = np.asarray(full["model"].audio.conv1_w - p0["model"].audio.conv1_w)
    d_tenth = np.asarray(tenth["model"].audio.conv1_w - p0["model"].audio.conv1_w)
    np.testing.assert_allclose(d_tenth, 0.1 * d_full, rtol=1e-4, atol=1e-9)
    np.testing.assert_allclose(np.asarray(tenth["model"].embed), np.asarray(full["model"].embed), rtol=1e-6)


def test_frozen_gradients_do_not_count_in_the_clipping_norm():
    """Gradients of ones, clipped to norm 1e-3: Adam's first moment of a trained leaf is
    (1 - b1) x 1e-3 / sqrt(trained size), the frozen encoder's leaves not counted."""
    tcfg = tiny_train_config(stage="decoder", encoder_lr_scale=0.0, clip_norm=1e-3)
    _, p = T.init_train_params(tcfg)
    opt, _ = make_optimizer(tcfg)
    _, state = opt.update(jax.tree.map(jnp.ones_like, p), opt.init(p), p)
    groups, leaves = jax.tree.leaves(param_groups(p)), jax.tree.leaves(p)
    trained = sum(x.size for g, x in zip(groups, leaves, strict=True) if g != "encoder")
    mu = state[2].inner_states["decoder"].inner_state[0].mu
    first = np.asarray(mu["model"].embed).ravel()[0]
    np.testing.assert_allclose(first, 0.1 * 1e-3 / np.sqrt(trained), rtol=1e-5)


@needs_espeak
def test_a_speech_clip_outside_stage_encoder_asks_for_a_transcript_of_its_words():
    """The reading curriculum: an utterance's reply is exactly the words spoken, whatever the draw."""
    from hr_jax.training.labels import TRANSCRIBE_PROMPT

    tcfg = tiny_train_config(stage="decoder", tasks=(SPEECH_CLIPS,), describe_prob=1.0,
                             min_seconds=1.0, max_seconds=4.0)  # fmt: skip
    tok = _tokenizer()
    ex = T.make_train_example(tok, 0, tcfg.task_names(), tcfg, tcfg.stages()[0])
    rec = render_clip(SPEECH_CLIPS, 0, tcfg.data_seed, 1.0, 4.0)[1]
    assert TRANSCRIBE_PROMPT in tok.decode(ex["prompt"])
    assert tok.decode(ex["reply"]) == rec["target"] + "<|im_end|>"


def test_an_unknown_stage_is_refused_naming_the_stages():
    with pytest.raises(ValueError, match="one of"):
        tiny_train_config(stage="pretrain")


def test_ctc_greedy_merges_repeats_then_drops_blanks_and_reads_only_valid_tokens():
    path = np.array([0, 5, 5, 0, 5, 3, 3, 0, 9, 9])
    assert ctc_greedy(path, 8) == [4, 4, 2]


@needs_espeak
def test_an_utterance_is_a_pure_function_of_seed_and_index_with_its_words_in_the_timeline():
    from hr_jax.synth.utterances import VOCABULARY, make_utterance

    w1, r1 = make_utterance(3, seed=11, min_seconds=1.0, max_seconds=4.0)
    w2, r2 = make_utterance(3, seed=11, min_seconds=1.0, max_seconds=4.0)
    np.testing.assert_array_equal(w1, w2)
    assert r1 == r2
    speech = [e for e in r1["timeline"] if e["kind"] == "speech"]
    assert len(speech) == 1 and speech[0]["text"] == r1["target"]
    assert set(r1["target"].split()) <= {v.lower() for v in VOCABULARY}
    assert 0.0 <= speech[0]["start"] < speech[0]["end"] <= r1["duration"]
    assert abs(w1.size / 16000 - r1["duration"]) <= 5e-4
    assert not np.array_equal(make_utterance(3, seed=12)[0][:100], w1[:100])


@needs_espeak
def test_stage_encoder_examples_carry_no_prompt_and_collate_to_the_heads_half():
    tcfg = tiny_train_config(
        stage="encoder", tasks=(SPEECH_CLIPS, "gender"), min_seconds=1.0, max_seconds=4.0
    )
    tok = _tokenizer()
    stage = tcfg.stages()[0]
    exs = [T.make_train_example(tok, i, tcfg.task_names(), tcfg, stage) for i in range(2)]
    assert all("prompt" not in e and e["ctc"].size for e in exs)
    from hr_jax.training.data import collate_audio

    batch = collate_audio(exs)
    assert set(batch) == {"input_features", "feature_attention_mask", "labels", "labels_w", "ctc", "ctc_w"}
    assert batch["input_features"].shape[2] % 400 == 0


@needs_espeak
def test_a_transcribe_example_asks_for_all_speech_and_replies_with_the_spoken_words():
    from hr_jax.training.labels import TRANSCRIBE_PROMPT, spoken_words

    tcfg = tiny_train_config(tasks=("spoken_qa",), transcribe_prob=1.0, describe_prob=0.0)
    tok = _tokenizer()
    ex = T.make_train_example(tok, 0, tcfg.task_names(), tcfg, tcfg.stages()[0])
    rec = render_clip("spoken_qa", 0, tcfg.data_seed, tcfg.min_seconds, tcfg.max_seconds)[1]
    assert TRANSCRIBE_PROMPT in tok.decode(ex["prompt"])
    assert tok.decode(ex["reply"]) == spoken_words(rec["timeline"]) + "<|im_end|>"


@needs_espeak
def test_with_a_clip_pool_example_i_and_i_plus_the_pool_share_their_clip():
    tcfg = tiny_train_config(stage="encoder", tasks=(SPEECH_CLIPS, "gender"), clip_pool=4,
                             min_seconds=1.0, max_seconds=3.0)  # fmt: skip
    tok, stage = _tokenizer(), tcfg.stages()[0]
    ex = [T.make_train_example(tok, i, tcfg.task_names(), tcfg, stage) for i in (1, 5, 3)]
    np.testing.assert_array_equal(ex[0]["features"], ex[1]["features"])
    assert ex[0]["features"].shape != ex[2]["features"].shape or not np.array_equal(
        ex[0]["features"], ex[2]["features"]
    )


def test_a_clip_pool_must_hold_whole_task_cycles():
    with pytest.raises(ValueError, match="multiple of the 2 tasks"):
        tiny_train_config(tasks=("gender", "scene"), clip_pool=3)


def test_describe_and_transcribe_shares_cannot_exceed_one():
    with pytest.raises(ValueError, match="sum to at most 1"):
        tiny_train_config(describe_prob=0.6, transcribe_prob=0.5)


def _tokenizer():
    from hr_jax.training.data import load_tokenizer

    return load_tokenizer(Path(__file__).parents[1] / "hr_jax" / "assets" / "synth_model")


@pytest.fixture(scope="module")
def staged(tmp_path_factory):
    """A 2-step stage-"encoder" run scored on held-out clips, its milestone, and a 2-step stage-"decoder"
    run started from the milestone (its first step has learning rate 0), in this process, with relative
    paths throughout, as a user types them (orbax itself takes absolute paths only)."""
    from hr_jax.testing.checkpoints import TINY_CORPUS
    from hr_jax.tokenizer import build_tokenizer
    from hr_jax.training.heldout import score_run

    root = tmp_path_factory.mktemp("staged")
    cwd = os.getcwd()
    os.chdir(root)
    try:
        a = tiny_train_config(stage="encoder", tasks=("speech", "sound_event"), min_seconds=1.0,
                              max_seconds=3.0, steps=2, save_every=2, eval_every=2, eval_clips=4)  # fmt: skip
        build_tokenizer(TINY_CORPUS.splitlines(), a.vocab_size, "tok")
        T.train(a, "a", progress=False, workers=0, tokenizer_dir="tok")
        res = score_run("a", seed=777, n=4)
        write_milestone("a", "milestone", base="a", heldout=res)
        b = tiny_train_config(stage="decoder", encoder_lr_scale=0.0, steps=2, save_every=2)
        T.train(b, "b", progress=False, workers=0, init_from="milestone")
    finally:
        os.chdir(cwd)
    return root, json.loads(json.dumps(res))


@needs_espeak
def test_stage_encoder_logs_its_held_out_scores_every_eval_every_steps(staged):
    root, _ = staged
    log = [json.loads(x) for x in (root / "a" / "train_log.jsonl").read_text().splitlines()]
    assert [r["step"] for r in log] == [1, 2]
    assert "heldout" not in log[0] and {"word_acc", "exact", "label_acc"} <= set(log[1]["heldout"])
    assert "reply_loss" not in log[1]


@needs_espeak
def test_held_out_scores_read_the_clips_of_the_given_seed(staged):
    _, res = staged
    assert res["seed"] == 777 and res["step"] == 2
    assert 0.0 <= res["word_acc"] <= 100.0 and 0.0 <= res["label_acc"] <= 100.0
    assert res["clips_with_words"] >= 2  # the speech clips and any distractor speech


@needs_espeak
def test_a_milestone_holds_what_its_stage_trained_and_restores_it_exactly(staged):
    root, res = staged
    meta = json.loads((root / "milestone" / "milestone.json").read_text())
    assert meta["stage"] == "encoder" and meta["step"] == 2 and meta["heldout"] == res
    with np.load(root / "milestone" / "trained.npz") as z:
        names = set(z.files)
    assert names and all("heads" in n or ".audio" in n for n in names)
    assert not any("embed" in n and "bos_eos" not in n for n in names)
    tcfg = T.TrainConfig.from_json(json.loads((root / "a" / "train_config.json").read_text()))
    _, _, trained, _ = T.restore_latest(root / "a", tcfg)
    cfg, fresh = T.init_train_params(tcfg)
    restored, tok_dir = initial_params(root / "milestone", cfg, fresh)
    for a, b in zip(jax.tree.leaves(restored), jax.tree.leaves(trained), strict=True):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    assert (tok_dir / "tokenizer.json").exists()


@needs_espeak
def test_a_run_started_from_a_milestone_keeps_its_frozen_encoder(staged):
    root, _ = staged
    a = T.TrainConfig.from_json(json.loads((root / "a" / "train_config.json").read_text()))
    b = T.TrainConfig.from_json(json.loads((root / "b" / "train_config.json").read_text()))
    _, _, pa, _ = T.restore_latest(root / "a", a)
    _, _, pb, _ = T.restore_latest(root / "b", b)
    np.testing.assert_array_equal(
        np.asarray(pa["model"].audio.conv1_w), np.asarray(pb["model"].audio.conv1_w)
    )
    assert not np.array_equal(np.asarray(pa["model"].embed), np.asarray(pb["model"].embed))


def test_write_milestone_refuses_a_run_without_a_checkpoint(tmp_path):
    tcfg = tiny_train_config()
    (tmp_path / "train_config.json").write_text(json.dumps(tcfg.to_json()))
    with pytest.raises(FileNotFoundError, match="no checkpoint"):
        write_milestone(tmp_path, tmp_path / "m", base="x")


def test_the_stage_curve_continues_each_run_from_the_previous_runs_last_checkpoint(tmp_path):
    from bench.training.stage_curve import plot, points

    def run(name: str, stage: str, rows: list[dict], ckpts: list[int]) -> Path:
        d = tmp_path / name
        (d / "ckpt").mkdir(parents=True)
        for c in ckpts:
            (d / "ckpt" / str(c)).mkdir()
        (d / "train_config.json").write_text(json.dumps({"stage": stage}))
        (d / "train_log.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
        return d

    a = run("a", "encoder", [{"step": 5, "heldout": {"word_acc": 50.0, "seed": 1}}, {"step": 7}], [5])
    b = run("b", "decoder", [{"step": 4, "heldout": {"mean_exact": 80.0}}], [4])
    pts = points([a, b])
    assert [(p["run"], p["step"], p["stage"]) for p in pts] == [("a", 5, "encoder"), ("b", 9, "decoder")]
    assert "seed" not in pts[0]
    plot(pts, tmp_path / "c.png")
    assert (tmp_path / "c.png").stat().st_size > 0


def test_ctc_targets_spell_every_word_in_its_mid_sentence_form():
    from hr_jax.training.data import ctc_target

    tok = _tokenizer()
    first = ctc_target(tok, "brother blue")
    assert tok.decode(first).split() == ["brother", "blue"]
    assert len(first) == len(tok(" brother blue", add_special_tokens=False)["input_ids"])
    assert len(first) < len(tok("brother blue", add_special_tokens=False)["input_ids"])
    assert ctc_target(tok, "").size == 0
