"""Phi-4-Multimodal under tensor parallelism on 4 fake CPU devices (data 2 x model 2): the same logical
axes shard its decoder and Conformer, and every method keeps the single-device positions with the same
logits and greedy tokens. One subprocess (the fake devices exist only if XLA_FLAGS is set before JAX
starts) reports what the tests check."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import subprocess_env

pytest.importorskip("peft")
ROOT = Path(__file__).resolve().parents[1]
METHODS = ("headrouter", "frame", "fastv", "dart", "random")

SCRIPT = r"""
import json, sys
import numpy as np
import hr_jax
from hr_jax.checkpoint import convert
from hr_jax.testing.phi4 import build_tiny_phi4
sys.path.insert(0, sys.argv[2])
from conftest import waveform

root, methods = sys.argv[1], sys.argv[3].split(",")
ckpt = convert(build_tiny_phi4(root + "/hf", "native", seed=4), root + "/jax", dtype="float32")
base = hr_jax.load(ckpt).replace(stop_ids=())
batch = hr_jax.make_batch(base, [waveform(2.0, 1), waveform(3.1, 2)], ["What is said?", "Describe it."])
model = hr_jax.load(ckpt, mesh=hr_jax.make_mesh(model=2)).replace(stop_ids=())
rel = lambda a, b: float(np.abs(a - b).max() / np.abs(b).max())
out = {
    "q_w": list(model.params.layers.q_w.sharding.spec),
    "audio_up_w": list(model.params.audio.layers.ffn_in.up_w.sharding.spec),
    "forward_rel": rel(hr_jax.forward(model, batch), hr_jax.forward(base, batch)),
    "methods": {},
}
for m in methods:
    a, b = hr_jax.prefill(model, batch, 0.6, method=m), hr_jax.prefill(base, batch, 0.6, method=m)
    out["methods"][m] = [bool(np.array_equal(a.kept_positions, b.kept_positions)), rel(a.logits, b.logits)]
out["tokens_equal"] = (hr_jax.generate_batch(model, batch, 0.6, max_new_tokens=6).token_ids
                       == hr_jax.generate_batch(base, batch, 0.6, max_new_tokens=6).token_ids)
print("RESULT" + json.dumps(out))
"""


@pytest.fixture(scope="module")
def result(tmp_path_factory) -> dict:
    env = subprocess_env(4)
    args = [str(tmp_path_factory.mktemp("phi4_tp")), str(ROOT / "tests"), ",".join(METHODS)]
    proc = subprocess.run([sys.executable, "-c", SCRIPT, *args], env=env, cwd=ROOT, text=True,
                          capture_output=True, timeout=600)  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-4000:]
    return json.loads(next(x for x in proc.stdout.splitlines() if x.startswith("RESULT"))[len("RESULT") :])


def test_decoder_and_conformer_weights_are_sharded_over_the_model_axis(result):
    assert result["q_w"] == [None, None, "model"]
    assert result["audio_up_w"] == [None, None, "model"]


def test_unpruned_logits_match_one_device(result):
    assert result["forward_rel"] <= 1e-5


@pytest.mark.parametrize("method", METHODS)
def test_every_method_keeps_the_single_device_positions_with_the_same_logits(result, method):
    kept_equal, logits_rel = result["methods"][method]
    assert kept_equal and logits_rel <= 1e-5


def test_greedy_tokens_equal_one_device(result):
    assert result["tokens_equal"]
