"""Small fixtures for evaluation tests and smoke runs: benchmark directories and a fake engine.

:func:`write_audiomarathon_fixture` and :func:`write_mmau_pro_fixture` write tiny data sets in
each benchmark's on-disk format (short 16 kHz WAVs made with soundfile), optionally with broken
records and missing or corrupt audio files. :func:`fake_generate_fn` stands in for
``hr_jax.generate_batch`` (the :data:`hr_jax.eval.runner.GenerateFn` contract): its replies
depend only on each row's own audio and prompt, so any batching, padding, ordering or sharding
mistake in the runner changes the results.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Sequence
from typing import Any

import numpy as np

from hr_jax.audio import SAMPLE_RATE, SAMPLES_PER_AUDIO_TOKEN
from hr_jax.engine import GenerateOutput

GENRES = ("blues", "classical", "country", "disco", "hiphop", "jazz", "metal", "pop", "reggae", "rock")


def write_wav(path: str, seconds: float, seed: int, rate: int = SAMPLE_RATE, channels: int = 1) -> str:
    """A deterministic tone-plus-noise audio file (16-bit; WAV, or FLAC for a ``.flac`` path) at `path`."""
    import soundfile as sf

    rng = np.random.default_rng(seed)
    n = max(1, int(round(seconds * rate)))
    t = np.arange(n) / rate
    x = 0.3 * np.sin(2 * np.pi * (150 + 40 * (seed % 7)) * t) + 0.05 * rng.standard_normal(n)
    if channels > 1:
        x = np.stack([x * (1.0 - 0.2 * c) for c in range(channels)], axis=1)
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    sf.write(path, x.astype(np.float32), rate, subtype="PCM_16")
    return path


def _mc_records(task: str, n: int, audio_dir: str, root: str, seed: int) -> list[dict[str, Any]]:
    rng = np.random.default_rng(seed)
    recs = []
    for i in range(n):
        rel = os.path.join(audio_dir, f"{task}_{i:03d}.wav")
        write_wav(os.path.join(root, rel), 0.3 + 0.1 * ((i * 7 + seed) % 9), seed * 1000 + i)
        opts = list(rng.choice(GENRES, size=4, replace=False))
        recs.append(
            {
                "path": rel,
                "question": f"What is the genre of clip {i}?",
                "choice_a": opts[0],
                "choice_b": opts[1],
                "choice_c": opts[2],
                "choice_d": opts[3],
                "answer_gt": "ABCD"[int(rng.integers(4))],
            }
        )
    return recs


def write_audiomarathon_fixture(
    root: str, tasks: Sequence[str] = ("gtzan", "race", "librispeech"), n: int = 6, seed: int = 0
) -> str:
    """A clean AudioMarathon directory: ``<root>/<TASK>/<task>.json`` with `n` samples per task.

    Multiple-choice tasks get four-way genre questions; ``librispeech`` gets ASR records with
    transcripts. Audio paths are relative to `root`. Returns `root`.
    """
    for k, task in enumerate(tasks):
        task_dir = os.path.join(root, task.upper())
        os.makedirs(task_dir, exist_ok=True)
        if task == "librispeech":
            recs = []
            for i in range(n):
                rel = os.path.join(task.upper(), "audio", f"utt_{i:03d}.wav")
                write_wav(os.path.join(root, rel), 0.4 + 0.1 * (i % 5), 500 + i)
                recs.append({"path": rel, "transcript": f"HELLO WORLD NUMBER {i}"})
        else:
            recs = _mc_records(task, n, os.path.join(task.upper(), "audio"), root, seed + k + 1)
        with open(os.path.join(task_dir, f"{task}.json"), "w", encoding="utf-8") as f:
            json.dump(recs, f, indent=1)
    return root


def _choice_fields(options: Sequence[str]) -> dict[str, str]:
    return {f"choice_{'abcde'[i]}": o for i, o in enumerate(options)}


def write_audiomarathon_release(root: str, seed: int = 0) -> dict[str, int]:
    """The ten AudioMarathon tasks in the Hugging Face release's folders, file names and record fields
    (:mod:`hr_jax.eval.audiomarathon`), with short synthetic audio: GTZAN at 22.05 kHz, a stereo HAD clip,
    LibriSpeech as FLAC. Returns ``{task: samples in the official selection}``."""
    j = os.path.join
    k = iter(range(seed * 1000, seed * 1000 + 1000))

    def wav(path: str, **kw) -> str:
        return write_wav(j(root, path), 0.3 + 0.05 * (next(k) % 5), next(k), **kw)

    def dump(path: str, obj: Any) -> None:
        os.makedirs(os.path.dirname(j(root, path)), exist_ok=True)
        with open(j(root, path), "w", encoding="utf-8") as f:
            json.dump(obj, f, indent=1)

    for spk, chap, utt in (("61", "70968", 0), ("61", "70968", 1), ("121", "123852", 0)):
        name = f"{spk}-{chap}-{utt:04d}"
        wav(f"librispeech-long/test-clean/{spk}/{chap}/{name}.flac")
        with open(j(root, f"librispeech-long/test-clean/{spk}/{chap}/{name}.txt"), "w") as f:
            f.write(f"HELLO FROM SPEAKER {spk} NUMBER {utt}\n")
    race = []
    for i in range(3):
        wav(f"race_audio/audio/article_{i}.wav")
        race.append({"audio_path": f"audio/article_{i}.wav", "question": f"What did the passage say ({i})?",
                     "options": ["Yes", "No", "Maybe", "Never"], "answer": "ABCD"[i], "article_id": f"m{i}",
                     "question_idx": 0})  # fmt: skip
    dump("race_audio/race_benchmark.json", race)
    slue = []
    for i in range(3):
        wav(f"SLUE/audio/slue_{i}.wav")
        slue.append({"path": f"audio/slue_{i}.wav", "question": "Which entity is mentioned?",
                     **_choice_fields(["Paris", "Berlin", "Rome", "Madrid"]), "answer_gt": "ABCD"[i],
                     "task_name": "entity", "dataset_name": "slue-voxpopuli", "uniq_id": i})  # fmt: skip
    dump("SLUE/merged_audio_data.json", slue)
    desed = []
    for i in range(3):
        wav(f"DESED/DESED_dataset/concatenated_audio/desed_{i}.wav")
        desed.append({"path": f"desed_{i}.wav", "task_type": "detection", "question": "Which sound occurs?",
                      "choices": {"A": "Dog", "B": "Speech", "C": "Alarm bell ringing", "D": "Frying"},
                      "answer_gt": "BCD"[i], "uniq_id": i})  # fmt: skip
    dump("DESED/DESED_dataset/concatenated_audio/desed_sound_event_detection_task.json", {"tasks": desed})
    gtzan = []
    for i, genre in enumerate(("blues", "jazz", "rock")):
        wav(f"GTZAN/concatenated_audio/wav/{genre}_{i}.wav", rate=22050)
        gtzan.append({"path": f"{genre}_{i}.wav", "question": "What is the genre of this music?",
                      **_choice_fields(["Blues - blues", "Jazz - jazz", "Rock - rock", "Pop - pop"]),
                      "answer_gt": "ABC"[i]})  # fmt: skip
    dump("GTZAN/concatenated_audio/music_genre_classification_meta.json", gtzan)
    tau = []
    for i, scene in enumerate(("airport", "park", "metro")):
        wav(f"TAU/concatenated_resampled/{scene}_{i}.wav")
        tau.append(
            {
                "path": f"{scene}_{i}.wav",
                "scene_label": scene,
                "question": "Where was this recorded?",
                **_choice_fields(["Airport", "Park", "Metro station", "Street"]),
                "answer_gt": "ABC"[i],
            }
        )
    dump("TAU/concatenated_resampled/acoustic_scene_task_meta.json", tau)
    vesus = []
    for i, (person, emotion) in enumerate(
        [(1, "happy"), (2, "happy"), (10, "Happy"), (2, "sad"), (3, "angry")]
    ):
        wav(f"VESUS/Audio/{person}/{i}.wav")
        vesus.append({"path": f"Audio/{person}/{i}.wav", "question": "What emotion is expressed?",
                      **_choice_fields(["Happy", "Sad", "Angry", "Neutral"]), "emotion_label": emotion,
                      "answer_gt": {"happy": "A", "sad": "B", "angry": "C"}[emotion.lower()],
                      "person_id": person})  # fmt: skip
    dump("VESUS/audio_emotion_dataset.json", vesus)
    gender = []
    for i, sex in enumerate(["Male", "Male", "Female", "Male", "Female", "Male"]):
        wav(f"VoxCeleb/concatenated_audio/wav/id{i:05d}/g{i}.wav")
        gender.append({"path": f"id{i:05d}/g{i}.wav", "speaker_id_original": f"id{i:05d}",
                       "question": "What is the speaker's gender?", "choice_a": "male", "choice_b": "female",
                       "answer_gt": sex})  # fmt: skip
    dump("VoxCeleb/concatenated_audio/gender_id_task_meta.json", gender)
    ages = [
        "Young Adult (18-30)",
        "Early Career (31-40)",
        "Mid Career (41-50)",
        "Senior (51-70)",
        "Elderly (71+)",
    ]
    age = []
    for i in range(3):
        wav(f"VoxCeleb/concatenated_audio/wav/id{i:05d}/a{i}.wav")
        age.append(
            {
                "path": f"id{i:05d}/a{i}.wav",
                "speaker_id_original": f"id{i:05d}",
                "speaker_age": 25 + 20 * i,
                "question": "What is the speaker's age group?",
                **_choice_fields(ages),
                "answer_gt": ages[i],
            }
        )
    dump("VoxCeleb/concatenated_audio/age_classification_task_meta.json", age)
    for label, n in (("real", 2), ("fake", 3)):
        for i in range(n):
            wav(f"HAD/concatenated_audio/{label}/{label}_{i}.wav", channels=2 if i == 0 else 1)
    return {"librispeech": 3, "race": 3, "slue": 3, "desed": 3, "gtzan": 3, "tau": 3, "vesus": 3,
            "vox_gender": 4, "vox_age": 3, "had": 4}  # fmt: skip


def write_mmau_pro_release(root: str, seed: int = 0) -> dict[str, int]:
    """MMAU-Pro as released: ``test.parquet`` with the real columns and ``data/<uuid>.wav`` at 16, 24, 44.1
    and 48 kHz (some stereo), multi-clip questions, open and instruction-following rows. Returns
    ``{category key: scored questions}``."""
    import uuid

    import pyarrow as pa
    import pyarrow.parquet as pq

    rng = np.random.default_rng(seed)
    rates = (16000, 24000, 44100, 48000)
    rows = []
    scored: dict[str, int] = {}

    def clip(i: int) -> str:
        name = f"data/{uuid.UUID(int=int(rng.integers(1 << 62)))}.wav"
        write_wav(os.path.join(root, name), 0.3 + 0.05 * (i % 4), i, rate=rates[i % 4], channels=1 + i % 2)
        return name

    cats = ["sound", "music", "speech", "sound_music", "spatial_audio", "voice_chat", "multi", "open",
            "instruction following"]  # fmt: skip
    for c, cat in enumerate(cats):
        for i in range(2):
            n = 2 if cat == "multi" else 1
            choices = (
                []
                if cat == "open"
                else (["G", "D", "A", "E"] if i == 1 else [f"{cat} {j}" for j in range(4)])
            )
            answer = (
                None
                if cat == "instruction following"
                else ("A" if i == 1 else choices[2] if choices else "x")
            )
            if cat == "instruction following":
                choices = []
            rows.append({"id": f"{cat}-{i}", "audio_path": [clip(10 * c + i * 3 + k) for k in range(n)],
                         "question": f"Question {i} about {cat}?", "answer": answer, "choices": choices,
                         "category": cat, "length_type": "short", "perceptual_skills": ["listening"],
                         "reasoning_skills": [], "transcription": None, "task_classification": cat,
                         "task_identifier": f"t{c}", "kwargs": None, "sub-cat": None})  # fmt: skip
            if choices:
                key = {"spatial_audio": "spatial"}.get(cat, cat)
                scored[key] = scored.get(key, 0) + 1
    pq.write_table(pa.Table.from_pylist(rows), os.path.join(root, "test.parquet"))
    return scored


def write_mmau_pro_fixture(root: str, per_category: int = 3, seed: int = 0) -> str:
    """A clean MMAU-Pro directory: ``<root>/mmau_pro.jsonl`` and ``<root>/data/*.wav``."""
    cats = ["speech", "voice", "sound", "music", "spatial"]
    rng = np.random.default_rng(seed)
    with open(os.path.join(root, "mmau_pro.jsonl"), "w", encoding="utf-8") as f:
        for c_i, cat in enumerate(cats):
            for i in range(per_category):
                rel = f"data/{cat}_{i}.wav"
                write_wav(os.path.join(root, rel), 0.3 + 0.15 * i, 100 * c_i + i)
                choices = [f"{cat} option {j}" for j in range(4)]
                rec = {
                    "id": f"{cat}-{i}",
                    "audio_path": [rel],
                    "question": f"Question {i} about {cat}?",
                    "choices": choices,
                    "answer": choices[int(rng.integers(4))],
                    "category": cat,
                }
                f.write(json.dumps(rec) + "\n")
    return root


FAKE_PREFIX = 5  # fake text tokens before the audio span


def fake_generate_fn(calls: list[dict[str, Any]] | None = None, use_mesh: bool = False):
    """A deterministic stand-in for the engine.

    Per row: Na = len(audio) // 640 audio tokens; k = floor(Na (1 - r)) kept at a uniform
    stride; the reply is the letter ``(sum of the first 800 samples * 1000) mod n_options``
    (or, for ASR prompts, "hello world number <Na mod 7>"); alpha and spread come from the audio
    energy. With `use_mesh`, the per-row statistic is computed by a jitted function whose input
    is sharded over the mesh's "data" axis (so a batch that is not a multiple of the device count
    fails). `calls` collects one dict per call (batch size, ratio, method, seed, prompts).
    """

    def generate(audios, prompts, *, ratio, method, router, max_new_tokens, mesh, seed):
        b = len(audios)
        head = np.zeros((b, 800), np.float32)
        for i, a in enumerate(audios):
            head[i, : min(800, len(a))] = a[:800]
        if use_mesh:
            import jax
            import jax.numpy as jnp
            from jax.sharding import NamedSharding, PartitionSpec

            x = jax.device_put(head, NamedSharding(mesh, PartitionSpec("data")))
            stat = np.asarray(jax.jit(lambda v: jnp.sum(v, axis=1))(x))
        else:
            stat = head.sum(axis=1)
        if calls is not None:
            calls.append(
                {"batch": b, "ratio": ratio, "method": method, "seed": seed, "prompts": list(prompts)}
            )
        num_audio = np.array([len(a) // SAMPLES_PER_AUDIO_TOKEN for a in audios])
        kept_audio = np.floor(num_audio * (1 - ratio)).astype(int)
        width = FAKE_PREFIX + int(num_audio.max()) + 3
        kept_positions = np.full((b, width), -1)
        texts, alpha, spread = [], np.zeros((b, 3)), np.zeros(b)
        for i in range(b):
            na, k = int(num_audio[i]), int(kept_audio[i])
            audio_idx = (np.arange(k) * na // max(k, 1)) if k else np.zeros(0, int)
            pos = np.concatenate(
                [np.arange(FAKE_PREFIX), FAKE_PREFIX + audio_idx, FAKE_PREFIX + na + np.arange(3)]
            )
            kept_positions[i, : len(pos)] = pos
            n_opts = len(re.findall(r"(?m)^[A-Z]\. ", prompts[i]))
            value = int(abs(stat[i]) * 1000)
            texts.append(
                f"The answer is {'ABCDEFGH'[value % n_opts]}." if n_opts else f"hello world number {na % 7}"
            )
            e = float(np.mean(np.abs(audios[i])))
            logits = np.array([np.sin(e * 50), 0.0, np.cos(e * 50)])
            alpha[i] = np.exp(logits) / np.exp(logits).sum()
            spread[i] = e
        routed = method in ("headrouter", "hard", "no_prefilter")
        return GenerateOutput(
            texts=texts,
            token_ids=[[] for _ in texts],
            num_generated=np.array([len(t.split()) + 1 for t in texts]),
            num_audio=num_audio,
            kept_audio=kept_audio,
            kept_positions=kept_positions,
            alpha=alpha if routed else None,
            spread=spread if routed else None,
            audio_start=np.full(b, FAKE_PREFIX),
            prefill_s=0.01 * b,
            decode_s=0.02 * b,
        )

    return generate
