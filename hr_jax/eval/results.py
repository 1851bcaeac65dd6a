"""Result files: one JSONL per (task, method, ratio), one JSON object per sample.

Layout under a run directory::

    <run_dir>/<task>/<method>_r<ratio>.jsonl    e.g. gtzan/headrouter_r0.6.jsonl, gtzan/vanilla_r0.jsonl
    <run_dir>/run_summary.json                  what was asked and how far each file got
    <run_dir>/load_report.json                  data problems found while loading
    <run_dir>/process_<i>/...                   the same, per host, when launched on several hosts

Rows are appended a whole batch at a time and flushed, so a killed run leaves at most one
partial last line; :func:`read_results` with ``repair=True`` cuts it off (and drops any
corrupt line) before a run resumes. Each row holds: id, task, category, method, ratio,
audio_paths, duration_s, prompt, reply, prediction, reference, correct, num_audio, kept_audio,
kept_mask (hex of the packed bit mask over the audio tokens, None when nothing was pruned or
the engine gave no positions), alpha, spread, num_generated, timings (the batch's device-
synchronised prefill_s/decode_s, its rows including padding, its real rows), error (None, or
why the sample could not be run, e.g. unreadable audio; such rows are counted but not scored).
"""

from __future__ import annotations

import glob
import json
import math
import os
import re
import sys
from typing import Any

import numpy as np

_NAME = re.compile(r"(?P<method>.+)_r(?P<ratio>[0-9.]+)\.jsonl$")


def format_ratio(ratio: float) -> str:
    """Short, exact-enough text for a ratio: 0.3 -> "0.3", 0 -> "0", 0.125 -> "0.125"."""
    return f"{float(ratio):.4f}".rstrip("0").rstrip(".") or "0"


def result_path(run_dir: str, task: str, method: str, ratio: float) -> str:
    """Where the rows of (task, method, ratio) live."""
    return os.path.join(run_dir, task, f"{method}_r{format_ratio(ratio)}.jsonl")


def parse_result_name(path: str) -> tuple[str, str, float] | None:
    """(task, method, ratio) from a result file path, None for other files."""
    m = _NAME.match(os.path.basename(path))
    if not m:
        return None
    return os.path.basename(os.path.dirname(path)), m.group("method"), float(m.group("ratio"))


def result_files(run_dir: str) -> list[str]:
    """Every result file under `run_dir` (per-host subdirectories included), sorted."""
    paths = glob.glob(os.path.join(run_dir, "**", "*.jsonl"), recursive=True)
    return sorted(p for p in paths if parse_result_name(p) is not None)


def _clean(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _clean(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_clean(v) for v in value]
    if isinstance(value, np.ndarray):
        return _clean(value.tolist())
    if isinstance(value, (np.bool_, bool)):
        return bool(value)
    if isinstance(value, (np.integer, int)):
        return int(value)
    if isinstance(value, (np.floating, float)):
        v = float(value)
        return None if math.isnan(v) or math.isinf(v) else v
    return value


def dumps_row(row: dict[str, Any]) -> str:
    """One JSONL line (with the newline); NaN/inf become null, numpy scalars plain numbers."""
    return json.dumps(_clean(row), ensure_ascii=False, allow_nan=False) + "\n"


def append_rows(f, rows: list[dict[str, Any]]) -> None:
    """Append rows in one write, then flush and fsync so a kill loses at most this batch."""
    if not rows:
        return
    f.write("".join(dumps_row(r) for r in rows))
    f.flush()
    os.fsync(f.fileno())


def read_results(path: str, repair: bool = False) -> list[dict[str, Any]]:
    """Rows of a result file; a missing file has none.

    Args:
        path: the JSONL file.
        repair: rewrite the file without a partial last line or corrupt lines (a warning names
            them). Without it such lines are skipped, the file untouched.
    """
    if not os.path.exists(path):
        return []
    with open(path, "rb") as f:
        data = f.read()
    rows: list[dict[str, Any]] = []
    good: list[bytes] = []
    bad = 0
    lines = data.split(b"\n")
    for i, line in enumerate(lines):
        if not line.strip():
            continue
        complete = i < len(lines) - 1  # followed by a newline
        try:
            row = json.loads(line.decode("utf-8")) if complete else None
        except (json.JSONDecodeError, UnicodeDecodeError):
            row = None
        if isinstance(row, dict) and "id" in row:
            rows.append(row)
            good.append(line + b"\n")
        else:
            bad += 1
    if repair and bad:
        print(f"[hr_jax.eval] {path}: dropping {bad} partial or corrupt line(s)", file=sys.stderr)
        tmp = path + ".tmp"
        with open(tmp, "wb") as f:
            f.write(b"".join(good))
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    return rows


def encode_mask(mask: np.ndarray) -> str:
    """Hex of the packed bits of a boolean mask (length is stored separately as num_audio)."""
    return np.packbits(np.asarray(mask, dtype=bool)).tobytes().hex()


def decode_mask(hex_mask: str, length: int) -> np.ndarray:
    """Inverse of :func:`encode_mask`."""
    bits = np.unpackbits(np.frombuffer(bytes.fromhex(hex_mask), dtype=np.uint8))
    return bits[:length].astype(bool)


def write_if_changed(path: str, text: str) -> bool:
    """Write `text` atomically unless the file already holds exactly it; True if written."""
    if os.path.exists(path):
        with open(path, encoding="utf-8") as f:
            if f.read() == text:
                return False
    tmp = path + ".tmp"
    with open(tmp, "w", encoding="utf-8") as f:
        f.write(text)
    os.replace(tmp, path)
    return True
