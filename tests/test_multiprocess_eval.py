"""Multi-process evaluation on JAX's multi-controller runtime: two real `hr-jax eval` processes on
this CPU (2 fake devices each, gloo collectives), launched with the documented variables. Their merged
rows equal a one-process run's; a killed peer is named by the survivor, which ends in bounded time
with its rows and summary kept, and a rerun completes the run without duplicates; launch faults (a
taken port, a peer that never starts, a missing variable) end with a message naming them.

Every subprocess is bounded by a timeout and killed (only the ones started here) if it outlives it."""

from __future__ import annotations

import json
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import subprocess_env

from hr_jax.eval.report import load_rows
from hr_jax.testing.eval_data import write_audiomarathon_fixture

ROOT = Path(__file__).resolve().parents[1]
CACHE_VARS = ("JAX_PLATFORMS", "JAX_COMPILATION_CACHE_DIR", "JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS",
              "JAX_COMPILATION_CACHE_MAX_SIZE")  # fmt: skip
TIMEOUTS = {"HR_JAX_INIT_TIMEOUT": "60", "HR_JAX_HEARTBEAT_TIMEOUT": "5", "HR_JAX_SHUTDOWN_TIMEOUT": "10"}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _env(devices: int, **extra: str) -> dict[str, str]:
    # no stray JAX_* cluster settings, but the session's compilation cache (tests/conftest.py)
    env = {k: v for k, v in subprocess_env(devices).items() if not k.startswith("JAX_") or k in CACHE_VARS}
    env.update(TIMEOUTS)
    env.update(extra)
    return env


def _eval_args(ckpt: str, data: str, out: Path) -> list[str]:
    return [sys.executable, "-m", "hr_jax.cli", "eval", "--ckpt", ckpt, "--data-dir", data,
            "--benchmark", "audiomarathon", "--tasks", "gtzan", "--methods", "vanilla,frame",
            "--ratios", "0.5", "--out", str(out), "--batch-size", "2", "--max-new-tokens", "3",
            "--no-progress"]  # fmt: skip


def _launch(args: list[str], n: int, port: int, ids=None) -> list[subprocess.Popen]:
    procs = []
    for i in ids if ids is not None else range(n):
        env = _env(
            2, JAX_COORDINATOR_ADDRESS=f"127.0.0.1:{port}", JAX_NUM_PROCESSES=str(n), JAX_PROCESS_ID=str(i)
        )
        procs.append(subprocess.Popen(args, env=env, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                      text=True))  # fmt: skip
    return procs


def _wait(procs: list[subprocess.Popen], timeout: float) -> list[tuple[int, str]]:
    """(exit code, stderr) of each process; any still running after `timeout` is killed (test fails)."""
    deadline, out = time.monotonic() + timeout, []
    for p in procs:
        try:
            _, err = p.communicate(timeout=max(deadline - time.monotonic(), 1))
        except subprocess.TimeoutExpired:
            for q in procs:
                q.kill()
            pytest.fail(f"a process outlived {timeout} s")
        out.append((p.returncode, err))
    return out


def _predictions(run_dir: Path) -> dict:
    rows = load_rows(str(run_dir))
    return {
        (k, i): (r["prediction"], r["reply"], r["kept_audio"])
        for k, by_id in rows.items()
        for i, r in by_id.items()
    }


def _row_ids(run_dir: Path) -> list[tuple[str, str]]:
    """Every (file, id) written anywhere under the run, duplicates kept."""
    out = []
    for path in sorted(run_dir.rglob("*.jsonl")):
        out += [(path.name, json.loads(line)["id"]) for line in path.read_text().splitlines() if line.strip()]
    return out


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> str:
    return write_audiomarathon_fixture(str(tmp_path_factory.mktemp("am")), tasks=("gtzan",), n=8)


@pytest.fixture(scope="module")
def one_process(tiny_ckpt, data, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("one") / "run"
    r = subprocess.run(_eval_args(tiny_ckpt[1], data, out), env=_env(2), cwd=ROOT, capture_output=True,
                       text=True, timeout=600)  # fmt: skip
    assert r.returncode == 0, r.stderr[-3000:]
    return out


def test_two_processes_write_their_shares_and_merge_to_the_one_process_rows(
    tiny_ckpt, data, one_process, tmp_path
):
    out = tmp_path / "run"
    results = _wait(_launch(_eval_args(tiny_ckpt[1], data, out), 2, _free_port()), timeout=600)
    assert [code for code, _ in results] == [0, 0], results[0][1][-3000:] + results[1][1][-3000:]
    assert (out / "process_0" / "run_summary.json").is_file() and (
        out / "process_1" / "run_summary.json"
    ).is_file()
    ids = _row_ids(out)
    assert len(ids) == len(set(ids)) == 2 * 8  # two methods, every sample once
    assert _predictions(out) == _predictions(one_process)


def test_a_killed_peer_is_named_and_a_rerun_completes_without_duplicates(
    tiny_ckpt, data, one_process, tmp_path
):
    out, args, port = tmp_path / "run", _eval_args(tiny_ckpt[1], data, tmp_path / "run"), _free_port()
    procs = _launch(args, 2, port)
    victim_rows = out / "process_1" / "gtzan"
    deadline = time.monotonic() + 300
    while not any(p.stat().st_size for p in victim_rows.glob("*.jsonl")) if victim_rows.is_dir() else True:
        assert time.monotonic() < deadline and procs[1].poll() is None, "process 1 never wrote a row"
        time.sleep(0.2)
    procs[1].send_signal(signal.SIGKILL)
    killed_at = time.monotonic()
    (code, err), _ = _wait(procs, timeout=300)
    assert code == 1 and "lost process 1" in err, err[-3000:]
    assert time.monotonic() - killed_at < 120
    summary = json.loads((out / "process_0" / "run_summary.json").read_text())
    assert summary["lost_processes"] == [1] and summary["status"] == "complete"

    rerun = _wait(_launch(args, 2, _free_port()), timeout=600)
    assert [c for c, _ in rerun] == [0, 0], rerun[1][1][-3000:]
    ids = _row_ids(out)
    assert len(ids) == len(set(ids)) == 2 * 8
    assert _predictions(out) == _predictions(one_process)


def test_a_taken_coordinator_port_is_named(tiny_ckpt, data, tmp_path):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        ((code, err),) = _wait(
            _launch(_eval_args(tiny_ckpt[1], data, tmp_path / "run"), 2, port, ids=[0]), 120
        )
    assert code == 2 and f"coordinator port {port}" in err and "already in use" in err


def test_a_peer_that_never_starts_is_named_within_the_init_timeout(tiny_ckpt, data, tmp_path):
    args = _eval_args(tiny_ckpt[1], data, tmp_path / "run")
    address = f"127.0.0.1:{_free_port()}"
    env = _env(2, JAX_COORDINATOR_ADDRESS=address, JAX_NUM_PROCESSES="2", JAX_PROCESS_ID="0")
    env["HR_JAX_INIT_TIMEOUT"] = "5"
    start = time.monotonic()
    r = subprocess.run(args, env=env, cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert r.returncode == 3 and "waiting for 2 processes" in r.stderr and "did every peer start?" in r.stderr
    assert time.monotonic() - start < 60


def test_a_coordinator_address_without_the_process_count_is_named(tiny_ckpt, data, tmp_path):
    env = _env(2, JAX_COORDINATOR_ADDRESS="127.0.0.1:1234", JAX_PROCESS_ID="0")
    args = _eval_args(tiny_ckpt[1], data, tmp_path / "run")
    r = subprocess.run(args, env=env, cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert r.returncode == 2 and "JAX_NUM_PROCESSES" in r.stderr and "Traceback" not in r.stderr
