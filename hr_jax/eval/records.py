"""AudioMarathon-format record files: finding a task's file, reading it, and parsing each record
into a `Sample` (the synthetic tasks and MMAU-Pro's JSON exports share the field helpers)."""

from __future__ import annotations

import dataclasses
import glob
import json
import os
from collections import Counter
from collections.abc import Sequence
from typing import Any

from hr_jax.eval import audio_io
from hr_jax.eval.samples import (
    DUPLICATE_ID,
    LETTERS,
    MALFORMED,
    MISSING_AUDIO,
    UNREADABLE_AUDIO,
    LoadReport,
    Problem,
    Sample,
    answer_letter,
)
from hr_jax.eval.tasks import TaskInfo, slug

AUDIO_FIELDS = ("path", "audio_path", "audio", "wav", "audio_file", "file")  # where a record names its audio


class RecordError(ValueError):
    """A record is malformed; the message is the reason."""


# ----------------------------------------------------------------------------- file discovery


def _name_matches(name: str, names: set[str]) -> bool:
    return slug(name) in names


def _task_names(task: TaskInfo) -> set[str]:
    return {slug(n) for n in (task.key, task.abbrev, *task.aliases)}


def json_files(directory: str) -> list[str]:
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
        files = json_files(task_dir)
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
    for f in json_files(data_dir):
        if _name_matches(os.path.splitext(os.path.basename(f))[0], names):
            return f
    raise FileNotFoundError(
        f"{task.key} ({task.abbrev}): no directory named like {sorted(names)} and no {task.key}.json(l) "
        f"in {data_dir}"
    )


def read_records(path: str, task: str, report: LoadReport) -> list[tuple[int, Any]]:
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


def first_field(rec: dict[str, Any], keys: Sequence[str]) -> Any:
    for k in keys:
        if k in rec and rec[k] is not None:
            return rec[k]
    return None


def text_field(value: Any, what: str, required: bool = True) -> str:
    if value is None:
        if required:
            raise RecordError(f"missing {what}")
        return ""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        value = str(value)
    if not isinstance(value, str):
        raise RecordError(f"{what} is a {type(value).__name__}, expected text")
    value = value.strip()
    if required and not value:
        raise RecordError(f"empty {what}")
    return value


def choices_field(rec: dict[str, Any]) -> tuple[str, ...]:
    raw = rec.get("choices", rec.get("options"))
    if raw is not None:
        if isinstance(raw, dict):
            keys = sorted(raw, key=lambda k: str(k).upper())
            items = [raw[k] for k in keys]
        elif isinstance(raw, (list, tuple)):
            items = list(raw)
        else:
            raise RecordError(f"choices is a {type(raw).__name__}, expected a list")
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
        out.append(text_field(c, f"choice {LETTERS[i]}"))
    return tuple(out)


def record_id(rec: dict[str, Any], task: str, index: int) -> str:
    rid = first_field(rec, ("id", "uniq_id", "sample_id", "key"))
    if rid is None or (isinstance(rid, str) and not rid.strip()):
        return f"{task}-{index:05d}"
    return str(rid).strip()


def resolve_audio(path: str, record_file: str, data_dir: str) -> str:
    if os.path.isabs(path):
        return path
    base = os.path.dirname(os.path.abspath(record_file))
    first = os.path.normpath(os.path.join(base, path))
    if os.path.exists(first):
        return first
    second = os.path.normpath(os.path.join(os.path.abspath(data_dir), path))
    return second if os.path.exists(second) else first


def audio_list(rec: dict[str, Any]) -> list[str]:
    raw = first_field(rec, AUDIO_FIELDS)
    if isinstance(raw, dict):
        raw = raw.get("path")
    if isinstance(raw, str):
        raw = [raw]
    if not isinstance(raw, (list, tuple)) or not raw:
        raise RecordError("missing audio path")
    return [text_field(p, "audio path") for p in raw]


def probe_audio(
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


def dedupe(samples: list[Sample], report: LoadReport, source: str) -> list[Sample]:
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


def parse_am_record(rec: Any, index: int, task: TaskInfo, record_file: str, data_dir: str) -> Sample:
    if not isinstance(rec, dict):
        raise RecordError(f"record is a {type(rec).__name__}, expected an object")
    paths = [resolve_audio(p, record_file, data_dir) for p in audio_list(rec)]
    rid = record_id(rec, task.key, index)
    if task.is_asr:
        ref = text_field(
            first_field(rec, ("transcript", "transcription", "text", "reference", "answer_gt", "answer")),
            "transcript",
        )
        question = text_field(rec.get("question"), "question", required=False)
        return Sample(
            rid, paths[0], question, (), ref, task.key, task.group, ref, task.benchmark, tuple(paths[1:])
        )
    question = text_field(rec.get("question"), "question")
    choices = choices_field(rec)
    if len(choices) < 2:
        raise RecordError(f"needs at least 2 choices, found {len(choices)}")
    raw_answer = first_field(rec, ("answer_gt", "answer", "label", "gt"))
    if raw_answer is None:
        raise RecordError("missing answer_gt")
    letter = answer_letter(raw_answer, choices)
    if letter is None:
        raise RecordError(
            f"answer_gt {str(raw_answer)[:40]!r} is neither a letter A-{LETTERS[len(choices) - 1]} "
            "nor the text of one choice"
        )
    return Sample(
        rid, paths[0], question, choices, letter, task.key, task.group, None, task.benchmark, tuple(paths[1:])
    )
