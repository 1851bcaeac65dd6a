"""Smoke test of the benchmark CLI's JSON contract, and the FLOP model against a hand count."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import subprocess_env

from bench import flops as F
from bench.presets import preset_config

ROOT = Path(__file__).resolve().parents[1]
CONTRACT = ("impl", "preset", "seconds", "ratio", "method", "stage", "median_s", "tokens_per_s")


def test_bench_run_writes_contract_records(tmp_path, capsys):
    from bench.run import main

    out = tmp_path / "bench.json"
    main(["--preset", "tiny", "--seconds", "2", "--ratios", "0,0.6", "--repeats", "1", "--decode-tokens", "2",
          "--json", str(out)])  # fmt: skip
    records = json.loads(out.read_text())
    assert isinstance(records, list) and records
    for r in records:
        for k in CONTRACT:
            assert k in r, (k, r)
        assert r["impl"] in ("hr_jax", "transformers")
        assert r["stage"] in ("encoder", "prefill", "ttft", "ttft_split", "decode")
        assert r["preset"] == "tiny" and r["seconds"] == 2.0
        assert r["median_s"] > 0
        if r["stage"] == "decode":
            assert r["tokens_per_s"] > 0
    seen = {(r["impl"], r["ratio"], r["stage"]) for r in records}
    for stage in ("encoder", "prefill", "ttft", "decode"):
        assert ("hr_jax", 0.0, stage) in seen and ("hr_jax", 0.6, stage) in seen
        assert ("transformers", 0.0, stage) in seen
    assert {(r["ratio"], r["impl"]) for r in records if r["stage"] == "ttft_split"} == {
        (0.0, "hr_jax"),
        (0.6, "hr_jax"),
    }
    assert {r["method"] for r in records if r["ratio"] == 0.6} == {"headrouter"}
    assert {r["batch"] for r in records if r["stage"] == "decode"} == {1, 4}
    assert "median ms" in capsys.readouterr().out  # the table


def test_bench_run_splits_time_to_first_token_into_its_parts(tmp_path):
    out = tmp_path / "split.json"
    env = subprocess_env(PYTHONPATH=str(ROOT))
    cmd = [sys.executable, "-m", "bench.run", "--preset", "tiny", "--seconds", "2", "--ratios", "0.6",
           "--impl", "hr_jax", "--stages", "prefill,split", "--repeats", "3", "--no-floor", "--no-routing",
           "--threads", "1", "--json", str(out)]  # fmt: skip
    proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    records = json.loads(out.read_text())
    (split,) = [r for r in records if r["stage"] == "ttft_split"]
    parts = ("features", "host", "transfer", "encoder", "prefill", "first_token")
    assert tuple(split["parts_s"]) == parts and all(split["parts_s"][p] > 0 for p in parts)
    assert split["unaccounted_s"] == pytest.approx(split["median_s"] - sum(split["parts_s"].values()))
    assert split["features_max_length_s"] > split["parts_s"]["features"]  # 300 s of padding costs
    (pruned,) = [r for r in records if r["stage"] == "prefill"]
    assert len(pruned["speedup_rounds"]) == 3 and pruned["speedup_min"] <= pruned["speedup_median"]
    assert pruned["machine"]["cpus_pinned"] == 1
    assert "Time to first token from waveforms" in proc.stdout


def test_flop_model_matches_hand_count_for_tiny_config():
    cfg = preset_config("tiny")
    t, a = cfg.text, cfg.audio
    assert (t.hidden_size, t.intermediate_size, t.num_hidden_layers, t.vocab_size) == (64, 128, 3, 512)
    assert (t.num_attention_heads, t.num_key_value_heads, t.head_dim) == (4, 2, 16)
    assert (a.num_mel_bins, a.d_model, a.encoder_ffn_dim, a.encoder_layers, a.n_window, a.output_dim) == (
        128,
        32,
        64,
        2,
        10,
        64,
    )

    # Decoder layer over L = 100 tokens (dense attention), by matmul:
    L = 100
    q = 2 * L * 64 * 64  # q_proj [64 -> 4*16]
    kv = 2 * (2 * L * 64 * 32)  # k_proj, v_proj [64 -> 2*16]
    o = 2 * L * 64 * 64
    mlp = 3 * (2 * L * 64 * 128)  # gate, up, down
    attn = 2 * (2 * L * L * 16 * 4)  # QK^T and PV for 4 query heads
    layer = q + kv + o + mlp + attn
    assert layer == 9_932_800
    lm_head = 2 * 64 * 512
    assert F.prefill_cost(t, L).flops == 3 * layer + lm_head

    # Pruned at M = 2 to L' = 40, HeadRouter probe with 5 text and 60 audio tokens.
    Lp = 40
    layer_p = (
        2 * Lp * 64 * 64
        + 2 * (2 * Lp * 64 * 32)
        + 2 * Lp * 64 * 64
        + 3 * (2 * Lp * 64 * 128)
        + 4 * Lp * Lp * 64
    )
    probe = 2 * 5 * 64 * 64 + 2 * 60 * 64 * 32 + 2 * 5 * 60 * 16 * 4 + 8 * 5 * 60 * 4
    assert probe == 334_720
    got = F.prefill_cost(t, L, kept=Lp, prune_layer=2, n_text=5, n_audio=60, probe=True).flops
    assert got == 2 * layer + layer_p + probe + lm_head == 23_624_576
    assert F.predicted_speedup(t, L, Lp, 2, 5, 60, probe=True) == pytest.approx((3 * layer + lm_head) / got)

    # Audio encoder over 50 mel frames: windows of 20 frames -> conv2 frames 10, 10, 5 (t = 25).
    conv1 = 2 * 50 * 3 * 128 * 32
    conv2 = 2 * 25 * 3 * 32 * 32
    per_layer = 25 * (4 * 2 * 32 * 32 + 2 * 2 * 32 * 64) + 4 * 32 * (10 * 10 + 10 * 10 + 5 * 5)
    proj = 2 * 12 * 32 * 64  # 25 frames -> 12 pooled tokens
    assert F.encoder_cost(cfg, 50).flops == conv1 + conv2 + 2 * per_layer + proj == 2_308_352

    # Decode step, batch 2, caches of 30 (layers < 2) and 20 (layer 2) slots.
    per_layer_params = 64 * 128 + 128 + 64 * 64 + 3 * 64 * 128 + 2 * 64
    weights = 3 * per_layer_params + 64 + 64 * 512
    slots = 2 * 30 + 1 * 20
    cost = F.decode_cost(t, batch=2, cache_lower=30, cache_upper=20, prune_layer=2, dtype_bytes=4)
    assert cost.flops == 2 * (2 * weights + 4 * slots * 4 * 16)
    assert cost.bytes == 4 * weights + 2 * (2 * slots * 2 * 16 * 4)


def test_bench_shapes_follow_the_token_rate():
    sh = F.bench_shapes(30)
    assert sh.frames == 3000 and sh.n_audio == 750
    assert sh.seq == F.TEXT_BEFORE_AUDIO + 2 + 750 + F.TEXT_AFTER_AUDIO
    assert sh.kept(0.6) == sh.seq - 750 + 300
