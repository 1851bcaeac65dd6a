"""One evaluation per run directory: a live holder refuses a second run by name; a killed one's lock is
taken over."""

from __future__ import annotations

import json
import os
import select
import signal
import subprocess
import sys
import time

import pytest

from hr_jax.eval.run_lock import LOCK_FILE, RunDirLocked, RunLock


def test_a_second_run_on_a_held_directory_is_refused_naming_the_holder(tmp_path):
    with RunLock(str(tmp_path)):
        with pytest.raises(RunDirLocked, match=rf"in use by another hr-jax eval \(pid {os.getpid()} on "):
            with RunLock(str(tmp_path)):
                pass


def test_the_lock_is_free_again_after_a_run_ends(tmp_path):
    with RunLock(str(tmp_path)):
        pass
    with RunLock(str(tmp_path)):
        pass
    assert (tmp_path / LOCK_FILE).read_text() == ""


def test_a_lock_left_by_a_killed_run_is_taken_over(tmp_path, capsys):
    holder = subprocess.Popen(
        [sys.executable, "-c", "import sys, time; from hr_jax.eval.run_lock import RunLock; "
         "RunLock(sys.argv[1]).__enter__(); print('held', flush=True); time.sleep(60)", str(tmp_path)],
        stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    ready, _, _ = select.select([holder.stdout], [], [], 60)  # bounded: a child that never says so fails
    assert ready and holder.stdout.readline().strip() == "held"
    with pytest.raises(RunDirLocked, match=f"pid {holder.pid}"):
        RunLock(str(tmp_path)).__enter__()
    holder.send_signal(signal.SIGKILL)
    holder.wait(timeout=30)
    time.sleep(0.1)
    with RunLock(str(tmp_path)):
        assert json.loads((tmp_path / LOCK_FILE).read_text())["pid"] == os.getpid()
    assert f"taking over a stale lock (pid {holder.pid}" in capsys.readouterr().err


def test_hr_jax_eval_refuses_an_out_directory_another_run_holds(tmp_path, capsys):
    from hr_jax.eval.cli import eval_main
    from hr_jax.testing.eval_data import write_audiomarathon_release

    data = str(tmp_path / "am")
    write_audiomarathon_release(data)
    out = tmp_path / "run"
    out.mkdir()
    with RunLock(str(out)):
        args = ["--ckpt", str(tmp_path / "no_model"), "--data-dir", data, "--benchmark", "audiomarathon"]
        code = eval_main([*args, "--tasks", "gtzan", "--out", str(out), "--no-progress"])
    assert code == 2
    assert f"in use by another hr-jax eval (pid {os.getpid()}" in capsys.readouterr().err
