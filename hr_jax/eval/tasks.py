"""Task registry: the benchmarks' tasks, their paper abbreviations, groups and metrics.

AudioMarathon ships ten tasks. The HeadRouter paper's Table 1 reports nine of them
(semantic: SER, SCR, ASR; acoustic: SED, MC, ASC, ER, SAR, SGR). The tenth, HAD (half-truth
audio deepfake detection, called "SD" in AudioMarathon's own leaderboard), is not in the
paper's table; it is kept here as an acoustic task and placed in the last column so the first
nine columns line up with the paper. Pass the nine paper abbreviations to the report's
``--tasks`` to reproduce the paper's nine-task average.

========  ============  =====  ========  =============  ==========================================
key       dataset       abbr.  group     metric         what the task asks
========  ============  =====  ========  =============  ==========================================
slue      SLUE          SER    semantic  macro F1       speech entity recognition
race      RACE          SCR    semantic  macro F1       speech content reasoning (read-aloud QA)
librispeech LibriSpeech ASR    semantic  word accuracy  transcription, 100 - WER%
desed     DESED         SED    acoustic  macro F1       sound event detection
gtzan     GTZAN         MC     acoustic  macro F1       music genre classification
tau       TAU           ASC    acoustic  macro F1       acoustic scene classification
vesus     VESUS         ER     acoustic  macro F1       emotion recognition
vox_age   VoxCeleb      SAR    acoustic  macro F1       speaker age recognition
vox_gender VoxCeleb     SGR    acoustic  weighted F1    speaker gender recognition
had       HAD           SD     acoustic  macro F1       real vs partially synthesized speech
========  ============  =====  ========  =============  ==========================================

MMAU-Pro's tasks are its categories (paper Table 2): speech and voice chat (the "Speech" group),
sound, music and spatial (the "Acoustic" group); all are scored by accuracy, and the benchmark
average is sample-weighted. Categories outside these five (MMAU-Pro also has mixed ones such as
``sound-music``) are kept as extra columns in the "other" group.

The ``synth`` benchmark is the test split of :mod:`hr_jax.synth` (seven synthetic long-audio
tasks, written in AudioMarathon's record format and read by the same parser). Its groups are
semantic, acoustic and "mixed" (shown after acoustic); its average is the plain task mean, as
for AudioMarathon.

================  =====  ========  =============  ==========================================
key               abbr.  group     metric         what the task asks
================  =====  ========  =============  ==========================================
digits            DIG    semantic  word accuracy  transcribe 3-4 spoken digits, 100 - WER%
spoken_qa         SQA    semantic  macro F1       question about one spoken sentence
sound_event       SEV    acoustic  macro F1       which sound event occurred
scene             SCN    acoustic  macro F1       which background noise
melody            MEL    acoustic  macro F1       music style
gender            GEN    acoustic  weighted F1    speaker gender
sound_after_word  SAW    mixed     macro F1       which sound followed a spoken cue word
================  =====  ========  =============  ==========================================
"""

from __future__ import annotations

import dataclasses
import re

AUDIOMARATHON = "audiomarathon"
MMAU_PRO = "mmau-pro"
SYNTH = "synth"
BENCHMARKS = (AUDIOMARATHON, MMAU_PRO, SYNTH)

F1_MACRO = "f1_macro"
F1_WEIGHTED = "f1_weighted"
WORD_ACCURACY = "word_accuracy"
ACCURACY = "accuracy"


@dataclasses.dataclass(frozen=True)
class TaskInfo:
    """One benchmark task (AudioMarathon) or category (MMAU-Pro)."""

    key: str
    benchmark: str
    dataset: str
    abbrev: str
    group: str
    metric: str
    description: str
    aliases: tuple[str, ...] = ()

    @property
    def is_asr(self) -> bool:
        """True when the task is scored on a transcript instead of a chosen option."""
        return self.metric == WORD_ACCURACY


_AM = AUDIOMARATHON
AUDIOMARATHON_TASKS: tuple[TaskInfo, ...] = (
    TaskInfo("slue", _AM, "SLUE", "SER", "semantic", F1_MACRO, "Speech entity recognition", ("SLUE",)),
    TaskInfo("race", _AM, "RACE", "SCR", "semantic", F1_MACRO, "Speech content reasoning", ("RACE",)),
    TaskInfo(
        "librispeech",
        _AM,
        "LibriSpeech",
        "ASR",
        "semantic",
        WORD_ACCURACY,
        "Automatic speech recognition",
        ("LibriSpeech", "LibriSpeech-Long", "librispeech_long"),
    ),
    TaskInfo("desed", _AM, "DESED", "SED", "acoustic", F1_MACRO, "Sound event detection", ("DESED",)),
    TaskInfo("gtzan", _AM, "GTZAN", "MC", "acoustic", F1_MACRO, "Music genre classification", ("GTZAN",)),
    TaskInfo("tau", _AM, "TAU", "ASC", "acoustic", F1_MACRO, "Acoustic scene classification", ("TAU",)),
    TaskInfo("vesus", _AM, "VESUS", "ER", "acoustic", F1_MACRO, "Emotion recognition", ("VESUS",)),
    TaskInfo(
        "vox_age",
        _AM,
        "VoxCeleb",
        "SAR",
        "acoustic",
        F1_MACRO,
        "Speaker age recognition",
        ("Vox_age", "VoxCeleb_age", "voxceleb-age"),
    ),
    TaskInfo(
        "vox_gender",
        _AM,
        "VoxCeleb",
        "SGR",
        "acoustic",
        F1_WEIGHTED,
        "Speaker gender recognition",
        ("Vox", "Vox_gender", "VoxCeleb_gender", "voxceleb-gender"),
    ),
    TaskInfo(
        "had", _AM, "HAD", "SD", "acoustic", F1_MACRO, "Audio deepfake (half-truth) detection", ("HAD",)
    ),
)

_MP = MMAU_PRO
MMAU_PRO_TASKS: tuple[TaskInfo, ...] = (
    TaskInfo("speech", _MP, "MMAU-Pro", "Speech", "speech", ACCURACY, "Speech"),
    TaskInfo(
        "voice_chat",
        _MP,
        "MMAU-Pro",
        "Voice Chat",
        "speech",
        ACCURACY,
        "Voice chat",
        ("voice", "voicechat", "voice chat", "vc"),
    ),
    TaskInfo("sound", _MP, "MMAU-Pro", "Sound", "acoustic", ACCURACY, "Sound"),
    TaskInfo("music", _MP, "MMAU-Pro", "Music", "acoustic", ACCURACY, "Music"),
    TaskInfo(
        "spatial", _MP, "MMAU-Pro", "Spatial", "acoustic", ACCURACY, "Spatial audio", ("spatial audio", "sa")
    ),
)

_SY = SYNTH
SYNTH_TASKS: tuple[TaskInfo, ...] = (
    TaskInfo("digits", _SY, "synth", "DIG", "semantic", WORD_ACCURACY, "Spoken digits (ASR-like)"),
    TaskInfo("spoken_qa", _SY, "synth", "SQA", "semantic", F1_MACRO, "Spoken question answering"),
    TaskInfo("sound_event", _SY, "synth", "SEV", "acoustic", F1_MACRO, "Sound event"),
    TaskInfo("scene", _SY, "synth", "SCN", "acoustic", F1_MACRO, "Background scene"),
    TaskInfo("melody", _SY, "synth", "MEL", "acoustic", F1_MACRO, "Music style"),
    TaskInfo("gender", _SY, "synth", "GEN", "acoustic", F1_WEIGHTED, "Speaker gender"),
    TaskInfo("sound_after_word", _SY, "synth", "SAW", "mixed", F1_MACRO, "Sound after a spoken word"),
)

GROUP_ORDER = {"semantic": 0, "speech": 0, "acoustic": 1, "mixed": 2, "other": 3}


def slug(text: str) -> str:
    """Lower-case `text` and turn every run of non-alphanumerics into one underscore."""
    return re.sub(r"[^a-z0-9]+", "_", text.strip().lower()).strip("_")


def benchmark_tasks(benchmark: str) -> tuple[TaskInfo, ...]:
    """The registered tasks of `benchmark`, in the paper's column order."""
    bench = normalize_benchmark(benchmark)
    return {AUDIOMARATHON: AUDIOMARATHON_TASKS, MMAU_PRO: MMAU_PRO_TASKS, SYNTH: SYNTH_TASKS}[bench]


def normalize_benchmark(name: str) -> str:
    """Map spellings such as ``AudioMarathon``, ``mmau_pro``, ``synthetic`` to a benchmark id."""
    s = slug(name)
    if s in ("synth", "synthetic", "hr_jax_synth"):
        return SYNTH
    if s in ("audiomarathon", "audio_marathon", "am"):
        return AUDIOMARATHON
    if s in ("mmau_pro", "mmaupro", "mmau"):
        return MMAU_PRO
    raise ValueError(f"unknown benchmark {name!r}; expected one of {', '.join(BENCHMARKS)}")


def resolve_task(benchmark: str, name: str) -> TaskInfo:
    """Find a task by key, abbreviation, data set name or alias (case-insensitive).

    For MMAU-Pro, unknown category names are accepted and become tasks of the "other" group, so
    categories beyond the paper's five are reported rather than dropped.
    """
    bench = normalize_benchmark(benchmark)
    want = slug(name)
    for t in benchmark_tasks(bench):
        names = {t.key, t.abbrev, *t.aliases}
        if want in {slug(n) for n in names}:
            return t
    if bench == MMAU_PRO and want:
        return TaskInfo(want, MMAU_PRO, "MMAU-Pro", name.strip().title(), "other", ACCURACY, name.strip())
    known = ", ".join(f"{t.key} ({t.abbrev})" for t in benchmark_tasks(bench))
    raise ValueError(f"unknown {bench} task {name!r}; known tasks: {known}")


def task_sort_key(task: TaskInfo) -> tuple[int, int, str]:
    """Column order: the registry order for known tasks, then extra categories alphabetically."""
    registry = benchmark_tasks(task.benchmark)
    for i, t in enumerate(registry):
        if t.key == task.key:
            return (GROUP_ORDER.get(t.group, 3), i, t.key)
    return (GROUP_ORDER.get(task.group, 3), len(registry), task.key)
