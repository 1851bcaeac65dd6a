"""Training data: dense labels from the synth timeline, the curriculum's stages, the clip cache."""

from __future__ import annotations

import shutil

import numpy as np
import pytest

from hr_jax.synth import make_example
from hr_jax.training import TrainConfig
from hr_jax.training.data import clip_index, render_clip
from hr_jax.training.labels import CLASS_INDEX, FLOOR, describe, spoken_words, token_labels

needs_espeak = pytest.mark.skipif(shutil.which("espeak-ng") is None, reason="espeak-ng not installed")

TIMELINE = [
    {"kind": "speech", "label": "female voice", "text": "four one one", "start": 0.10, "end": 0.50},
    {"kind": "event", "label": "siren", "start": 0.60, "end": 0.70},
    {"kind": "scene", "label": "rain", "start": 1.00, "end": 2.00},
]


def test_each_audio_token_takes_the_class_of_what_sounds_at_its_centre():
    labels = token_labels(TIMELINE, 60)  # 25 tokens per second: token t is centred at (t + 0.5) / 25 s
    assert labels[0] == CLASS_INDEX[FLOOR]  # centre 0.02 s
    assert labels[5] == CLASS_INDEX["female voice"]  # centre 0.22 s
    assert labels[16] == CLASS_INDEX["siren"]  # centre 0.66 s
    assert labels[20] == CLASS_INDEX[FLOOR]  # centre 0.82 s
    assert labels[30] == CLASS_INDEX["rain"] and labels[49] == CLASS_INDEX["rain"]
    assert labels[50] == CLASS_INDEX[FLOOR]  # centre 2.02 s


def test_describe_lists_every_sound_in_time_order():
    assert describe(TIMELINE) == "female voice: four one one; siren; rain"
    assert describe([]) == "silence"


def test_spoken_words_are_the_speech_in_time_order():
    extra = [{"kind": "speech", "label": "male voice", "text": "it was late", "start": 3.0, "end": 4.0}]
    assert spoken_words(TIMELINE + extra) == "four one one it was late"


@needs_espeak
@pytest.mark.parametrize("task", ["sound_after_word", "digits", "scene"])
def test_the_timeline_places_the_informative_audio_inside_the_segments(task):
    _, rec = make_example(task, 2, split="dev", min_seconds=6, max_seconds=12)
    informative = [e for e in rec["timeline"] if e["informative"]]
    starts = [e["start"] for e in rec["timeline"]]
    assert informative and starts == sorted(starts)
    for e in informative:
        assert any(s - 1e-3 <= e["start"] < e["end"] <= t + 1e-3 for s, t in rec["segments"])
    if task == "sound_after_word":  # the asked word is followed by the answer's sound
        entries = rec["timeline"]
        word = next(i for i, e in enumerate(entries) if e.get("text") == rec["question"].split('"')[1])
        assert entries[word + 1]["label"] == rec["answer_gt"]


def test_curriculum_stages_chain_their_steps_and_clips():
    tcfg = TrainConfig(steps=12, group=2, curriculum=((8, 2.0, 8.0, 16), (4, 15.0, 60.0, 4)))
    first, second = tcfg.stages()
    assert (first.first_step, first.first_example) == (0, 0)
    assert (second.first_step, second.first_example) == (8, 8 * 16)
    assert tcfg.stage_at(7) == first and tcfg.stage_at(8) == second


@pytest.mark.parametrize(
    ("curriculum", "message"),
    [(((6, 2.0, 8.0, 4),), "sum to 6 steps"), (((5, 2.0, 8.0, 4), (7, 2.0, 8.0, 4)), "multiple of group")],
)
def test_curriculum_must_cover_the_run_in_whole_groups(curriculum, message):
    with pytest.raises(ValueError, match=message):
        TrainConfig(steps=12, group=2, curriculum=curriculum).stages()


@needs_espeak
def test_a_cached_clip_reads_back_unchanged(tmp_path):
    features, rec = render_clip("scene", 3, 1234, 2.0, 4.0, str(tmp_path))
    files = list(tmp_path.rglob("*.npz"))
    assert len(files) == 1
    again, rec2 = render_clip("scene", 3, 1234, 2.0, 4.0, str(tmp_path))
    np.testing.assert_array_equal(again, features)
    assert rec2 == rec and features.dtype == np.float16


def test_with_every_task_listed_once_example_i_is_clip_i_div_tasks():
    tasks = ("digits", "scene", "gender")
    assert [clip_index(i, tasks) for i in range(7)] == [i // 3 for i in range(7)]


def test_a_task_listed_twice_is_drawn_twice_per_cycle_from_distinct_clips():
    tasks = ("digits", "scene", "digits")
    drawn = [(tasks[i % 3], clip_index(i, tasks)) for i in range(12)]
    digits = [c for t, c in drawn if t == "digits"]
    assert digits == list(range(8))  # 2 per cycle of 3, each clip once
    assert [c for t, c in drawn if t == "scene"] == [0, 1, 2, 3]
