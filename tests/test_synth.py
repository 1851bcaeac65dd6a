"""Synthetic task generator: determinism, clip bounds, record format, espeak-ng handling, every task."""

from __future__ import annotations

import json
import shutil
from collections import Counter

import numpy as np
import pytest
import soundfile as sf

from hr_jax import synth
from hr_jax.synth import (
    TASK_NAMES,
    TASKS,
    EspeakNotFoundError,
    generate,
    make_example,
    plan_example,
    task_file,
)
from hr_jax.synth.__main__ import main as cli_main
from hr_jax.synth.speech import random_voice, speak

needs_espeak = pytest.mark.skipif(
    shutil.which("espeak-ng") is None, reason="espeak-ng not installed (run .ci/install-system-deps.sh)"
)

SHORT = {"min_seconds": 10.0, "max_seconds": 12.0}  # keep clips short: tests stay fast
RECORD_KEYS = {
    "path",
    "question",
    "choice_a",
    "choice_b",
    "choice_c",
    "choice_d",
    "answer_gt",
    "answer_letter",
    "target",
    "task",
    "category",
    "split",
    "index",
    "duration",
    "segments",
    "meta",
    "timeline",
}


def _choices(rec: dict) -> list[str]:
    return [rec[f"choice_{c}"] for c in "abcd" if rec[f"choice_{c}"]]


@needs_espeak
@pytest.mark.parametrize("task", TASK_NAMES)
def test_every_task_valid_record_within_bounds(task: str) -> None:
    spec = TASKS[task]
    audio, rec = make_example(task, 3, split="dev", **SHORT)
    assert audio.dtype == np.float32 and audio.ndim == 1
    assert SHORT["min_seconds"] <= audio.size / synth.SAMPLE_RATE <= SHORT["max_seconds"]
    assert rec["duration"] == pytest.approx(audio.size / synth.SAMPLE_RATE, abs=1e-3)
    assert np.abs(audio).max() <= 1.0 and np.isfinite(audio).all()
    assert rec["task"] == task and rec["category"] == spec.category
    choices = _choices(rec)
    assert len(choices) == spec.n_choices == len(set(choices))
    if spec.n_choices:
        assert rec["answer_gt"] in choices
        assert choices[" ABCD".index(rec["answer_letter"]) - 1] == rec["answer_gt"]
        assert all(c in spec.labels for c in choices)
    else:
        assert rec["answer_letter"] == "" and all(w in synth.DIGITS for w in rec["answer_gt"].split())
        assert rec["transcript"] == rec["answer_gt"]
    assert rec["target"] == rec["answer_gt"] and 1 <= len(rec["target"].split()) <= 4
    # informative audio lies inside the clip and stands out from the floor
    for start, end in rec["segments"]:
        assert 0 <= start < end <= rec["duration"]
        seg = audio[int(start * synth.SAMPLE_RATE) : int(end * synth.SAMPLE_RATE)]
        assert np.sqrt(np.mean(seg**2)) > 0.02


@needs_espeak
def test_same_seed_identical_audio_and_records(tmp_path) -> None:
    a1, r1 = make_example("sound_after_word", 5, split="train", **SHORT)
    a2, r2 = make_example("sound_after_word", 5, split="train", **SHORT)
    np.testing.assert_array_equal(a1, a2)
    assert r1 == r2
    a3, r3 = make_example("sound_after_word", 6, split="train", **SHORT)
    assert r3 != r1
    _, r4 = make_example("sound_after_word", 5, split="train", seed=7, **SHORT)
    assert r4 != r1

    recs = [generate(tmp_path / d, "test", "digits", 2, 11, progress=False, **SHORT) for d in ("x", "y")]
    assert recs[0] == recs[1]
    for rec in recs[0]:
        assert (tmp_path / "x" / rec["path"]).read_bytes() == (tmp_path / "y" / rec["path"]).read_bytes()
    assert (
        task_file(tmp_path / "x", "digits").read_bytes() == task_file(tmp_path / "y", "digits").read_bytes()
    )


def test_splits_differ_and_labels_balanced() -> None:
    plans = {s: plan_example("digits", 0, s) for s in synth.SPLITS}
    assert len({(p.answer, p.seconds) for p in plans.values()}) == 3
    k = len(synth.SOUND_EVENTS)
    counts = Counter(plan_example("sound_event", i, "train").answer for i in range(2 * k))
    assert counts == Counter({e: 2 for e in synth.SOUND_EVENTS})
    genders = [plan_example("gender", i, "test") for i in range(4)]
    assert all(p.meta["voice"]["gender"] == p.answer for p in genders)


@needs_espeak
def test_generate_writes_audiomarathon_records(tmp_path) -> None:
    records = generate(tmp_path, "test", "gender", 2, progress=False, **SHORT)
    on_disk = json.loads(task_file(tmp_path, "gender").read_text())
    assert on_disk == records and len(records) == 2
    for rec in records:
        assert set(rec) == RECORD_KEYS
        assert not rec["path"].startswith("/") and rec["path"].startswith("gender/")
        info = sf.info(tmp_path / rec["path"])
        assert info.samplerate == 16000 and info.channels == 1
        assert info.duration == pytest.approx(rec["duration"], abs=1e-3)
        assert rec["choice_a"] == "male" and rec["choice_b"] == "female"
        assert rec["choice_c"] == rec["choice_d"] == "" and rec["answer_gt"] in ("male", "female")
    # nothing outside out_dir/<task>
    assert {p.name for p in tmp_path.iterdir()} == {"gender"}


def test_missing_espeak_gives_clear_error(tmp_path, monkeypatch, capsys) -> None:
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    with pytest.raises(EspeakNotFoundError, match="espeak-ng"):
        generate(tmp_path / "out", "test", "digits", 1, progress=False, **SHORT)
    with pytest.raises(EspeakNotFoundError, match="apt-get install"):
        speak("one two", random_voice(np.random.default_rng(0)))
    assert cli_main(["--out", str(tmp_path / "cli"), "--n", "1", "--tasks", "gender"]) == 2
    assert "espeak-ng" in capsys.readouterr().err


def test_too_short_clip_and_bad_arguments_are_refused() -> None:
    with pytest.raises(ValueError, match="unknown task"):
        plan_example("nope", 0)
    with pytest.raises(ValueError, match="unknown split"):
        plan_example("digits", 0, "validation")
    with pytest.raises(ValueError, match="min_seconds"):
        plan_example("digits", 0, min_seconds=5, max_seconds=4)


def test_corpus_covers_vocabulary() -> None:
    text = list(synth.corpus(n_per_task=2))
    assert all(isinstance(t, str) and t for t in text)
    joined = "\n".join(text)
    for spec in TASKS.values():
        for label in spec.labels:
            assert label in joined
    assert "A. " in joined and "Transcribe the spoken digits." in joined
