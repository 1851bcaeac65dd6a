"""The JSONL rows an evaluation run writes: one per sample, scored, or an error row."""

from __future__ import annotations

from typing import Any

import numpy as np

from hr_jax.eval import results
from hr_jax.eval.metrics import normalize_transcript
from hr_jax.eval.prompts import clean_transcript, parse_answer
from hr_jax.eval.samples import Sample


def kept_audio_mask(out: Any, row: int, num_audio: int) -> np.ndarray | None:
    """Boolean mask over the row's audio tokens of those kept, from kept_positions and audio_start."""
    kept = getattr(out, "kept_positions", None)
    starts = getattr(out, "audio_start", None)
    if kept is None or starts is None or num_audio <= 0:
        return None
    start = int(np.asarray(starts)[row])
    if start < 0:
        return None
    pos = np.asarray(kept)[row]
    idx = pos[(pos >= start) & (pos < start + num_audio)] - start
    mask = np.zeros(num_audio, dtype=bool)
    mask[idx] = True
    return mask


def score(sample: Sample, reply: str) -> tuple[str | None, bool]:
    """(prediction, correct): the parsed letter, or the cleaned transcript for ASR."""
    if sample.is_asr:
        hyp = clean_transcript(reply)
        return hyp, normalize_transcript(hyp) == normalize_transcript(sample.reference or "")
    pred = parse_answer(reply, sample.choices)
    return pred, pred is not None and pred == sample.answer


def _base_row(sample: Sample, method: str, ratio: float, prompt: str) -> dict[str, Any]:
    return {
        "id": sample.id,
        "task": sample.task,
        "category": sample.category,
        "method": method,
        "ratio": ratio,
        "audio_paths": list(sample.audio_paths),
        "duration_s": None if sample.duration_s is None else round(sample.duration_s, 3),
        "prompt": prompt,
    }


def _opt_list(value: Any, row: int, ndigits: int = 6) -> Any:
    if value is None:
        return None
    arr = np.asarray(value)[row]
    if arr.ndim == 0:
        return round(float(arr), ndigits)
    return [round(float(v), ndigits) for v in arr]


def result_row(
    sample: Sample,
    method: str,
    ratio: float,
    prompt: str,
    out: Any,
    row: int,
    batch_rows: int,
    batch_real: int,
) -> dict[str, Any]:
    """The JSONL row for `sample`, which was row `row` of the engine output `out`."""
    reply = out.texts[row]
    pred, correct = score(sample, reply)
    num_audio = int(np.asarray(out.num_audio)[row])
    mask = kept_audio_mask(out, row, num_audio) if ratio > 0 else None
    return {
        **_base_row(sample, method, ratio, prompt),
        "reply": reply,
        "prediction": pred,
        "reference": sample.reference if sample.is_asr else sample.answer,
        "correct": bool(correct),
        "num_audio": num_audio,
        "kept_audio": int(np.asarray(out.kept_audio)[row]),
        "kept_mask": None if mask is None else results.encode_mask(mask),
        "alpha": _opt_list(out.alpha, row),
        "spread": _opt_list(out.spread, row),
        "num_generated": int(np.asarray(out.num_generated)[row]),
        "timings": {
            "batch_prefill_s": round(float(out.prefill_s), 6),
            "batch_decode_s": round(float(out.decode_s), 6),
            "batch_rows": batch_rows,
            "batch_real": batch_real,
        },
        "error": None,
    }


def error_row(sample: Sample, method: str, ratio: float, prompt: str, error: str) -> dict[str, Any]:
    """The JSONL row of a sample that could not be run (e.g. unreadable audio)."""
    return {
        **_base_row(sample, method, ratio, prompt),
        "reply": None,
        "prediction": None,
        "reference": sample.reference if sample.is_asr else sample.answer,
        "correct": False,
        "num_audio": None,
        "kept_audio": None,
        "kept_mask": None,
        "alpha": None,
        "spread": None,
        "num_generated": 0,
        "timings": None,
        "error": error,
    }
