"""Benchmark loaders on fixture data sets in each benchmark's format, broken records included."""

from __future__ import annotations

import json
import os

import pytest

from hr_jax.eval import datasets as ds
from hr_jax.eval.mmau_pro import load_mmau_pro
from hr_jax.eval.samples import LoadReport
from hr_jax.eval.tasks import resolve_task
from hr_jax.testing.eval_data import write_wav


def _mc(path: str, answer: str = "A", **extra) -> dict:
    rec = {
        "path": path,
        "question": "Which genre?",
        "choice_a": "Rock",
        "choice_b": "Pop",
        "choice_c": "Jazz",
        "choice_d": "Blues",
        "answer_gt": answer,
    }
    rec.update(extra)
    return rec


@pytest.fixture
def am_dir(tmp_path) -> str:
    """Records kept outside the release layout (``<TASK>/<task>.json(l)``, the fallback): JSON list, JSONL,
    DESED dict style, ASR; HAD in the release's folders."""
    root = tmp_path / "AudioMarathon"
    # GTZAN: JSON list; paths relative to the data dir.
    for i in range(4):
        write_wav(str(root / "GTZAN" / "audio" / f"g{i}.wav"), 0.2 + 0.1 * i, i)
    (root / "GTZAN" / "audio" / "corrupt.wav").write_bytes(b"RIFF\x00\x00not really a wav file")
    gtzan = [
        _mc("GTZAN/audio/g0.wav", "B"),
        _mc("GTZAN/audio/g1.wav", "(c)", id="custom-id"),
        _mc("GTZAN/audio/g2.wav", "Blues"),  # answer given as the option text
        _mc("GTZAN/audio/missing.wav", "A"),  # missing audio
        _mc("GTZAN/audio/g3.wav", "E"),  # answer out of range
        {"path": "GTZAN/audio/g3.wav", "choice_a": "x", "choice_b": "y", "answer_gt": "A"},  # no question
        _mc("GTZAN/audio/g3.wav", "A", choice_b=""),  # empty option in the middle
        _mc("GTZAN/audio/corrupt.wav", "A"),  # unreadable audio
        "not an object",
        _mc("GTZAN/audio/g3.wav", "b", choice_c=None, choice_d=""),  # a two-way question
    ]
    (root / "GTZAN" / "gtzan.json").write_text(json.dumps(gtzan))
    # RACE: JSONL, audio relative to the task directory, a bad line and a duplicate id.
    write_wav(str(root / "RACE" / "r0.wav"), 0.5, 10)
    write_wav(str(root / "RACE" / "r1.wav"), 0.3, 11)
    lines = [
        json.dumps(_mc("r0.wav", "D", id="q1")),
        "{broken json",
        "",
        json.dumps(_mc("r1.wav", "A", id="q1")),
    ]
    (root / "RACE" / "race.jsonl").write_text("\n".join(lines) + "\n")
    # DESED: {"tasks": [...]} with a choices dict.
    write_wav(str(root / "DESED" / "d0.wav"), 0.4, 20)
    desed = {
        "tasks": [
            {
                "path": "d0.wav",
                "task_type": "detection",
                "question": "What sound events are present?",
                "choices": {"A": "Dog", "B": "Car horn", "C": "Phone", "D": "Door"},
                "answer_gt": "C",
            }
        ]
    }
    (root / "DESED" / "desed_meta.json").write_text(json.dumps(desed))  # the only JSON: fallback
    # LibriSpeech ASR: transcripts under different keys, one record without.
    write_wav(str(root / "LibriSpeech" / "a.wav"), 0.6, 30)
    write_wav(str(root / "LibriSpeech" / "b.wav"), 0.3, 31)
    asr = [
        {"path": "LibriSpeech/a.wav", "transcript": "HELLO WORLD"},
        {"path": "LibriSpeech/b.wav", "answer_gt": "good morning"},
        {"path": "LibriSpeech/b.wav", "text": "  "},
        {"path": "LibriSpeech/a.wav"},
    ]
    (root / "LibriSpeech" / "librispeech.json").write_text(json.dumps(asr))
    # HAD: the release's real/fake folders, no JSON.
    write_wav(str(root / "HAD" / "concatenated_audio" / "real" / "x.wav"), 0.3, 40)
    write_wav(str(root / "HAD" / "concatenated_audio" / "fake" / "y.wav"), 0.3, 41)
    return str(root)


def _kinds(report: LoadReport) -> dict[str, int]:
    return report.counts()


def test_gtzan_json_list_with_broken_records(am_dir):
    samples, report = ds.load_audiomarathon(am_dir, "MC")
    assert [s.id for s in samples] == ["gtzan-00000", "custom-id", "gtzan-00002", "gtzan-00009"]
    assert [s.answer for s in samples] == ["B", "C", "D", "B"]
    assert samples[0].choices == ("Rock", "Pop", "Jazz", "Blues")
    assert samples[3].choices == ("Rock", "Pop")
    assert all(s.task == "gtzan" and s.category == "acoustic" and s.reference is None for s in samples)
    assert samples[0].audio_path == os.path.join(am_dir, "GTZAN", "audio", "g0.wav")
    assert samples[0].duration_s == pytest.approx(0.2)
    assert report.records == 10 and report.loaded == 4 and report.dropped == 6
    assert _kinds(report) == {"malformed": 4, "missing_audio": 1, "unreadable_audio": 1}
    by_record = {p.record: p for p in report.problems}
    assert by_record[3].kind == "missing_audio" and "missing.wav" in by_record[3].reason
    assert "neither a letter" in by_record[4].reason
    assert "question" in by_record[5].reason
    assert "choice B" in by_record[6].reason
    assert by_record[7].kind == "unreadable_audio"
    assert "expected an object" in by_record[8].reason
    text = report.summary()
    assert "4 samples loaded from 10 records" in text and "malformed=4" in text


def test_race_jsonl_bad_line_and_duplicate_id(am_dir):
    samples, report = ds.load_audiomarathon(am_dir, "race")
    assert [s.id for s in samples] == ["q1", "q1#2"]
    assert samples[0].audio_path == os.path.join(am_dir, "RACE", "r0.wav")  # relative to the task dir
    assert samples[0].category == "semantic"
    assert _kinds(report) == {"duplicate_id": 1, "malformed": 1}
    bad = next(p for p in report.problems if p.kind == "malformed")
    assert bad.record == 2 and "invalid JSON" in bad.reason  # 1-based line number
    dup = next(p for p in report.problems if p.kind == "duplicate_id")
    assert not dup.dropped and report.dropped == 1


def test_desed_tasks_dict_and_fallback_file(am_dir):
    samples, report = ds.load_audiomarathon(am_dir, "SED")
    assert len(samples) == 1 and not report.problems
    assert samples[0].choices == ("Dog", "Car horn", "Phone", "Door") and samples[0].answer == "C"


def test_librispeech_asr_records(am_dir):
    samples, report = ds.load_audiomarathon(am_dir, "ASR")
    assert [s.reference for s in samples] == ["HELLO WORLD", "good morning"]
    assert all(s.is_asr and s.choices == () and s.answer == s.reference for s in samples)
    assert _kinds(report) == {"malformed": 2}
    assert all("transcript" in p.reason for p in report.problems)


def test_had_directory_layout(am_dir):
    samples, report = ds.load_audiomarathon(am_dir, "had")
    assert {s.id: s.answer for s in samples} == {"real/x": "A", "fake/y": "B"}
    assert samples[0].choices == ("real", "fake") and not report.problems


def test_librispeech_native_layout(tmp_path):
    chapter = tmp_path / "librispeech-long" / "test-clean" / "61" / "70968"
    write_wav(str(chapter / "61-70968-0000.flac"), 0.3, 1)
    write_wav(str(chapter / "61-70968-0001.flac"), 0.3, 2)
    (chapter / "61-70968.trans.txt").write_text("61-70968-0000 HE BEGAN A CONFUSED COMPLAINT\n")
    samples, report = ds.load_audiomarathon(str(tmp_path), "librispeech")
    assert [(s.id, s.reference) for s in samples] == [("61-70968-0000", "HE BEGAN A CONFUSED COMPLAINT")]
    assert report.counts() == {"malformed": 1}  # the utterance without a transcript


def test_missing_and_ambiguous_task_files(tmp_path, am_dir):
    with pytest.raises(FileNotFoundError, match="vox_age"):
        ds.load_audiomarathon(am_dir, "SAR")
    (tmp_path / "TAU").mkdir()
    (tmp_path / "TAU" / "a.json").write_text("[]")
    (tmp_path / "TAU" / "b.json").write_text("[]")
    with pytest.raises(ValueError, match="several record files"):
        ds.load_audiomarathon(str(tmp_path), "tau")
    with pytest.raises(ValueError, match="unknown audiomarathon task"):
        ds.load_audiomarathon(am_dir, "nope")


def test_load_benchmark_all_reports_missing_tasks(am_dir):
    by_task, report = ds.load_benchmark("AudioMarathon", am_dir, ["all"])
    assert list(by_task) == ["race", "librispeech", "desed", "gtzan", "had"]  # paper column order
    missing = {p.task for p in report.problems if p.kind == "missing_task"}
    assert missing == {"slue", "tau", "vesus", "vox_age", "vox_gender"}
    assert report.loaded == sum(len(v) for v in by_task.values()) == 2 + 2 + 1 + 4 + 2
    json.dumps(report.to_dict())  # serialisable


def test_task_registry_mapping():
    assert resolve_task("audiomarathon", "Vox").key == "vox_gender"
    assert resolve_task("audiomarathon", "Vox_age").abbrev == "SAR"
    assert resolve_task("audiomarathon", "SLUE").abbrev == "SER"
    assert resolve_task("audiomarathon", "HAD").group == "acoustic"
    assert resolve_task("audiomarathon", "vox_gender").metric == "f1_weighted"
    assert resolve_task("mmau-pro", "Voice").key == "voice_chat"
    assert resolve_task("mmau-pro", "sound-music").group == "other"


@pytest.fixture
def mmau_dir(tmp_path) -> str:
    root = tmp_path / "mmau"
    for name in ("s0", "s1", "v0", "so0", "m0", "sp0", "mix0", "mix1"):
        write_wav(str(root / "data" / f"{name}.wav"), 0.3, hash(name) % 1000)
    recs = [
        {
            "id": "a",
            "audio_path": ["data/s0.wav"],
            "question": "Q?",
            "choices": ["x", "y", "z"],
            "answer": "y",
            "category": "speech",
        },
        {
            "id": "b",
            "audio_path": "data/v0.wav",
            "question": "Q?",
            "choices": ["x", "y"],
            "answer": "B",
            "category": "voice",
        },
        {
            "id": "c",
            "audio_path": ["data/so0.wav"],
            "question": "Q?",
            "choices": ["cat", "dog"],
            "answer": "Dog",
            "category": "sound",
        },
        {
            "id": "d",
            "audio_path": ["data/m0.wav"],
            "question": "Q?",
            "choices": ["1", "2"],
            "answer": "2",
            "category": "music",
        },
        {
            "id": "e",
            "audio_path": ["data/sp0.wav"],
            "question": "Q?",
            "choices": ["l", "r"],
            "answer": "l",
            "category": "spatial",
        },
        {
            "id": "f",
            "audio_path": ["data/mix0.wav", "data/mix1.wav"],
            "question": "Q?",
            "choices": ["p", "q"],
            "answer": "q",
            "category": "sound-music",
        },
        {
            "id": "g",
            "audio_path": ["data/s1.wav"],
            "question": "Describe it.",
            "choices": [],
            "answer": "free text",
            "category": "speech",
        },
        {
            "id": "h",
            "audio_path": ["data/s1.wav"],
            "question": "Q?",
            "choices": ["x", "y"],
            "answer": "w",
            "category": "speech",
        },
        {
            "id": "i",
            "audio_path": ["data/gone.wav"],
            "question": "Q?",
            "choices": ["x", "y"],
            "answer": "x",
            "category": "music",
        },
        {"id": "j", "audio_path": ["data/s1.wav"], "question": "Q?", "choices": ["x", "y"], "answer": "x"},
    ]
    (root / "mmau_pro.jsonl").write_text("\n".join(json.dumps(r) for r in recs) + "\n")
    return str(root)


def test_mmau_pro_loader(mmau_dir):
    samples, report = load_mmau_pro(mmau_dir)
    got = {s.id: (s.task, s.category, s.answer) for s in samples}
    assert got == {
        "a": ("speech", "speech", "B"),
        "b": ("voice_chat", "voice", "B"),
        "c": ("sound", "sound", "B"),
        "d": ("music", "music", "B"),
        "e": ("spatial", "spatial", "A"),
        "f": ("sound_music", "sound-music", "B"),
    }
    multi = next(s for s in samples if s.id == "f")
    assert multi.audio_paths == (
        os.path.join(mmau_dir, "data", "mix0.wav"),
        os.path.join(mmau_dir, "data", "mix1.wav"),
    )
    assert multi.duration_s == pytest.approx(0.3 + 0.5 + 0.3)  # clips joined with 0.5 s of silence
    assert report.counts() == {"malformed": 2, "missing_audio": 1, "not_scored": 1}
    reasons = {p.record: p.reason for p in report.problems}
    assert (
        "open-ended" in reasons[7] and "matches no choice" in reasons[8] and "category" in reasons[10]
    )  # lines


def test_mmau_pro_category_filter(mmau_dir):
    by_task, report = ds.load_benchmark("MMAU-Pro", mmau_dir, ["speech", "voice chat", "spatial"])
    assert list(by_task) == ["speech", "voice_chat", "spatial"]
    assert [s.id for s in by_task["speech"]] == ["a"]
    assert report.not_requested == 4  # sound, music, sound-music, and the missing-audio music record
