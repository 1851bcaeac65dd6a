"""bench.scaling: one child process per point, each point's time and peak memory, and a watchdog that
records a point over the memory limit as not fitting instead of letting it take the machine."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from conftest import subprocess_env

ROOT = Path(__file__).resolve().parents[1]
ENV = subprocess_env(PYTHONPATH=str(ROOT))


def _scaling(tmp_path: Path, *args: str) -> tuple[subprocess.CompletedProcess, list[dict]]:
    out = tmp_path / "scaling.json"
    cmd = [sys.executable, "-m", "bench.scaling", "--preset", "tiny", "--json", str(out), *args]
    proc = subprocess.run(cmd, cwd=ROOT, env=ENV, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc, json.loads(out.read_text())


def test_each_point_records_its_prefill_time_and_its_own_peak_memory(tmp_path):
    png = tmp_path / "scaling.png"
    proc, records = _scaling(
        tmp_path, "--seconds", "2", "--runs", "hr_jax:0,transformers:0", "--repeats", "1", "--png", str(png)
    )
    assert [(r["impl"], r["status"]) for r in records] == [("hr_jax", "ok"), ("transformers", "ok")]
    for r in records:
        assert r["median_s"] > 0 and r["peak_rss_bytes"] >= r["rss_before_bytes"] > 0
        assert r["audio_tokens"] == 50
    assert png.stat().st_size > 0 and "peak RSS GB" in proc.stdout


def test_a_point_over_the_memory_limit_is_killed_and_longer_clips_are_not_run(tmp_path):
    _, records = _scaling(tmp_path, "--seconds", "2,4", "--runs", "hr_jax:0", "--mem-limit-gb", "0.05")
    assert records[0]["status"] == "over 0.05 GiB resident: killed"
    assert records[1]["status"] == "not run: a shorter clip did not fit"
