"""Benchmark loaders: AudioMarathon (10 tasks), MMAU-Pro and the synthetic tasks of :mod:`hr_jax.synth`.

Every loader returns ``(samples, report)``: a list of :class:`Sample` and a :class:`LoadReport`
that counts and lists every problem (missing audio file, unreadable audio, malformed record
with the reason, duplicate id). A bad record never raises; it is reported and left out (or, for
a duplicate id, renamed and kept). Only a missing or ambiguous *task file* raises, before any
model work starts.

AudioMarathon is read as its Hugging Face release ships it, task by task from the official metadata files
and folders, with the official sample selection by default (:mod:`hr_jax.eval.audiomarathon` holds the
layout table). A task found nowhere in that layout may also be kept as ``<data_dir>/<TaskDir>/<task>.json``
(or ``.jsonl``, or the folder's only JSON file), the layout the synthetic tasks use.

Multiple-choice records: ``{"path", "question", "choice_a", "choice_b", "choice_c", "choice_d",
"answer_gt"}`` (``choice_c``/``choice_d`` may be absent or empty for two-way tasks, ``choice_e`` follows
for speaker age; a ``choices``/``options`` list or ``{"A": ..}`` dict is accepted too; the audio may be
under ``path`` or ``audio_path``). ``answer_gt`` is a letter ("B", "(b)") or the text of one choice
("Male", "real"). ASR records: ``{"path", "transcript"}``. An ``id`` field is used when present, else
``<task>-<index>``.

Synthetic tasks (benchmark ``synth``): ``python -m hr_jax.synth --out DIR --split test`` writes
``DIR/<task>/<task>.json`` in the AudioMarathon record format (``answer_gt`` is the answer text,
``transcript`` the digits of the ASR-like ``digits`` task, audio paths relative to ``DIR``); they
are read by the AudioMarathon parser unchanged, with the tasks of
:data:`hr_jax.eval.tasks.SYNTH_TASKS` (``digits``, ``spoken_qa``, ``sound_event``, ``scene``,
``melody``, ``gender``, ``sound_after_word``). Extra record fields are ignored.

MMAU-Pro layout (the release, ``gamma-lab-umd/MMAU-Pro``, with ``data.zip`` unzipped next to it)::

    <data_dir>/test.parquet      5,305 questions (read with pyarrow); or a mmau_pro.json(l) export
    <data_dir>/data/<uuid>.wav   16, 24, 44.1 or 48 kHz, mono or stereo (resampled and downmixed)

Columns used: ``id``, ``audio_path`` (a list; a multi-clip question's clips are concatenated at load
time, see :mod:`hr_jax.eval.audio_io`), ``question``, ``choices`` (a list), ``answer`` (the choice
text), ``category``. Every category is kept (``sound_music``, ``multi``, ...: extra columns in the
"other" group); open questions (no choices) and rows without an answer (instruction following) are
reported as ``not_scored`` and left out.
"""

from __future__ import annotations

import dataclasses
import glob
import json
import os
import re
from collections import Counter
from collections.abc import Iterable, Sequence
from typing import Any

from hr_jax.eval import audio_io
from hr_jax.eval import audiomarathon as am_layout
from hr_jax.eval.tasks import (
    AUDIOMARATHON,
    MMAU_PRO,
    SYNTH,
    TaskInfo,
    normalize_benchmark,
    resolve_task,
    slug,
)

LETTERS = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"

MISSING_AUDIO = "missing_audio"
UNREADABLE_AUDIO = "unreadable_audio"
MALFORMED = "malformed"
DUPLICATE_ID = "duplicate_id"
NOT_SCORED = "not_scored"
MISSING_TASK = "missing_task"


@dataclasses.dataclass(frozen=True)
class Sample:
    """One evaluation item.

    Attributes:
        id: unique within its task; results are keyed by it (resume, report).
        audio_path: absolute path of the (first) audio file.
        question: the question (empty for ASR).
        choices: option texts, in letter order (empty for ASR).
        answer: the correct letter for multiple choice, the transcript for ASR.
        task: task key (:mod:`hr_jax.eval.tasks`).
        category: the task's group for AudioMarathon ("semantic"/"acoustic") and synth
            ("semantic"/"acoustic"/"mixed"), the MMAU-Pro category name as given in the data for
            MMAU-Pro.
        reference: the ASR transcript, None for multiple choice.
        benchmark: "audiomarathon", "mmau-pro" or "synth".
        extra_audio_paths: further clips of a multi-audio question, appended in order.
        duration_s: total audio duration in seconds (None when audio was not probed).
    """

    id: str
    audio_path: str
    question: str
    choices: tuple[str, ...]
    answer: str
    task: str
    category: str
    reference: str | None = None
    benchmark: str = AUDIOMARATHON
    extra_audio_paths: tuple[str, ...] = ()
    duration_s: float | None = None

    @property
    def audio_paths(self) -> tuple[str, ...]:
        """All audio files of the sample, in order."""
        return (self.audio_path, *self.extra_audio_paths)

    @property
    def is_asr(self) -> bool:
        """True for transcription samples (no choices, a reference transcript)."""
        return self.reference is not None


@dataclasses.dataclass(frozen=True)
class Problem:
    """One problem found while loading.

    Attributes:
        kind: missing_audio | unreadable_audio | malformed | duplicate_id | not_scored |
            missing_task (a task of "all" not downloaded).
        task: task key.
        source: the record file (or directory) the record came from.
        record: record index in a JSON list, or 1-based line number in a JSONL file.
        reason: human-readable explanation.
        dropped: False when the record was kept anyway (a renamed duplicate id).
    """

    kind: str
    task: str
    source: str
    record: int | None
    reason: str
    dropped: bool = True


@dataclasses.dataclass
class LoadReport:
    """What a loader read, kept, and why it left anything out."""

    benchmark: str
    files: list[str] = dataclasses.field(default_factory=list)
    records: int = 0
    loaded: int = 0
    not_requested: int = 0
    not_selected: int = 0  # left out by the official sample selection
    selection: str = am_layout.OFFICIAL
    failed_tasks: list[str] = dataclasses.field(default_factory=list)  # records, but no audio found at all
    problems: list[Problem] = dataclasses.field(default_factory=list)

    def add(self, problem: Problem) -> None:
        """Record one problem."""
        self.problems.append(problem)

    def counts(self) -> dict[str, int]:
        """Number of problems per kind."""
        return dict(sorted(Counter(p.kind for p in self.problems).items()))

    @property
    def dropped(self) -> int:
        """Records left out because of a problem."""
        return sum(p.dropped for p in self.problems)

    def merge(self, other: LoadReport) -> None:
        """Fold another report (e.g. of another task) into this one."""
        self.files.extend(other.files)
        self.records += other.records
        self.loaded += other.loaded
        self.not_requested += other.not_requested
        self.not_selected += other.not_selected
        self.failed_tasks.extend(other.failed_tasks)
        self.problems.extend(other.problems)

    def summary(self, max_listed: int = 20) -> str:
        """A few lines for the terminal: totals, counts per kind, the first problems."""
        lines = [
            f"{self.benchmark}: {self.loaded} samples loaded from {self.records} records "
            f"in {len(self.files)} file(s); {self.dropped} left out"
            + (f"; {self.not_requested} in categories not requested" if self.not_requested else "")
            + (f"; {self.not_selected} not in the {self.selection} selection" if self.not_selected else "")
        ]
        if self.failed_tasks:
            lines.append(f"ERROR: no audio file found for tasks {', '.join(self.failed_tasks)}")
        missing = [p.task for p in self.problems if p.kind == MISSING_TASK]
        if missing:
            lines.append(f"tasks not found in the data directory (skipped): {', '.join(missing)}")
        listed = [p for p in self.problems if p.kind != MISSING_TASK]
        if listed:
            lines.append(
                "problems: " + ", ".join(f"{k}={v}" for k, v in self.counts().items() if k != MISSING_TASK)
            )
            for p in listed[:max_listed]:
                where = f"{p.source}" + (f" #{p.record}" if p.record is not None else "")
                lines.append(f"  [{p.kind}] {p.task}: {where}: {p.reason}")
            if len(listed) > max_listed:
                lines.append(f"  ... and {len(listed) - max_listed} more (see load_report.json)")
        return "\n".join(lines)

    def to_dict(self) -> dict[str, Any]:
        """JSON-serialisable form."""
        return {
            "benchmark": self.benchmark,
            "files": list(self.files),
            "records": self.records,
            "loaded": self.loaded,
            "dropped": self.dropped,
            "not_requested": self.not_requested,
            "not_selected": self.not_selected,
            "selection": self.selection,
            "failed_tasks": list(self.failed_tasks),
            "counts": self.counts(),
            "problems": [dataclasses.asdict(p) for p in self.problems],
        }


class _RecordError(ValueError):
    """A record is malformed; the message is the reason."""


# ----------------------------------------------------------------------------- file discovery


def _name_matches(name: str, names: set[str]) -> bool:
    return slug(name) in names


def _task_names(task: TaskInfo) -> set[str]:
    return {slug(n) for n in (task.key, task.abbrev, *task.aliases)}


def _json_files(directory: str) -> list[str]:
    return sorted(
        p
        for p in glob.glob(os.path.join(directory, "*"))
        if os.path.isfile(p) and p.lower().endswith((".json", ".jsonl"))
    )


def _find_task_dir(data_dir: str, task: TaskInfo) -> str | None:
    names = _task_names(task)
    if slug(os.path.basename(os.path.normpath(data_dir))) in names:
        return data_dir
    for entry in sorted(os.listdir(data_dir)):
        full = os.path.join(data_dir, entry)
        if os.path.isdir(full) and _name_matches(entry, names):
            return full
    return None


def find_task_file(data_dir: str, task: TaskInfo) -> str | None:
    """Locate the record file of an AudioMarathon task (see the module docstring for the order).

    Returns None when the task directory holds no JSON/JSONL file (directory layouts).

    Raises:
        FileNotFoundError: neither a task directory nor a flat ``<task>.json(l)`` exists.
        ValueError: the task directory holds several unnamed JSON files.
    """
    if not os.path.isdir(data_dir):
        raise FileNotFoundError(f"data directory {data_dir!r} does not exist")
    names = _task_names(task)
    task_dir = _find_task_dir(data_dir, task)
    if task_dir is not None:
        files = _json_files(task_dir)
        named = [f for f in files if _name_matches(os.path.splitext(os.path.basename(f))[0], names)]
        if named:
            return named[0]
        if len(files) == 1:
            return files[0]
        if len(files) > 1:
            raise ValueError(
                f"{task.key}: several record files in {task_dir} and none named after the task "
                f"({', '.join(os.path.basename(f) for f in files)}); rename the right one to {task.key}.json"
            )
        return None
    for f in _json_files(data_dir):
        if _name_matches(os.path.splitext(os.path.basename(f))[0], names):
            return f
    raise FileNotFoundError(
        f"{task.key} ({task.abbrev}): no directory named like {sorted(names)} and no {task.key}.json(l) "
        f"in {data_dir}"
    )


def _read_records(path: str, task: str, report: LoadReport) -> list[tuple[int, Any]]:
    """Records of a JSON or JSONL file as (index, record); unparsable lines are reported."""
    out: list[tuple[int, Any]] = []
    if path.lower().endswith(".parquet"):
        # pyarrow reads the release's parquet directly (columns with lists and nulls as Python lists and
        # None); the `datasets` library would add a cache and a heavier dependency for one table.
        import pyarrow.parquet as pq

        return list(enumerate(pq.read_table(path).to_pylist()))
    with open(path, encoding="utf-8") as f:
        text = f.read()
    if path.lower().endswith(".jsonl"):
        for lineno, line in enumerate(text.splitlines(), start=1):
            if not line.strip():
                continue
            try:
                out.append((lineno, json.loads(line)))
            except json.JSONDecodeError as exc:
                report.records += 1
                report.add(Problem(MALFORMED, task, path, lineno, f"invalid JSON: {exc.msg}"))
        return out
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ValueError(f"{path}: not valid JSON ({exc}); a JSONL file must end in .jsonl") from exc
    if isinstance(data, dict):
        for key in ("tasks", "samples", "data", "records", "items"):
            if isinstance(data.get(key), list):
                data = data[key]
                break
        else:
            raise ValueError(f"{path}: expected a JSON list of records (or {{'tasks': [...]}})")
    if not isinstance(data, list):
        raise ValueError(f"{path}: expected a JSON list of records")
    return list(enumerate(data))


# ----------------------------------------------------------------------------- record parsing


def _first(rec: dict[str, Any], keys: Sequence[str]) -> Any:
    for k in keys:
        if k in rec and rec[k] is not None:
            return rec[k]
    return None


def _text(value: Any, what: str, required: bool = True) -> str:
    if value is None:
        if required:
            raise _RecordError(f"missing {what}")
        return ""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        value = str(value)
    if not isinstance(value, str):
        raise _RecordError(f"{what} is a {type(value).__name__}, expected text")
    value = value.strip()
    if required and not value:
        raise _RecordError(f"empty {what}")
    return value


def _choices(rec: dict[str, Any]) -> tuple[str, ...]:
    raw = rec.get("choices", rec.get("options"))
    if raw is not None:
        if isinstance(raw, dict):
            keys = sorted(raw, key=lambda k: str(k).upper())
            items = [raw[k] for k in keys]
        elif isinstance(raw, (list, tuple)):
            items = list(raw)
        else:
            raise _RecordError(f"choices is a {type(raw).__name__}, expected a list")
    else:
        items = []
        for letter in LETTERS.lower():
            key = f"choice_{letter}"
            if key not in rec:
                break
            items.append(rec[key])
    while items and (items[-1] is None or (isinstance(items[-1], str) and not items[-1].strip())):
        items.pop()
    out = []
    for i, c in enumerate(items):
        out.append(_text(c, f"choice {LETTERS[i]}"))
    return tuple(out)


def _norm_option(text: str) -> str:
    return " ".join(re.sub(r"[^\w\s]", " ", text.lower()).split())


def answer_letter(answer: Any, choices: Sequence[str]) -> str | None:
    """The letter of `answer`: the text of one choice, or a letter form ("B", "(b)", "B.").

    The text of a choice wins over a letter: MMAU-Pro answers with the choice text, which may itself be a
    single letter (`answer_letter("A", ["G", "D", "A", "E"])` is "C").
    """
    if answer is None:
        return None
    a = str(answer).strip()
    exact = [i for i, c in enumerate(choices) if str(c).strip() == a]
    if len(exact) == 1:
        return LETTERS[exact[0]]
    m = re.fullmatch(r"[\(\[]?([A-Za-z])[\)\]\.:]?", a)
    if m:
        idx = LETTERS.index(m.group(1).upper())
        if idx < len(choices):
            return LETTERS[idx]
    norm = _norm_option(a)
    hits = [i for i, c in enumerate(choices) if _norm_option(c) == norm]
    if len(hits) == 1:
        return LETTERS[hits[0]]
    return None


def _record_id(rec: dict[str, Any], task: str, index: int) -> str:
    rid = _first(rec, ("id", "uniq_id", "sample_id", "key"))
    if rid is None or (isinstance(rid, str) and not rid.strip()):
        return f"{task}-{index:05d}"
    return str(rid).strip()


def _resolve_audio(path: str, record_file: str, data_dir: str) -> str:
    if os.path.isabs(path):
        return path
    base = os.path.dirname(os.path.abspath(record_file))
    first = os.path.normpath(os.path.join(base, path))
    if os.path.exists(first):
        return first
    second = os.path.normpath(os.path.join(os.path.abspath(data_dir), path))
    return second if os.path.exists(second) else first


def _audio_list(rec: dict[str, Any]) -> list[str]:
    raw = _first(rec, ("path", "audio_path", "audio", "wav", "audio_file", "file"))
    if isinstance(raw, dict):
        raw = raw.get("path")
    if isinstance(raw, str):
        raw = [raw]
    if not isinstance(raw, (list, tuple)) or not raw:
        raise _RecordError("missing audio path")
    return [_text(p, "audio path") for p in raw]


def _check_audio(
    sample: Sample, report: LoadReport, source: str, index: int, check_audio: bool
) -> Sample | None:
    if not check_audio:
        return sample
    durations = []
    for p in sample.audio_paths:
        try:
            durations.append(audio_io.probe_duration(p))
        except FileNotFoundError:
            report.add(Problem(MISSING_AUDIO, sample.task, source, index, f"audio file not found: {p}"))
            return None
        except Exception as exc:  # any decoder failure is a data problem, never a crash
            report.add(Problem(UNREADABLE_AUDIO, sample.task, source, index, f"{p}: {exc}"))
            return None
    return dataclasses.replace(sample, duration_s=audio_io.total_duration(durations))


def _dedupe(samples: list[Sample], report: LoadReport, source: str) -> list[Sample]:
    seen: Counter[str] = Counter()
    out = []
    for s in samples:
        seen[s.id] += 1
        if seen[s.id] > 1:
            new_id = f"{s.id}#{seen[s.id]}"
            report.add(
                Problem(
                    DUPLICATE_ID, s.task, source, None, f"duplicate id {s.id!r} renamed {new_id!r}", False
                )
            )
            s = dataclasses.replace(s, id=new_id)
        out.append(s)
    return out


def _parse_am_record(rec: Any, index: int, task: TaskInfo, record_file: str, data_dir: str) -> Sample:
    if not isinstance(rec, dict):
        raise _RecordError(f"record is a {type(rec).__name__}, expected an object")
    paths = [_resolve_audio(p, record_file, data_dir) for p in _audio_list(rec)]
    rid = _record_id(rec, task.key, index)
    if task.is_asr:
        ref = _text(
            _first(rec, ("transcript", "transcription", "text", "reference", "answer_gt", "answer")),
            "transcript",
        )
        question = _text(rec.get("question"), "question", required=False)
        return Sample(
            rid, paths[0], question, (), ref, task.key, task.group, ref, task.benchmark, tuple(paths[1:])
        )
    question = _text(rec.get("question"), "question")
    choices = _choices(rec)
    if len(choices) < 2:
        raise _RecordError(f"needs at least 2 choices, found {len(choices)}")
    raw_answer = _first(rec, ("answer_gt", "answer", "label", "gt"))
    if raw_answer is None:
        raise _RecordError("missing answer_gt")
    letter = answer_letter(raw_answer, choices)
    if letter is None:
        raise _RecordError(
            f"answer_gt {str(raw_answer)[:40]!r} is neither a letter A-{LETTERS[len(choices) - 1]} "
            "nor the text of one choice"
        )
    return Sample(
        rid, paths[0], question, choices, letter, task.key, task.group, None, task.benchmark, tuple(paths[1:])
    )


# ----------------------------------------------------------------------------- public loaders


def load_audiomarathon(
    data_dir: str,
    task: str,
    *,
    check_audio: bool = True,
    benchmark: str = AUDIOMARATHON,
    selection: str = am_layout.OFFICIAL,
) -> tuple[list[Sample], LoadReport]:
    """Load one AudioMarathon task (key, abbreviation or data set name) from `data_dir`.

    Args:
        data_dir: the release as downloaded (:mod:`hr_jax.eval.audiomarathon`), a task's folder or its
            metadata file; for the synthetic tasks, the generator's output directory.
        task: e.g. ``"gtzan"``, ``"MC"``, ``"Vox_age"``.
        check_audio: probe every audio file (existence, decodability, duration). Without it,
            missing files are only found when the runner loads them.
        benchmark: the task registry to resolve `task` in: "audiomarathon", or "synth" for the
            synthetic tasks, which share the record format (:func:`load_synth`).
        selection: "official" (the official scripts' sample selection) or "all".

    Returns:
        The samples in file order and the load report.

    Raises:
        FileNotFoundError: the task is not in `data_dir`.
    """
    bench = normalize_benchmark(benchmark)
    if bench == MMAU_PRO:
        raise ValueError("MMAU-Pro has its own format: use load_mmau_pro")
    info = resolve_task(bench, task)
    report = LoadReport(bench, selection=selection)
    located = am_layout.locate(data_dir, info.key) if bench == AUDIOMARATHON else None
    if located is not None:
        records = am_layout.read_records(info.key, located)
        source = located.source
        record_file = os.path.join(located.audio_dir, "_")  # relative audio paths resolve against audio_dir
    else:  # the synthetic tasks, and AudioMarathon records kept in <task>/<task>.json(l)
        path = find_task_file(data_dir, info)
        if path is None:
            raise FileNotFoundError(f"{info.key}: no record file (*.json / *.jsonl) in {data_dir}")
        records, source, record_file = _read_records(path, info.key, report), path, path
    report.files.append(source)
    samples = []
    for index, rec in records:
        report.records += 1
        if not am_layout.keep_record(info.key, rec, selection):
            report.not_selected += 1
            continue
        try:
            sample = _parse_am_record(rec, index, info, record_file, data_dir)
        except _RecordError as exc:
            report.add(Problem(MALFORMED, info.key, source, index, str(exc)))
            continue
        sample = _check_audio(sample, report, source, index, check_audio)
        if sample is not None:
            samples.append(sample)
    selected = am_layout.select(info.key, samples, _answer_text, selection)
    report.not_selected += len(samples) - len(selected)
    samples = _dedupe(selected, report, source)
    report.loaded = len(samples)
    if report.records and not samples and any(p.kind == MISSING_AUDIO for p in report.problems):
        report.failed_tasks.append(info.key)
    return samples, report


def _answer_text(sample: Sample) -> str:
    """The text of a multiple-choice sample's correct option."""
    return sample.choices[LETTERS.index(sample.answer)] if sample.choices else sample.answer


def load_synth(data_dir: str, task: str, *, check_audio: bool = True) -> tuple[list[Sample], LoadReport]:
    """Load one synthetic task (``digits``, ``DIG``, ...) written by :func:`hr_jax.synth.generate`.

    `data_dir` is the generator's ``out_dir`` of one split (``<data_dir>/<task>/<task>.json``).
    Same parser, problems and return value as :func:`load_audiomarathon`.
    """
    return load_audiomarathon(data_dir, task, check_audio=check_audio, benchmark=SYNTH)


def parse_record(record: dict[str, Any], benchmark: str = SYNTH, task: str | None = None) -> Sample:
    """The :class:`Sample` the loader makes of one AudioMarathon-format record, without files.

    `task` defaults to the record's ``task`` field (synthetic records carry it). The audio path,
    if any, is kept as written (not resolved, not probed); a record without one gets ``""``.
    Used to build the exact evaluation prompt of a record elsewhere (training), see
    :func:`hr_jax.eval.prompts.record_prompt`.

    Raises:
        ValueError: the record is malformed (the loader's reason).
    """
    bench = normalize_benchmark(benchmark)
    if bench == MMAU_PRO:
        raise ValueError("parse_record reads AudioMarathon-format records (audiomarathon, synth)")
    info = resolve_task(bench, task if task is not None else str(record.get("task", "")))
    rec = dict(record)
    has_audio = _first(rec, ("path", "audio_path", "audio", "wav", "audio_file", "file")) not in (None, "")
    if not has_audio:
        rec["path"] = "-"
    try:
        sample = _parse_am_record(rec, 0, info, "", "")
        paths = _audio_list(rec) if has_audio else [""]
    except _RecordError as exc:
        raise ValueError(f"{info.key} record: {exc}") from exc
    return dataclasses.replace(sample, audio_path=paths[0], extra_audio_paths=tuple(paths[1:]))


MMAU_PRO_PARQUET = "test.parquet"  # the release: gamma-lab-umd/MMAU-Pro, next to data/ (data.zip unzipped)
MMAU_PRO_FILE_NAMES = ("mmau_pro", "mmau-pro", "mmaupro", "test")


def find_mmau_pro_file(data_dir: str) -> str:
    """Locate MMAU-Pro's question file in `data_dir` (module docstring).

    Raises:
        FileNotFoundError: no candidate file.
        ValueError: several unnamed candidates.
    """
    if os.path.isfile(data_dir):
        return data_dir
    if not os.path.isdir(data_dir):
        raise FileNotFoundError(f"data directory {data_dir!r} does not exist")
    parquet = os.path.join(data_dir, MMAU_PRO_PARQUET)
    if os.path.isfile(parquet):  # the release as shipped
        return parquet
    files = _json_files(data_dir)
    wanted = {slug(n) for n in MMAU_PRO_FILE_NAMES}
    named = [f for f in files if slug(os.path.splitext(os.path.basename(f))[0]) in wanted]
    if named:
        return named[0]
    if len(files) == 1:
        return files[0]
    if not files:
        raise FileNotFoundError(f"no MMAU-Pro question file (mmau_pro.jsonl) in {data_dir}")
    raise ValueError(
        f"several JSON files in {data_dir} and none named mmau_pro.json(l): "
        + ", ".join(os.path.basename(f) for f in files)
    )


def load_mmau_pro(
    data_dir: str, categories: Iterable[str] | None = None, *, check_audio: bool = True
) -> tuple[list[Sample], LoadReport]:
    """Load MMAU-Pro multiple-choice questions, optionally only some categories.

    Args:
        data_dir: directory with the question file and the audio (or the question file itself).
        categories: category names or keys (``speech``, ``voice_chat``/``voice``, ``sound``,
            ``music``, ``spatial``, or any other category present); None loads all.
        check_audio: probe every audio file.

    Returns:
        Samples (``task`` = category key, ``category`` = the category as written in the data)
        and the load report; records of categories not requested are counted in
        ``report.not_requested``.
    """
    path = find_mmau_pro_file(data_dir)
    base_dir = data_dir if os.path.isdir(data_dir) else os.path.dirname(path)
    wanted = None if categories is None else {resolve_task(MMAU_PRO, c).key for c in categories}
    report = LoadReport(MMAU_PRO, files=[path])
    records = _read_records(path, "mmau-pro", report)
    samples = []
    for index, rec in records:
        report.records += 1
        task_key = "mmau-pro"
        try:
            if not isinstance(rec, dict):
                raise _RecordError(f"record is a {type(rec).__name__}, expected an object")
            category = _text(_first(rec, ("category", "task", "domain")), "category")
            info = resolve_task(MMAU_PRO, category)
            task_key = info.key
            if wanted is not None and info.key not in wanted:
                report.not_requested += 1
                continue
            choices = _choices(rec)
            raw_answer = _first(rec, ("answer", "answer_gt", "label"))
            if not choices or raw_answer is None:
                why = "open-ended question (no choices)" if not choices else "no reference answer"
                report.add(Problem(NOT_SCORED, info.key, path, index, f"{why}: not scored"))
                continue
            if len(choices) < 2:
                raise _RecordError("needs at least 2 choices, found 1")
            question = _text(rec.get("question"), "question")
            letter = answer_letter(raw_answer, choices)
            if letter is None:
                raise _RecordError(f"answer {str(raw_answer)[:40]!r} matches no choice")
            paths = [_resolve_audio(p, path, base_dir) for p in _audio_list(rec)]
            rid = _record_id(rec, "mmau_pro", index)
        except _RecordError as exc:
            report.add(Problem(MALFORMED, task_key, path, index, str(exc)))
            continue
        sample = Sample(
            rid, paths[0], question, choices, letter, info.key, category, None, MMAU_PRO, tuple(paths[1:])
        )
        sample = _check_audio(sample, report, path, index, check_audio)
        if sample is not None:
            samples.append(sample)
    samples = _dedupe(samples, report, path)
    report.loaded = len(samples)
    return samples, report


def load_benchmark(
    benchmark: str,
    data_dir: str,
    tasks: Iterable[str] | None = None,
    *,
    check_audio: bool = True,
    selection: str = am_layout.OFFICIAL,
) -> tuple[dict[str, list[Sample]], LoadReport]:
    """Load several tasks of one benchmark.

    Args:
        benchmark: "audiomarathon", "mmau-pro" or "synth" (any spelling).
        data_dir: the benchmark's directory.
        tasks: task names; None (or "all") loads every AudioMarathon (or synth) task present in
            `data_dir` (absent ones are reported as ``missing_task``), or every MMAU-Pro
            category present. A task named explicitly must exist.
        check_audio: probe every audio file.
        selection: AudioMarathon's sample selection, "official" or "all".

    Returns:
        ``{task key: samples}`` in the paper's column order, and one merged report. A task whose
        records name only missing audio files is in ``report.failed_tasks`` (and has no samples).
    """
    from hr_jax.eval.tasks import benchmark_tasks, task_sort_key

    if selection not in am_layout.SELECTIONS:
        raise ValueError(f"selection must be one of {am_layout.SELECTIONS}, got {selection!r}")
    bench = normalize_benchmark(benchmark)
    task_list = None if tasks is None else [t for t in tasks if t and t.lower() != "all"] or None
    if bench == MMAU_PRO:
        samples, report = load_mmau_pro(data_dir, task_list, check_audio=check_audio)
        by_task: dict[str, list[Sample]] = {}
        for s in samples:
            by_task.setdefault(s.task, []).append(s)
        if task_list is not None:
            for t in task_list:
                by_task.setdefault(resolve_task(bench, t).key, [])
        order = sorted(by_task, key=lambda k: task_sort_key(resolve_task(bench, k)))
        return {k: by_task[k] for k in order}, report
    infos = [resolve_task(bench, t) for t in task_list] if task_list else list(benchmark_tasks(bench))
    infos = sorted(dict.fromkeys(infos), key=task_sort_key)
    report = LoadReport(bench, selection=selection)
    out = {}
    for info in infos:
        try:
            samples, rep = load_audiomarathon(
                data_dir, info.key, check_audio=check_audio, benchmark=bench, selection=selection
            )
        except FileNotFoundError as exc:
            if task_list is not None:  # a task named explicitly must exist
                raise
            report.add(Problem(MISSING_TASK, info.key, data_dir, None, str(exc), dropped=False))
            continue
        report.merge(rep)
        out[info.key] = samples
    return out, report
