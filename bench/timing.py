"""Timing helpers: warm-up + repeats with synchronised timers, summary statistics, peak memory."""

from __future__ import annotations

import json
import os
import threading
import time
from collections.abc import Callable
from typing import Any

import numpy as np

_PAGE = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096


def rss_bytes() -> int:
    """Resident set size of this process (Linux /proc; 0 elsewhere)."""
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * _PAGE
    except OSError:
        return 0


class PeakRSS:
    """Samples the process RSS every `interval` seconds in a thread; `.delta` is the peak above the
    RSS at entry (host memory: on CPU this is the working set of the timed call, approximately)."""

    def __init__(self, interval: float = 0.002):
        self.interval = interval
        self.base = self.peak = 0
        self._stop = threading.Event()

    def __enter__(self) -> PeakRSS:
        self.base = self.peak = rss_bytes()
        self._stop.clear()
        self._t = threading.Thread(target=self._run, daemon=True)
        self._t.start()
        return self

    def _run(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, rss_bytes())
            time.sleep(self.interval)

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._t.join()
        self.peak = max(self.peak, rss_bytes())

    @property
    def delta(self) -> int:
        return max(0, self.peak - self.base)


def measure(
    run: Callable[[Any], Any],
    setup: Callable[[], Any] | None = None,
    repeats: int = 5,
    warmup: int = 1,
) -> dict[str, Any]:
    """Times `run(setup())` (`run` must synchronise, e.g. `jax.block_until_ready` / `.tolist()`).

    The first warm-up call is timed separately (`first_call_s`: for jitted code it includes the
    compilation). `setup` runs untimed before every call. Returns the times and their statistics,
    the process CPU time per call, and the peak RSS growth seen during the timed calls.
    """
    first = None
    for i in range(max(warmup, 0)):
        arg = setup() if setup else None
        t0 = time.perf_counter()
        run(arg)
        if i == 0:
            first = time.perf_counter() - t0
    times, cpu, peak = [], [], 0
    for _ in range(repeats):
        arg = setup() if setup else None
        with PeakRSS() as mem:
            c0 = time.process_time()
            t0 = time.perf_counter()
            run(arg)
            dt = time.perf_counter() - t0
            cpu.append(time.process_time() - c0)
        times.append(dt)
        peak = max(peak, mem.delta)
    out = summarize(times)
    # Process CPU time (all threads) of each timed call: less sensitive than wall time to other
    # processes on a shared machine, so useful for before/after comparisons under load.
    out["cpu_s_median"] = float(np.median(cpu))
    out["first_call_s"] = first
    out["peak_rss_delta_bytes"] = peak
    return out


def summarize(times: list[float]) -> dict[str, Any]:
    t = np.asarray(times, float)
    q1, med, q3 = np.percentile(t, [25, 50, 75])
    return {
        "median_s": float(med),
        "iqr_s": float(q3 - q1),
        "min_s": float(t.min()),
        "max_s": float(t.max()),
        "repeats": int(t.size),
        "times_s": [float(x) for x in t],
    }


def load_info() -> dict[str, Any]:
    """Machine load when a record was taken: 1-minute load average and whether the shared training
    job (`hr_jax.training`) was running."""
    import subprocess

    try:
        training = subprocess.run(
            ["pgrep", "-f", "hr_jax.training"], capture_output=True, text=True
        ).stdout.split()
    except OSError:
        training = []
    training = [p for p in training if int(p) != os.getpid()]
    return {"loadavg_1m": round(os.getloadavg()[0], 2), "training_running": bool(training)}


def write_json(path: str | None, result: Any) -> None:
    """Writes a benchmark's result as JSON to `path` (nothing when None)."""
    if path:
        with open(path, "w") as fh:
            json.dump(result, fh, indent=1)
