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
import os
from collections.abc import Iterable
from typing import Any

from hr_jax.eval import audiomarathon as am_layout
from hr_jax.eval.mmau_pro import load_mmau_pro
from hr_jax.eval.records import (
    AUDIO_FIELDS,
    RecordError,
    audio_list,
    dedupe,
    find_task_file,
    first_field,
    parse_am_record,
    probe_audio,
    read_records,
)
from hr_jax.eval.samples import LETTERS, MALFORMED, MISSING_AUDIO, MISSING_TASK, LoadReport, Problem, Sample
from hr_jax.eval.tasks import (
    AUDIOMARATHON,
    MMAU_PRO,
    SYNTH,
    benchmark_tasks,
    normalize_benchmark,
    resolve_task,
    task_sort_key,
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
        records, source, record_file = read_records(path, info.key, report), path, path
    report.files.append(source)
    samples = []
    for index, rec in records:
        report.records += 1
        if not am_layout.keep_record(info.key, rec, selection):
            report.not_selected += 1
            continue
        try:
            sample = parse_am_record(rec, index, info, record_file, data_dir)
        except RecordError as exc:
            report.add(Problem(MALFORMED, info.key, source, index, str(exc)))
            continue
        sample = probe_audio(sample, report, source, index, check_audio)
        if sample is not None:
            samples.append(sample)
    selected = am_layout.select(info.key, samples, _answer_text, selection)
    report.not_selected += len(samples) - len(selected)
    samples = dedupe(selected, report, source)
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
    has_audio = first_field(rec, AUDIO_FIELDS) not in (None, "")
    if not has_audio:
        rec["path"] = "-"
    try:
        sample = parse_am_record(rec, 0, info, "", "")
        paths = audio_list(rec) if has_audio else [""]
    except RecordError as exc:
        raise ValueError(f"{info.key} record: {exc}") from exc
    return dataclasses.replace(sample, audio_path=paths[0], extra_audio_paths=tuple(paths[1:]))


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
