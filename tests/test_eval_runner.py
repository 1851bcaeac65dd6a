"""The evaluation runner: batching, padding, resume, byte-identical reruns, data parallelism.

Most tests inject a fake engine (`generate_fn`) whose replies depend only on each row's own audio
and prompt. The device tests run in subprocesses because
``XLA_FLAGS=--xla_force_host_platform_device_count=4`` must be set before JAX is imported.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import jax
import numpy as np
import pytest
from conftest import subprocess_env

from hr_jax.eval import results
from hr_jax.eval.jobs import bucket_order, pad_batch, plan_methods, round_batch_size
from hr_jax.eval.runner import run_eval
from hr_jax.eval.samples import Sample
from hr_jax.testing.eval_data import fake_generate_fn, write_audiomarathon_fixture

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
METHODS = ["vanilla", "headrouter", "frame"]
RATIOS = [0.5]


@pytest.fixture
def data_dir(tmp_path) -> str:
    return write_audiomarathon_fixture(str(tmp_path / "data"), tasks=("gtzan", "librispeech"), n=6)


def _run(data_dir, out, calls=None, **kw):
    kw.setdefault("batch_size", 4)
    kw.setdefault("progress", False)
    gen = kw.pop("generate_fn", None) or fake_generate_fn(calls)
    return run_eval(None, data_dir, "audiomarathon", None, METHODS, RATIOS, str(out), generate_fn=gen, **kw)


def _files(run_dir) -> dict[str, bytes]:
    out = {}
    for root, _dirs, names in os.walk(run_dir):
        for n in names:
            p = os.path.join(root, n)
            with open(p, "rb") as f:
                out[os.path.relpath(p, run_dir)] = f.read()
    return out


def _rows(run_dir) -> dict[str, list[dict]]:
    return {os.path.relpath(p, run_dir): results.read_results(p) for p in results.result_files(str(run_dir))}


def test_helpers():
    assert plan_methods(["vanilla", "frame", "headrouter"], [0.0, 0.3]) == [
        ("vanilla", 0.0),
        ("frame", 0.3),
        ("headrouter", 0.3),
    ]
    with pytest.raises(ValueError):
        plan_methods(["magic"], [0.3])
    assert [round_batch_size(b, 4) for b in (1, 4, 5, 8)] == [4, 4, 8, 8]
    mk = lambda i, d: Sample(i, "/x", "q", ("a", "b"), "A", "t", "acoustic", duration_s=d)  # noqa: E731
    assert [s.id for s in bucket_order([mk("b", 1.0), mk("a", 1.0), mk("c", 3.0)])] == ["c", "a", "b"]
    assert pad_batch([1, 2, 3], 5) == [1, 2, 3, 3, 3]


def test_rows_padding_and_bucketing(data_dir, tmp_path):
    calls: list[dict] = []
    summary = _run(data_dir, tmp_path / "run", calls, batch_size=3)  # 6 samples per task: 2 full batches
    assert summary["status"] == "complete"
    calls.clear()
    # 6 samples per task; batch 5 is 5 + 1 padded to 5 on one device, and one batch of 6 padded to 8 on
    # four (a call's rows are a multiple of the devices).
    summary = _run(data_dir, tmp_path / "run5", calls, batch_size=5)
    n_dev = jax.local_device_count()
    rows_per_call = -(-5 // n_dev) * n_dev
    real = [min(rows_per_call, 6 - start) for start in range(0, 6, rows_per_call)]  # real rows per call
    assert {c["batch"] for c in calls} == {rows_per_call}
    assert len(calls) == 2 * 3 * len(real)  # 2 tasks x 3 (method, ratio) x batches
    last = calls[len(real) - 1]["prompts"]
    pad = rows_per_call - real[-1]
    assert pad > 0 and last[real[-1] :] == [last[real[-1] - 1]] * pad  # the padding repeats the last real row
    files = _rows(tmp_path / "run5")
    assert sorted(files) == sorted(
        f"{t}/{m}.jsonl"
        for t in ("gtzan", "librispeech")
        for m in ("vanilla_r0", "headrouter_r0.5", "frame_r0.5")
    )
    for name, rows in files.items():
        ids = [r["id"] for r in rows]
        assert len(ids) == 6 and len(set(ids)) == 6, name  # padding never written
        durations = [r["duration_s"] for r in rows]
        assert durations == sorted(durations, reverse=True)  # length bucketing: longest first
        assert [r["timings"]["batch_real"] for r in rows] == [n for n in real for _ in range(n)]
    gtzan_hr = files["gtzan/headrouter_r0.5.jsonl"]
    r = gtzan_hr[0]
    assert r["reply"].startswith("The answer is ") and r["prediction"] in "ABCD"
    assert r["correct"] == (r["prediction"] == r["reference"])
    assert r["kept_audio"] == r["num_audio"] // 2 and len(r["alpha"]) == 3 and r["spread"] is not None
    assert results.decode_mask(r["kept_mask"], r["num_audio"]).sum() == r["kept_audio"]
    assert r["prompt"].endswith("Answer with the option's letter from the given choices directly.")
    van = files["gtzan/vanilla_r0.jsonl"][0]
    assert van["kept_mask"] is None and van["alpha"] is None and van["kept_audio"] == van["num_audio"]
    asr = files["librispeech/frame_r0.5.jsonl"][0]
    assert asr["reference"].startswith("HELLO WORLD NUMBER") and asr["prediction"].startswith("hello world")
    summary_file = json.loads((tmp_path / "run5" / "run_summary.json").read_text())
    assert summary_file == summary and summary["batch_size"] == rows_per_call
    assert all(f["done"] == f["expected"] == 6 for f in summary["files"])


def test_stop_resume_exactly_once_and_byte_identical_rerun(data_dir, tmp_path):
    full = _run(data_dir, tmp_path / "full")
    assert full["status"] == "complete"
    run = tmp_path / "run"
    s1 = _run(data_dir, run, stop_after=7)  # "killed" after 7 samples, mid-way through a job
    assert s1["status"] == "stopped"
    assert sum(len(v) for v in _rows(run).values()) == 7
    assert sum(f["done"] for f in s1["files"]) == 7
    s2 = _run(data_dir, run, stop_after=5)
    assert s2["status"] == "stopped" and sum(len(v) for v in _rows(run).values()) == 12
    s3 = _run(data_dir, run)
    assert s3["status"] == "complete"
    resumed, reference = _rows(run), _rows(tmp_path / "full")
    assert sorted(resumed) == sorted(reference)
    for name, rows in resumed.items():
        ids = [r["id"] for r in rows]
        assert len(ids) == len(set(ids)) == 6, name  # every sample exactly once
        ref = {r["id"]: r for r in reference[name]}
        for r in rows:
            for key in ("reply", "prediction", "correct", "kept_audio", "kept_mask", "alpha"):
                assert r[key] == ref[r["id"]][key], (name, r["id"], key)
    # a finished run is left untouched: byte-identical files, no engine call
    before = _files(run)
    calls: list[dict] = []
    s4 = _run(data_dir, run, calls)
    assert calls == [] and _files(run) == before and s4["status"] == "complete"


def test_partial_line_from_a_kill_is_repaired(data_dir, tmp_path):
    run = tmp_path / "run"
    _run(data_dir, run, stop_after=4)
    path = results.result_path(str(run), "librispeech", "vanilla", 0.0)
    with open(path, "ab") as f:
        f.write(b'{"id": "librispeech-0000')  # a write cut short
    _run(data_dir, run)
    rows = results.read_results(path)
    assert sorted(r["id"] for r in rows) == sorted(f"librispeech-{i:05d}" for i in range(6))
    with open(path, "rb") as f:
        data = f.read()
    assert data.endswith(b"\n") and all(json.loads(line) for line in data.splitlines())


def test_keyboard_interrupt_leaves_valid_files(data_dir, tmp_path):
    inner = fake_generate_fn()
    n = {"calls": 0}

    def flaky(*args, **kw):
        n["calls"] += 1
        if n["calls"] == 3:
            raise KeyboardInterrupt
        return inner(*args, **kw)

    run = tmp_path / "run"
    s = _run(data_dir, run, generate_fn=flaky)
    assert s["status"] == "interrupted"
    assert sum(len(v) for v in _rows(run).values()) == 6  # the first job (4 + 2); the third call was cut
    assert _run(data_dir, run)["status"] == "complete"
    assert all(len({r["id"] for r in rows}) == len(rows) == 6 for rows in _rows(run).values())


def test_engine_failure_is_retried_on_rerun(data_dir, tmp_path):
    inner = fake_generate_fn()
    n = {"calls": 0}

    def failing_once(*args, **kw):
        n["calls"] += 1
        if n["calls"] == 1:
            raise RuntimeError("device lost")
        return inner(*args, **kw)

    run = tmp_path / "run"
    s = _run(data_dir, run, generate_fn=failing_once)
    assert (
        s["status"] == "incomplete" and len(s["failures"]) == 1 and "device lost" in s["failures"][0]["error"]
    )
    assert len(_rows(run)["librispeech/vanilla_r0.jsonl"]) == 2  # the failed batch of 4 is not written
    assert _run(data_dir, run)["status"] == "complete"
    assert len(_rows(run)["librispeech/vanilla_r0.jsonl"]) == 6


def test_bad_audio_and_rejected_rows_become_error_rows(data_dir, tmp_path):
    os.remove(os.path.join(data_dir, "GTZAN", "audio", "gtzan_000.wav"))
    inner = fake_generate_fn()

    def picky(audios, prompts, **kw):
        if any("clip 1?" in p for p in prompts):
            raise ValueError("audio too short for this ratio")
        return inner(audios, prompts, **kw)

    run = tmp_path / "run"
    s = run_eval(None, data_dir, "audiomarathon", ["gtzan"], ["vanilla"], [], str(run), batch_size=4,
                 generate_fn=picky, progress=False, check_audio=False)  # fmt: skip
    assert s["status"] == "complete"
    rows = {r["id"]: r for r in _rows(run)["gtzan/vanilla_r0.jsonl"]}
    assert len(rows) == 6
    assert rows["gtzan-00000"]["error"].startswith("FileNotFoundError")
    assert rows["gtzan-00001"]["error"] == "ValueError: audio too short for this ratio"
    assert all(rows[f"gtzan-{i:05d}"]["error"] is None for i in range(2, 6))
    assert s["files"][0]["errors"] == 2


def test_engine_wide_value_error_is_a_failure_not_error_rows(data_dir, tmp_path):
    def broken(*args, **kw):
        raise ValueError("incompatible devices")

    run = tmp_path / "run"
    with pytest.raises(ValueError, match="incompatible devices"):
        _run(data_dir, run, generate_fn=broken)
    assert all(rows == [] for rows in _rows(run).values())  # nothing recorded as done
    summary = json.loads((run / "run_summary.json").read_text())
    assert summary["status"] == "failed" and len(summary["failures"]) == 3


def _subprocess(code: str, n_devices: int, *args: str, timeout: int = 600) -> dict:
    env = subprocess_env(n_devices)
    env["PYTHONPATH"] = ROOT + os.pathsep + env.get("PYTHONPATH", "")
    proc = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code), *args],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    assert proc.returncode == 0, proc.stderr[-4000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


FAKE_RUN = """
import json, sys
import jax
from hr_jax.eval.runner import run_eval
from hr_jax.testing.eval_data import fake_generate_fn
data, out, bs = sys.argv[1], sys.argv[2], int(sys.argv[3])
s = run_eval(None, data, "audiomarathon", None, ["vanilla", "headrouter"], [0.5], out, batch_size=bs,
             generate_fn=fake_generate_fn(use_mesh=True), progress=False)
print(json.dumps({"devices": len(jax.local_devices()), "batch_size": s["batch_size"], "status": s["status"]}))
"""


def _predictions(run_dir) -> dict[tuple[str, str], tuple]:
    out = {}
    for name, rows in _rows(run_dir).items():
        for r in rows:
            out[(name, r["id"])] = (r["prediction"], r["reply"], r["kept_audio"], r["kept_mask"])
    return out


def test_four_devices_match_one_device_fake_engine(data_dir, tmp_path):
    one = _subprocess(FAKE_RUN, 1, data_dir, str(tmp_path / "one"), "4")
    four = _subprocess(FAKE_RUN, 4, data_dir, str(tmp_path / "four"), "3")  # rounded up to 4
    assert (one["devices"], one["batch_size"]) == (1, 4)
    assert (four["devices"], four["batch_size"]) == (4, 4)
    assert one["status"] == four["status"] == "complete"
    p1, p4 = _predictions(tmp_path / "one"), _predictions(tmp_path / "four")
    assert len(p1) == 2 * 2 * 6 and p1 == p4


try:
    from hr_jax import generate_batch as _generate_batch  # noqa: F401

    HAVE_ENGINE = True
except ImportError:
    HAVE_ENGINE = False

REAL_RUN = """
import json, sys
import jax
from hr_jax.eval.cli import eval_main
ckpt, data, out = sys.argv[1:4]
code = eval_main(["--ckpt", ckpt, "--data-dir", data, "--benchmark", "audiomarathon", "--tasks", "gtzan",
                  "--methods", "vanilla,headrouter", "--ratios", "0.5", "--out", out,
                  "--batch-size", "4", "--max-new-tokens", "4", "--no-progress"])
print(json.dumps({"devices": len(jax.local_devices()), "code": code}))
"""


@pytest.mark.skipif(not HAVE_ENGINE, reason="hr_jax.generate_batch is not importable yet")
def test_four_devices_match_one_device_tiny_model(tiny_ckpt, tmp_path):
    data = write_audiomarathon_fixture(str(tmp_path / "data"), tasks=("gtzan",), n=4)  # one batch per method
    one = _subprocess(REAL_RUN, 1, tiny_ckpt[1], data, str(tmp_path / "one"))
    four = _subprocess(REAL_RUN, 4, tiny_ckpt[1], data, str(tmp_path / "four"))
    assert (one["devices"], four["devices"]) == (1, 4)
    assert one["code"] == four["code"] == 0
    p1, p4 = _predictions(tmp_path / "one"), _predictions(tmp_path / "four")
    assert len(p1) == 2 * 4
    assert {k: v[0] for k, v in p1.items()} == {k: v[0] for k, v in p4.items()}  # per-sample predictions
    assert p1 == p4  # and replies, kept counts and kept positions
    rows = _rows(tmp_path / "one")["gtzan/headrouter_r0.5.jsonl"]
    assert all(r["kept_audio"] == r["num_audio"] // 2 and r["kept_mask"] for r in rows)
    assert all(np.isclose(sum(r["alpha"]), 1.0) and r["reply"] is not None for r in rows)


def test_a_task_with_no_audio_at_all_makes_the_run_incomplete(tmp_path):
    import shutil

    from hr_jax.testing.eval_data import write_audiomarathon_release

    data = tmp_path / "am"
    write_audiomarathon_release(str(data))
    for task_dir in os.listdir(data):
        if task_dir not in ("race_audio", "SLUE"):
            shutil.rmtree(data / task_dir)
    shutil.rmtree(data / "race_audio" / "audio")
    summary = _run(str(data), tmp_path / "run")
    assert summary["status"] == "incomplete" and summary["failed_tasks"] == ["race"]
    assert summary["selection"] == "official"
    assert "slue" in summary["tasks"]


def test_benchmark_audio_longer_than_the_feature_extractor_takes_is_cut_as_the_reference_does(tmp_path):
    from convert.hf_to_jax import convert
    from hr_jax.eval.generate_fn import engine_generate_fn
    from hr_jax.model import load
    from hr_jax.testing.checkpoints import build_tiny_checkpoint

    hf = build_tiny_checkpoint(tmp_path / "hf", extra_tensors=False)
    pre = json.loads((hf / "preprocessor_config.json").read_text())
    (hf / "preprocessor_config.json").write_text(json.dumps(dict(pre, chunk_length=2)))  # a 2 s limit
    model = load(convert(hf, tmp_path / "jax", dtype="float32"))
    rng = np.random.default_rng(0)
    long_clip = (0.1 * rng.standard_normal(int(2.5 * 16000))).astype(np.float32)
    generate = engine_generate_fn(model)
    kw = {"ratio": 0.0, "method": "vanilla", "router": None, "max_new_tokens": 2, "mesh": None, "seed": 0}
    with pytest.warns(UserWarning, match="audio over 2 s cut"):
        cut = generate([long_clip], ["hi"], **kw)
    exact = generate([long_clip[: 2 * 16000]], ["hi"], **kw)
    assert cut.texts == exact.texts and list(cut.num_audio) == list(exact.num_audio) == [50]


def test_a_long_sweep_keeps_its_live_compiled_programs_bounded(tiny_model, tmp_path):
    """Each (method, ratio) pair compiles its own prefill and decode programs; the runner releases a
    pair's programs once every task is done with it, so the live executables stay at one pair's
    worth however long the sweep (XLA:CPU maps each one's code: an unbounded sweep once exhausted
    the kernel's map limit)."""
    import jax.extend

    from hr_jax.engine.core import decode_core, prefill_core
    from hr_jax.eval.generate_fn import engine_generate_fn

    data = write_audiomarathon_fixture(str(tmp_path / "data"), tasks=("gtzan", "librispeech"), n=2)
    backend = jax.extend.backend.get_backend()
    inner = engine_generate_fn(tiny_model)
    live: list[int] = []

    def generate(*args, **kw):
        out = inner(*args, **kw)
        live.append(len(backend.live_executables()))
        return out

    generate.release = inner.release  # type: ignore[attr-defined]
    methods, ratios = ["frame", "random"], [0.3, 0.6]  # four pairs; the clips have 10 audio tokens
    run_eval(None, data, "audiomarathon", None, methods, ratios, str(tmp_path / "run"),
             generate_fn=generate, batch_size=2, progress=False, max_new_tokens=2)  # fmt: skip
    calls_per_pair = 2  # two tasks, one batch each
    assert len(live) == calls_per_pair * len(methods) * len(ratios)  # vanilla only when listed
    first_pair = max(live[:calls_per_pair])
    assert max(live) <= first_pair + 2, live  # no growth with the number of pairs
    assert prefill_core._cache_size() == 0 and decode_core._cache_size() == 0  # released after the last pair
