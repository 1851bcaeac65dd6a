"""AudioMarathon as its Hugging Face release ships it: where each task's metadata and audio live, and the
official sample selection.

The layout below is the one the official evaluation scripts (``src/Qwen_2.5_Omni/Others/*_qwen2.5.py`` in
DabDans/AudioMarathon) read, relative to the downloaded folder (``--data-dir``):

==========  ==================================================================  =========================
task        metadata (or folder scanned)                                        audio paths relative to
==========  ==================================================================  =========================
librispeech ``librispeech-long/test-clean/<spk>/<chap>/<utt>.flac`` + ``.txt``   (scan; one .txt per utt)
race        ``race_audio/race_benchmark.json``                                  ``race_audio/``
slue        ``SLUE/merged_audio_data.json``                                     ``SLUE/``
desed       ``DESED/DESED_dataset/concatenated_audio/desed_sound_event_         ``concatenated_audio/``
            detection_task.json`` (``{"tasks": [...]}``)
gtzan       ``GTZAN/concatenated_audio/music_genre_classification_meta.json``   ``concatenated_audio/wav/``
tau         ``TAU/concatenated_resampled/acoustic_scene_task_meta.json``        ``concatenated_resampled/``
vesus       ``VESUS/audio_emotion_dataset.json``                                ``VESUS/``
vox_gender  ``VoxCeleb/concatenated_audio/gender_id_task_meta.json``            ``concatenated_audio/wav/``
vox_age     ``VoxCeleb/concatenated_audio/age_classification_task_meta.json``   ``concatenated_audio/wav/``
had         ``HAD/concatenated_audio/{real,fake}/*.wav`` (scan)                 ``concatenated_audio/``
==========  ==================================================================  =========================

``--data-dir`` may also be a task's folder or its metadata file itself (partial downloads): the audio is
then looked for where the table puts it relative to that file.

Official selection (the default, so that numbers compare with published ones; ``"all"`` keeps every
sample): HAD and speaker gender are balanced by drawing, with ``random.Random(42)`` as the scripts seed
it, as many samples of the larger class as the smaller one has (HAD: real first, then fake; gender: male
first, then female); VESUS drops the "happy" clips of persons 2 and 10. The scripts list HAD's folders
with ``glob`` in file-system order; hr_jax sorts them by name, so the draw is reproducible everywhere.
Speaker gender is balanced over the records whose audio exists, as in the script.
"""

from __future__ import annotations

import dataclasses
import glob
import json
import os
import random
from collections.abc import Callable, Sequence
from typing import Any

OFFICIAL = "official"
ALL = "all"
SELECTIONS = (OFFICIAL, ALL)
SELECTION_SEED = 42

HAD_QUESTION = (
    "Listen to this audio clip carefully. Is this audio completely authentic (real) or does it "
    "contain any artificially synthesized segments (fake)?"
)


@dataclasses.dataclass(frozen=True)
class TaskLayout:
    """Where one task lives in the release.

    Attributes:
        metadata: the metadata file under the data dir, or None for a task read by scanning `folder`.
        folder: the task's folder under the data dir (the scanned folder for scans).
        audio_base: audio paths in the metadata are relative to this folder, given relative to the
            metadata file's directory.
        id_fields: record fields that make a sample id, joined with "-" (first record field wins otherwise).
    """

    metadata: str | None
    folder: str
    audio_base: str = "."
    id_fields: tuple[str, ...] = ()


LAYOUTS: dict[str, TaskLayout] = {
    "librispeech": TaskLayout(None, "librispeech-long/test-clean"),
    "race": TaskLayout(
        "race_audio/race_benchmark.json", "race_audio", id_fields=("article_id", "question_idx")
    ),
    "slue": TaskLayout("SLUE/merged_audio_data.json", "SLUE"),
    "desed": TaskLayout(
        "DESED/DESED_dataset/concatenated_audio/desed_sound_event_detection_task.json",
        "DESED/DESED_dataset/concatenated_audio",
    ),
    "gtzan": TaskLayout(
        "GTZAN/concatenated_audio/music_genre_classification_meta.json", "GTZAN/concatenated_audio", "wav"
    ),
    "tau": TaskLayout(
        "TAU/concatenated_resampled/acoustic_scene_task_meta.json", "TAU/concatenated_resampled"
    ),
    "vesus": TaskLayout("VESUS/audio_emotion_dataset.json", "VESUS"),
    "vox_gender": TaskLayout(
        "VoxCeleb/concatenated_audio/gender_id_task_meta.json", "VoxCeleb/concatenated_audio", "wav"
    ),
    "vox_age": TaskLayout(
        "VoxCeleb/concatenated_audio/age_classification_task_meta.json", "VoxCeleb/concatenated_audio", "wav"
    ),
    "had": TaskLayout(None, "HAD/concatenated_audio"),
}


@dataclasses.dataclass(frozen=True)
class Located:
    """A task found in the data dir: its records' source and the folder audio paths are relative to."""

    source: str  # the metadata file, or the scanned folder
    audio_dir: str


def locate(data_dir: str, task: str) -> Located | None:
    """The task's files under `data_dir` (the release root, the task's folder or its metadata file), or
    None when the task is not there."""
    layout = LAYOUTS[task]
    if layout.metadata is None:
        folders = (os.path.join(data_dir, layout.folder), os.path.join(data_dir, "test-clean"), data_dir)
        for folder in folders:
            if _is_scanned_folder(task, folder):
                return Located(os.path.abspath(folder), os.path.abspath(folder))
        return None
    file_name = os.path.basename(layout.metadata)
    for path in (os.path.join(data_dir, layout.metadata), os.path.join(data_dir, file_name), data_dir):
        if os.path.isfile(path) and os.path.basename(path) == file_name:
            base = os.path.dirname(os.path.abspath(path))
            return Located(os.path.abspath(path), os.path.normpath(os.path.join(base, layout.audio_base)))
    return None


def _is_scanned_folder(task: str, folder: str) -> bool:
    if task == "had":
        return any(os.path.isdir(os.path.join(folder, label)) for label in ("real", "fake"))
    return bool(glob.glob(os.path.join(folder, "*", "*", "*.flac")))  # librispeech: <spk>/<chap>/<utt>


def read_records(task: str, located: Located) -> list[tuple[int, dict[str, Any]]]:
    """(index, record) pairs of a located task, with audio paths relative to ``located.audio_dir``."""
    if task == "had":
        return _had_records(located.source)
    if task == "librispeech":
        return _librispeech_records(located.source)
    with open(located.source, encoding="utf-8") as f:
        data = json.load(f)
    if isinstance(data, dict):  # DESED's {"tasks": [...]}, HAD's {"metadata", "samples"}
        data = next((data[k] for k in ("tasks", "samples", "data") if isinstance(data.get(k), list)), data)
    if not isinstance(data, list):
        raise ValueError(f"{located.source}: expected a JSON list of records or {{'tasks': [...]}}")
    fields = LAYOUTS[task].id_fields
    out = []
    for i, rec in enumerate(data):
        if isinstance(rec, dict) and fields and all(rec.get(k) is not None for k in fields):
            rec = {**rec, "id": "-".join(str(rec[k]) for k in fields)}
        out.append((i, rec))
    return out


def _had_records(folder: str) -> list[tuple[int, dict[str, Any]]]:
    recs = []
    for label in ("real", "fake"):
        for p in sorted(glob.glob(os.path.join(folder, label, "*.wav"))):
            name = os.path.splitext(os.path.basename(p))[0]
            recs.append({
                "id": f"{label}/{name}", "path": os.path.relpath(p, folder), "question": HAD_QUESTION,
                "choice_a": "real", "choice_b": "fake", "answer_gt": label,
            })  # fmt: skip
    return list(enumerate(recs))


def _librispeech_records(folder: str) -> list[tuple[int, dict[str, Any]]]:
    """LibriSpeech-Long as the official script reads it: ``<spk>/<chap>/<utt>.flac`` with ``<utt>.txt``
    (or the chapter's ``<spk>-<chap>.trans.txt``)."""
    recs = []
    for flac in sorted(glob.glob(os.path.join(folder, "*", "*", "*.flac"))):
        utt = os.path.splitext(os.path.basename(flac))[0]
        chapter_dir = os.path.dirname(flac)
        text = None
        own = os.path.join(chapter_dir, utt + ".txt")
        if os.path.exists(own):
            with open(own, encoding="utf-8") as f:
                text = f.read().strip()
        else:
            for trans in sorted(glob.glob(os.path.join(chapter_dir, "*.trans.txt"))):
                with open(trans, encoding="utf-8") as f:
                    for line in f:
                        head, _, rest = line.strip().partition(" ")
                        if head == utt:
                            text = rest.strip()
        rec: dict[str, Any] = {"id": utt, "path": os.path.relpath(flac, folder)}
        if text:
            rec["transcript"] = text
        recs.append(rec)
    return list(enumerate(recs))


def keep_record(task: str, record: Any, selection: str) -> bool:
    """The official record filter (before parsing): VESUS drops the "happy" clips of persons 2 and 10."""
    if selection == ALL or task != "vesus" or not isinstance(record, dict):
        return True
    person = str(record.get("person_id", "")).strip()
    emotion = str(record.get("emotion_label", "")).strip().lower()
    return not (person in ("2", "10") and emotion == "happy")


def select(task: str, samples: Sequence[Any], label: Callable[[Any], str], selection: str) -> list[Any]:
    """The official sample selection after loading (HAD and speaker gender balanced, see the module
    docstring); `label` gives a sample's class ("real"/"fake", "male"/"female")."""
    if selection not in SELECTIONS:
        raise ValueError(f"selection must be one of {SELECTIONS}, got {selection!r}")
    classes = {"had": ("real", "fake"), "vox_gender": ("male", "female")}.get(task)
    if selection == ALL or classes is None:
        return list(samples)
    groups = [[s for s in samples if label(s).strip().lower() == c] for c in classes]
    n = min(len(g) for g in groups)
    rng = random.Random(SELECTION_SEED)
    chosen = {id(s) for g in groups for s in (rng.sample(g, n) if len(g) > n else g)}
    return [s for s in samples if id(s) in chosen]
