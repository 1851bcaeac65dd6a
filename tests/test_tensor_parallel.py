"""Tensor parallelism from the declared logical axes, on 4 fake CPU devices: weights restored straight
into their shardings, KV caches over KV heads and rows, and every pruning method giving exactly the
single-device kept positions, logits within 1e-5 and equal greedy tokens, on a checkpoint whose heads
divide the model axis and on one whose heads do not (those weights are replicated, and said so).

The devices exist only if `XLA_FLAGS` is set before JAX starts, so the work runs in one subprocess per
checkpoint, which reports what the tests then check."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import subprocess_env

ROOT = Path(__file__).resolve().parents[1]
SHAPES = {  # text heads / KV heads; the tiny audio encoder has 4 heads
    "divides": {"num_attention_heads": 8, "num_key_value_heads": 4},
    "does_not_divide": {"num_attention_heads": 6, "num_key_value_heads": 2},
}
METHODS = {
    "divides": ("headrouter", "frame", "fastv", "dart", "random"),
    "does_not_divide": ("headrouter", "fastv"),
}
# Model-parallel ways whose methods run (shards and caches are checked at both).
RUN_AT = {"divides": "2,4", "does_not_divide": "4"}

SCRIPT = r"""
import json, sys, warnings
import numpy as np
import jax
import hr_jax
from hr_jax.checkpoint import convert
from hr_jax.engine import PruningSpec, run_prefill
from hr_jax.testing.checkpoints import build_random_checkpoint
sys.path.insert(0, sys.argv[4])
from conftest import waveform

root, shape, methods = sys.argv[1], json.loads(sys.argv[2]), sys.argv[3].split(",")
over = {**shape, "head_dim": 8, "hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 3}
build_random_checkpoint(root + "/hf", over, seed=5)
ckpt = convert(root + "/hf", root + "/jax", dtype="float32")
base = hr_jax.load(ckpt)
batch = hr_jax.make_batch(base, [waveform(4.0, 1), waveform(6.0, 2)], ["What is said?", "Describe it."])
one = hr_jax.make_batch(base, [waveform(5.0, 3)], ["What is said?"])
ref = {m: hr_jax.prefill(base, batch, 0.6, method=m) for m in methods}
ref_tokens = hr_jax.generate_batch(base, batch, 0.6, max_new_tokens=6).token_ids
ref_one = hr_jax.generate_batch(base, one, 0.6, max_new_tokens=6).token_ids

ref_fwd = hr_jax.forward(base, batch)
def leaves(p):
    return (("q_w", p.layers.q_w), ("k_w", p.layers.k_w), ("o_w", p.layers.o_w),
            ("down_w", p.layers.down_w), ("embed", p.embed), ("audio_fc1_w", p.audio.layers.fc1_w),
            ("audio_q_w", p.audio.layers.q_w), ("norm", p.norm))


out = {}
for mp in (2, 4):
    mesh = hr_jax.make_mesh(model=mp)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        model = hr_jax.load(ckpt, mesh=mesh)
    rel = lambda a, b: float(np.abs(a - b).max() / np.abs(b).max())
    r = {
        "mesh": {k: int(v) for k, v in mesh.shape.items()},
        "replicated_warnings": [str(w.message) for w in caught if "replicated" in str(w.message)],
        "shards": {name: [list(x.sharding.spec), list(x.addressable_shards[0].data.shape), list(x.shape)]
                   for name, x in leaves(model.params)},
        "forward_rel": rel(hr_jax.forward(model, batch), ref_fwd),
        "methods": {},
    }
    state, _ = run_prefill(model, batch, PruningSpec(0.6, "headrouter"), cache_extra=64)
    spec = lambda x: list(x.sharding.spec) + [None] * (x.ndim - len(x.sharding.spec))
    r["cache_spec"] = [spec(state.cache.lower.k), spec(state.cache.upper.k)]
    if str(mp) not in sys.argv[5].split(","):
        out[str(mp)] = r
        continue
    for m in methods:
        p = hr_jax.prefill(model, batch, 0.6, method=m)
        r["methods"][m] = {
            "kept_equal": bool(np.array_equal(p.kept_positions, ref[m].kept_positions)),
            "logits_rel": rel(p.logits, ref[m].logits),
            "alpha_rel": None if p.alpha is None else rel(p.alpha, ref[m].alpha),
        }
    r["tokens_equal"] = hr_jax.generate_batch(model, batch, 0.6, max_new_tokens=6).token_ids == ref_tokens
    if mp == 2:
        one_row = hr_jax.generate_batch(model, one, 0.6, max_new_tokens=6)
        r["one_row_tokens_equal"] = one_row.token_ids == ref_one
    out[str(mp)] = r
print("RESULT" + json.dumps(out))
"""


def _start(name: str, tmp_path_factory) -> subprocess.Popen:
    env = subprocess_env(4)
    root = tmp_path_factory.mktemp(name)
    args = [str(root), json.dumps(SHAPES[name]), ",".join(METHODS[name]), str(ROOT / "tests")]
    args.append(RUN_AT[name])
    return subprocess.Popen([sys.executable, "-c", SCRIPT, *args], env=env, cwd=ROOT, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)  # fmt: skip


@pytest.fixture(scope="module")
def results(tmp_path_factory) -> dict[str, dict]:
    """Both checkpoints' reports; the two subprocesses run side by side (each mostly compiles, on one
    core), which halves the wait."""
    procs = {name: _start(name, tmp_path_factory) for name in SHAPES}
    out = {}
    try:
        for name, proc in procs.items():
            stdout, stderr = proc.communicate(timeout=600)
            assert proc.returncode == 0, stderr[-4000:]
            line = next(x for x in stdout.splitlines() if x.startswith("RESULT"))
            out[name] = json.loads(line[len("RESULT") :])
    finally:
        for proc in procs.values():
            if proc.poll() is None:
                proc.kill()
    return out


@pytest.fixture(scope="module")
def divides(results) -> dict:
    return results["divides"]


@pytest.fixture(scope="module")
def does_not_divide(results) -> dict:
    return results["does_not_divide"]


def test_make_mesh_splits_the_local_devices_into_data_and_model_axes(divides):
    assert divides["2"]["mesh"] == {"data": 2, "model": 2}
    assert divides["4"]["mesh"] == {"data": 1, "model": 4}


def test_weights_are_restored_straight_into_their_shards(divides):
    shards = divides["4"]["shards"]
    spec, local, full = shards["q_w"]  # [layers, D, Hq*hd]: column parallel
    assert spec == [None, None, "model"] and local == [full[0], full[1], full[2] // 4]
    spec, local, full = shards["o_w"]  # [layers, Hq*hd, D]: row parallel
    assert spec == [None, "model", None] and local == [full[0], full[1] // 4, full[2]]
    assert shards["down_w"][0] == [None, "model", None]
    assert shards["embed"][0] == ["model", None] and shards["embed"][1][0] == shards["embed"][2][0] // 4
    assert shards["audio_fc1_w"][0] == [None, None, "model"] and shards["audio_q_w"][0] == [
        None,
        None,
        "model",
    ]
    assert shards["norm"][0] == [None] and shards["norm"][1] == shards["norm"][2]


def test_heads_the_model_axis_does_not_divide_are_replicated_and_reported_once(does_not_divide):
    four = does_not_divide["4"]
    assert four["shards"]["k_w"][0] == [None, None, None] and four["shards"]["q_w"][0] == [None, None, None]
    assert four["shards"]["down_w"][0] == [None, "model", None]  # the MLP still divides
    warned = four["replicated_warnings"]
    assert any(w.startswith("kv_heads: 2") for w in warned) and any(
        w.startswith("q_heads: 6") for w in warned
    )
    assert len(warned) == len(set(warned))
    assert does_not_divide["2"]["shards"]["k_w"][0] == [None, None, "model"]  # 2 KV heads on 2 ways
    assert does_not_divide["2"]["replicated_warnings"] == []


def test_kv_caches_are_sharded_over_rows_and_kv_heads(divides, does_not_divide):
    assert divides["2"]["cache_spec"] == [[None, "data", "model", None, None]] * 2
    assert does_not_divide["2"]["cache_spec"] == [[None, "data", "model", None, None]] * 2  # 2 heads, 2 ways
    assert does_not_divide["4"]["cache_spec"] == [[None] * 5] * 2  # data 1, and 2 KV heads on 4 ways


CASES = [("divides", "2"), ("divides", "4"), ("does_not_divide", "4")]


@pytest.mark.parametrize(("shape", "mp"), CASES)
def test_unpruned_logits_match_one_device(request, shape, mp):
    assert request.getfixturevalue(shape)[mp]["forward_rel"] <= 1e-5


@pytest.mark.parametrize(("shape", "mp"), CASES)
def test_every_method_keeps_the_single_device_positions_with_the_same_logits(request, shape, mp):
    methods = request.getfixturevalue(shape)[mp]["methods"]
    assert set(methods) == set(METHODS[shape])
    for method, r in methods.items():
        assert r["kept_equal"], method
        assert r["logits_rel"] <= 1e-5, (method, r["logits_rel"])
        assert r["alpha_rel"] is None or r["alpha_rel"] <= 1e-5, method


@pytest.mark.parametrize(("shape", "mp"), CASES)
def test_greedy_tokens_equal_one_device(request, shape, mp):
    assert request.getfixturevalue(shape)[mp]["tokens_equal"]


def test_a_batch_the_data_axis_does_not_divide_is_padded_internally(divides):
    assert divides["2"]["one_row_tokens_equal"]  # one clip on data = 2
