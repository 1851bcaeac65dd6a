"""The prepared GPU check runs end to end on the CPU with the tiny preset, so it is known to work before a
GPU is lent."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

from conftest import subprocess_env

REPO = Path(__file__).resolve().parents[1]


def test_gpu_check_script_runs_on_cpu_with_the_tiny_preset_and_writes_json_and_table(tmp_path):
    args = "--preset tiny --seconds 3 --parity-size tiny --parity-seconds 2 --quick"
    env = {**subprocess_env(), "OUT": str(tmp_path), "HR_JAX_GPU_CHECK_ARGS": args,
           "HR_JAX_GPU_CHECK_INSTALL": "0"}  # fmt: skip
    r = subprocess.run(
        ["bash", "bench/gpu_check.sh"], cwd=REPO, env=env, capture_output=True, text=True, timeout=600
    )
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    result = json.loads((tmp_path / "gpu_check.json").read_text())
    parity = result["parity"]
    assert parity["hr_jax_f32_vs_transformers_f32"] <= 1e-5
    assert 0 < parity["bf16_vs_f32"] < 0.1  # bfloat16 differs, but not wildly
    assert parity["attention"]["impls"] == ["streaming", "dense"] and parity["attention"]["rel_err"] <= 1e-2
    stages = {(r["impl"], r["stage"], r["ratio"]) for r in result["timing"]["records"] if "stage" in r}
    for impl in ("hr_jax", "transformers"):
        assert {(impl, "prefill", 0.0), (impl, "decode", 0.0)} <= stages
    assert ("hr_jax", "prefill", 0.6) in stages
    assert "| bf16 vs f32 logits" in (tmp_path / "gpu_check.md").read_text()


def test_gpu_environment_check_finds_nothing_missing_in_a_full_install_and_pins_the_installed_jax():
    import jax

    from bench.gpu_env import constraints, missing_requirements

    assert missing_requirements() == []
    assert f"jax=={jax.__version__}" in constraints()


def test_gpu_environment_check_names_a_requirement_that_is_not_installed(monkeypatch):
    import bench.gpu_env as gpu_env

    monkeypatch.setattr(gpu_env, "runtime_requirements", lambda: ["numpy>=1", "surely-not-installed>=1"])
    assert gpu_env.missing_requirements() == ["surely-not-installed>=1"]
