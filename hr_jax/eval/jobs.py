"""What an evaluation run will do: its (method, ratio) pairs, jobs, batches and devices."""

from __future__ import annotations

import dataclasses
import math
import os
import zlib
from collections.abc import Iterable, Sequence
from typing import Any

from hr_jax.eval import results
from hr_jax.eval.samples import Sample
from hr_jax.pruning.methods import ALL_METHODS, VANILLA


@dataclasses.dataclass(frozen=True)
class Job:
    """One result file's worth of work."""

    task: str
    method: str
    ratio: float
    path: str
    max_new_tokens: int


def plan_methods(methods: Iterable[str], ratios: Iterable[float]) -> list[tuple[str, float]]:
    """(method, ratio) pairs to run, in order, vanilla once; any method at ratio 0 is vanilla."""
    ratios = [float(r) for r in ratios]
    pairs: list[tuple[str, float]] = []
    for m in methods:
        m = m.strip().lower().replace("-", "_")
        if not m:
            continue
        if m not in ALL_METHODS:
            raise ValueError(f"unknown method {m!r}; known: {', '.join(ALL_METHODS)}")
        if m == VANILLA:
            pairs.append((VANILLA, 0.0))
            continue
        for r in ratios:
            if not 0.0 <= r < 1.0:
                raise ValueError(f"pruning ratio must be in [0, 1), got {r}")
            pairs.append((VANILLA, 0.0) if r == 0.0 else (m, r))
    return list(dict.fromkeys(pairs))


def round_batch_size(batch_size: int, num_devices: int) -> int:
    """`batch_size` rounded up to a multiple of `num_devices` (at least one row per device)."""
    if batch_size < 1 or num_devices < 1:
        raise ValueError(f"batch size and device count must be positive ({batch_size}, {num_devices})")
    return int(math.ceil(batch_size / num_devices) * num_devices)


def bucket_order(samples: Sequence[Sample]) -> list[Sample]:
    """Samples sorted longest audio first (ties by id), for length-homogeneous batches."""
    return sorted(samples, key=lambda s: (-(s.duration_s or 0.0), s.id))


def pad_batch(items: Sequence[Any], batch_size: int) -> list[Any]:
    """`items` padded to `batch_size` by repeating the last one."""
    if not items:
        raise ValueError("cannot pad an empty batch")
    return list(items) + [items[-1]] * (batch_size - len(items))


def batch_seed(seed: int, ids: Sequence[str]) -> int:
    """A per-batch seed that depends only on the base seed and the batch's sample ids."""
    return (seed + zlib.crc32("\n".join(ids).encode("utf-8"))) % (2**31 - 1)


def jobs_summary(run_dir: str, jobs: Sequence[Job], expected: dict[str, int]) -> list[dict[str, Any]]:
    """How far each job's result file got (`run_summary.json`'s "files"): rows done, errors, tokens
    generated and per-row prefill and decode seconds; `expected`: samples per task."""
    files = []
    for job in jobs:
        rows = {r["id"]: r for r in results.read_results(job.path)}
        ok = [r for r in rows.values() if not r.get("error")]
        files.append(
            {
                "path": os.path.relpath(job.path, run_dir),
                "task": job.task,
                "method": job.method,
                "ratio": job.ratio,
                "expected": expected[job.task],
                "done": len(rows),
                "errors": len(rows) - len(ok),
                "generated_tokens": int(sum(r.get("num_generated") or 0 for r in ok)),
                "prefill_s": round(
                    sum(
                        r["timings"]["batch_prefill_s"] / r["timings"]["batch_rows"]
                        for r in ok
                        if r.get("timings")
                    ),
                    3,
                ),
                "decode_s": round(
                    sum(
                        r["timings"]["batch_decode_s"] / r["timings"]["batch_rows"]
                        for r in ok
                        if r.get("timings")
                    ),
                    3,
                ),
            }
        )
    return files
