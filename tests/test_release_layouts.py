"""AudioMarathon and MMAU-Pro read exactly as their publishers ship them: folders, file names and fields of
the releases, the official sample selection, partial downloads, and tasks whose audio is missing."""

from __future__ import annotations

import json
import os
import shutil

import pytest

from hr_jax.eval import datasets as ds
from hr_jax.testing.eval_data import write_audiomarathon_release, write_mmau_pro_release


@pytest.fixture(scope="module")
def release(tmp_path_factory) -> tuple[str, dict[str, int]]:
    root = str(tmp_path_factory.mktemp("AudioMarathon"))
    return root, write_audiomarathon_release(root)


def test_all_ten_tasks_load_from_the_release_as_downloaded(release):
    root, expected = release
    by_task, report = ds.load_benchmark("audiomarathon", root, ["all"])
    assert {t: len(s) for t, s in by_task.items()} == expected
    assert not report.problems and report.selection == "official"
    assert list(by_task) == ["slue", "race", "librispeech", "desed", "gtzan", "tau", "vesus", "vox_age",
                             "vox_gender", "had"]  # fmt: skip


def test_audio_paths_resolve_where_each_official_script_looks(release):
    root, _ = release
    by_task, _ = ds.load_benchmark("audiomarathon", root, ["all"])
    first = {t: s[0].audio_path for t, s in by_task.items()}
    assert first["gtzan"] == os.path.join(root, "GTZAN", "concatenated_audio", "wav", "blues_0.wav")
    assert first["vox_age"].startswith(os.path.join(root, "VoxCeleb", "concatenated_audio", "wav", ""))
    assert first["race"] == os.path.join(root, "race_audio", "audio", "article_0.wav")
    assert first["desed"] == os.path.join(root, "DESED", "DESED_dataset", "concatenated_audio", "desed_0.wav")
    assert first["librispeech"].endswith(os.path.join("test-clean", "121", "123852", "121-123852-0000.flac"))


def test_answers_are_letters_or_option_texts_as_each_task_gives_them(release):
    root, _ = release
    by_task, _ = ds.load_benchmark("audiomarathon", root, ["all"])
    assert [s.answer for s in by_task["race"]] == ["A", "B", "C"]
    assert [s.id for s in by_task["race"]] == ["m0-0", "m1-0", "m2-0"]
    assert [s.answer for s in by_task["vox_age"]] == ["A", "B", "C"]  # answer_gt is the option text
    assert len(by_task["vox_age"][0].choices) == 5
    assert {s.answer for s in by_task["vox_gender"]} == {"A", "B"}  # "Male" matches the option "male"
    assert by_task["desed"][0].choices == ("Dog", "Speech", "Alarm bell ringing", "Frying")
    assert by_task["librispeech"][0].reference == "HELLO FROM SPEAKER 121 NUMBER 0"


def test_official_selection_balances_had_and_gender_and_filters_vesus(release):
    root, _ = release
    by_task, report = ds.load_benchmark("audiomarathon", root, ["had", "vox_gender", "vesus"])
    had = [s.id.split("/")[0] for s in by_task["had"]]
    assert sorted(had) == ["fake", "fake", "real", "real"]
    gender = [s.choices[ord(s.answer) - 65] for s in by_task["vox_gender"]]
    assert sorted(gender) == ["female", "female", "male", "male"]
    assert len(by_task["vesus"]) == 3  # person 2 and person 10 "happy" dropped; person 2 "sad" kept
    assert report.not_selected == 1 + 2 + 2


def test_official_selection_is_the_seed_42_draw(release):
    import random

    root, _ = release
    by_task, _ = ds.load_benchmark("audiomarathon", root, ["had"])
    rng = random.Random(42)
    fake = rng.sample([f"fake/fake_{i}" for i in range(3)], 2)  # real (2) is not larger than the minimum
    assert sorted(s.id for s in by_task["had"] if s.id.startswith("fake")) == sorted(fake)


def test_selection_all_keeps_every_sample(release):
    root, expected = release
    by_task, report = ds.load_benchmark(
        "audiomarathon", root, ["had", "vox_gender", "vesus"], selection="all"
    )
    assert {t: len(s) for t, s in by_task.items()} == {"had": 5, "vox_gender": 6, "vesus": 5}
    assert report.not_selected == 0 and report.selection == "all"


def test_a_single_tasks_metadata_file_or_folder_can_be_given(release):
    root, _ = release
    meta = os.path.join(root, "GTZAN", "concatenated_audio", "music_genre_classification_meta.json")
    samples, _ = ds.load_audiomarathon(meta, "gtzan")
    assert len(samples) == 3 and os.path.isfile(samples[0].audio_path)
    samples, _ = ds.load_audiomarathon(os.path.join(root, "HAD", "concatenated_audio"), "had")
    assert len(samples) == 4


def test_an_ambiguous_task_folder_picks_the_official_file(release, tmp_path):
    root = str(tmp_path / "am")
    shutil.copytree(os.path.join(release[0], "TAU"), os.path.join(root, "TAU"))
    with open(os.path.join(root, "TAU", "concatenated_resampled", "other_meta.json"), "w") as f:
        json.dump([], f)
    samples, _ = ds.load_audiomarathon(root, "tau")
    assert len(samples) == 3


def test_absent_tasks_are_reported_and_skipped(release, tmp_path):
    root = str(tmp_path / "partial")
    shutil.copytree(os.path.join(release[0], "SLUE"), os.path.join(root, "SLUE"))
    by_task, report = ds.load_benchmark("audiomarathon", root, ["all"])
    assert list(by_task) == ["slue"]
    assert len([p for p in report.problems if p.kind == "missing_task"]) == 9
    assert "tasks not found in the data directory (skipped)" in report.summary()


def test_a_task_whose_audio_is_all_missing_is_a_failed_task(release, tmp_path):
    root = str(tmp_path / "noaudio")
    shutil.copytree(os.path.join(release[0], "race_audio"), os.path.join(root, "race_audio"))
    shutil.rmtree(os.path.join(root, "race_audio", "audio"))
    by_task, report = ds.load_benchmark("audiomarathon", root, ["all"])
    assert by_task == {"race": []} and report.failed_tasks == ["race"]
    assert "ERROR: no audio file found for tasks race" in report.summary()


# ------------------------------------------------------------------ MMAU-Pro


@pytest.fixture(scope="module")
def mmau(tmp_path_factory) -> tuple[str, dict[str, int]]:
    root = str(tmp_path_factory.mktemp("MMAU-Pro"))
    return root, write_mmau_pro_release(root)


def test_mmau_pro_parquet_is_read_directly_with_every_category(mmau):
    root, scored = mmau
    by_task, report = ds.load_benchmark("mmau-pro", root)
    assert report.files == [os.path.join(root, "test.parquet")]
    assert {t: len(s) for t, s in by_task.items() if s} == scored
    assert {"sound_music", "multi", "spatial", "voice_chat"} <= set(by_task)
    assert report.counts() == {"not_scored": 4}  # two open and two instruction-following rows


def test_mmau_pro_multi_clip_questions_keep_every_clip(mmau):
    root, _ = mmau
    by_task, _ = ds.load_benchmark("mmau-pro", root, ["multi"])
    assert all(
        len(s.audio_paths) == 2 and all(os.path.isfile(p) for p in s.audio_paths) for s in by_task["multi"]
    )


def test_mmau_pro_answer_text_that_is_a_letter_maps_to_its_option(mmau):
    root, _ = mmau
    by_task, _ = ds.load_benchmark("mmau-pro", root, ["sound"])
    second = next(s for s in by_task["sound"] if s.id == "sound-1")
    assert second.choices == ("G", "D", "A", "E") and second.answer == "C"


def test_mmau_pro_audio_at_other_rates_and_in_stereo_loads_as_16k_mono(mmau):
    from hr_jax.eval import audio_io

    root, _ = mmau
    by_task, _ = ds.load_benchmark("mmau-pro", root)
    for s in (x for samples in by_task.values() for x in samples):
        wave = audio_io.load_waveform(s.audio_paths)
        assert wave.ndim == 1 and abs(wave.shape[0] - s.duration_s * 16000) <= 16 * len(s.audio_paths)


def test_a_single_tasks_load_report_names_its_selection(release):
    _, report = ds.load_audiomarathon(release[0], "had", selection="all")
    assert report.selection == "all" and report.not_selected == 0
