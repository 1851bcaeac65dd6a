"""MMAU-Pro as released (`gamma-lab-umd/MMAU-Pro`): `test.parquet` (or a JSON export) + `data/`."""

from __future__ import annotations

import os
from collections.abc import Iterable

from hr_jax.eval.records import (
    RecordError,
    audio_list,
    choices_field,
    dedupe,
    first_field,
    json_files,
    probe_audio,
    read_records,
    record_id,
    resolve_audio,
    text_field,
)
from hr_jax.eval.samples import MALFORMED, NOT_SCORED, LoadReport, Problem, Sample, answer_letter
from hr_jax.eval.tasks import MMAU_PRO, resolve_task, slug

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
    files = json_files(data_dir)
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
    records = read_records(path, "mmau-pro", report)
    samples = []
    for index, rec in records:
        report.records += 1
        task_key = "mmau-pro"
        try:
            if not isinstance(rec, dict):
                raise RecordError(f"record is a {type(rec).__name__}, expected an object")
            category = text_field(first_field(rec, ("category", "task", "domain")), "category")
            info = resolve_task(MMAU_PRO, category)
            task_key = info.key
            if wanted is not None and info.key not in wanted:
                report.not_requested += 1
                continue
            choices = choices_field(rec)
            raw_answer = first_field(rec, ("answer", "answer_gt", "label"))
            if not choices or raw_answer is None:
                why = "open-ended question (no choices)" if not choices else "no reference answer"
                report.add(Problem(NOT_SCORED, info.key, path, index, f"{why}: not scored"))
                continue
            if len(choices) < 2:
                raise RecordError("needs at least 2 choices, found 1")
            question = text_field(rec.get("question"), "question")
            letter = answer_letter(raw_answer, choices)
            if letter is None:
                raise RecordError(f"answer {str(raw_answer)[:40]!r} matches no choice")
            paths = [resolve_audio(p, path, base_dir) for p in audio_list(rec)]
            rid = record_id(rec, "mmau_pro", index)
        except RecordError as exc:
            report.add(Problem(MALFORMED, task_key, path, index, str(exc)))
            continue
        sample = Sample(
            rid, paths[0], question, choices, letter, info.key, category, None, MMAU_PRO, tuple(paths[1:])
        )
        sample = probe_audio(sample, report, path, index, check_audio)
        if sample is not None:
            samples.append(sample)
    samples = dedupe(samples, report, path)
    report.loaded = len(samples)
    return samples, report
