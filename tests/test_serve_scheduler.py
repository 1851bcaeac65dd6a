"""The server's scheduler in-process (no HTTP): a request that fails inside the engine fails alone; Phi-4
replies keep LongRoPE's semantics per request."""

from __future__ import annotations

import dataclasses
import time

import numpy as np
import pytest
from conftest import waveform

import hr_jax
from hr_jax.engine import PruningSpec, SamplingSpec, run_prefill
from hr_jax.serving import scheduler as scheduler_module
from hr_jax.serving.jobs import Failed, Finished, Job, held_back, stack_rows
from hr_jax.serving.metrics import ServerMetrics
from hr_jax.serving.scheduler import Scheduler
from hr_jax.testing.phi4 import TINY_LONGROPE_SWITCH


def _job(name: str, batch: hr_jax.Batch, events: list, max_tokens: int = 8, timeout: float = 120.0) -> Job:
    return Job(id=name, batch=batch, pruning=PruningSpec(), sampling=SamplingSpec(max_tokens, 0.0), stop=(),
               emit=events.append, ignore_eos=True, deadline=time.monotonic() + timeout)  # fmt: skip


def _run(scheduler: Scheduler, jobs: list[Job], events: dict[str, list]) -> None:
    """Runs `jobs` to their last event (bounded)."""
    scheduler.start()
    try:
        for job in jobs:
            scheduler.submit(job)
        deadline = time.monotonic() + 120
        while not all(e and isinstance(e[-1], (Failed, Finished)) for e in events.values()):
            assert time.monotonic() < deadline, events
            time.sleep(0.05)
    finally:
        scheduler.stop()


@pytest.fixture(scope="module")
def model():
    return hr_jax.load("demo")


def test_a_request_that_fails_in_the_engine_fails_alone_with_a_500_naming_it(model):
    good = hr_jax.make_batch(model, [waveform(4.0, 1)], ["What is heard?"])
    # audio tokens without features: the engine's own check refuses it inside the prefill
    bad = dataclasses.replace(good, feature_attention_mask=np.zeros_like(good.feature_attention_mask))
    events: dict[str, list] = {"bad": [], "good": []}
    scheduler = Scheduler(model, ServerMetrics(2), max_batch=2, decode_steps=2)
    # one bucket: the two are prefilled together, then, when that fails, each alone
    _run(scheduler, [_job("bad", bad, events["bad"]), _job("good", good, events["good"])], events)
    failure = events["bad"][-1]
    assert (
        isinstance(failure, Failed) and failure.error.status == 500 and "request bad" in failure.error.message
    )
    assert isinstance(events["good"][-1], Finished)


def test_a_request_past_its_timeout_fails_with_a_504_and_frees_its_slot(model):
    batch = hr_jax.make_batch(model, [waveform(4.0, 1)], ["What is heard?"])
    events: dict[str, list] = {"slow": []}
    scheduler = Scheduler(model, ServerMetrics(1), max_batch=1, decode_steps=2)
    _run(scheduler, [_job("slow", batch, events["slow"], max_tokens=5000, timeout=1.0)], events)
    failure = events["slow"][-1]
    assert (
        isinstance(failure, Failed) and failure.error.status == 504 and "timed out" in failure.error.message
    )
    assert scheduler.load() == (0, 0)


def test_rows_of_different_lengths_stack_left_padded_with_their_features_right_padded():
    a = hr_jax.Batch(np.ones((1, 3), np.int32), np.ones((1, 3), np.int32), np.ones((1, 2, 4), np.float32),
                     np.ones((1, 4), np.int32))  # fmt: skip
    b = hr_jax.Batch(np.full((1, 5), 2, np.int32), np.ones((1, 5), np.int32), np.ones((1, 2, 6), np.float32),
                     np.ones((1, 6), np.int32))  # fmt: skip
    s = stack_rows([a, b], pad_id=0)
    np.testing.assert_array_equal(s.input_ids, [[0, 0, 1, 1, 1], [2, 2, 2, 2, 2]])
    np.testing.assert_array_equal(s.attention_mask[0], [0, 0, 1, 1, 1])
    np.testing.assert_array_equal(s.feature_attention_mask[0], [1, 1, 1, 1, 0, 0])


def test_the_start_of_a_stop_string_and_an_unfinished_character_areheld_back():
    assert held_back("the answer is fo", ("four",)) == 2
    assert held_back("the answer", ("four",)) == 0
    assert held_back("caf\ufffd", ()) == 1


@pytest.fixture(scope="module")
def phi4(tiny_phi4):
    return hr_jax.load(tiny_phi4[1])


def _phi4_request(model, extra_words: int, seed: int) -> hr_jax.Batch:
    return hr_jax.make_batch(model, [waveform(1.0, seed)], ["What is said here?" + " the" * extra_words])


def _served_tokens(model, batches: dict[str, hr_jax.Batch], max_tokens: int) -> dict[str, list[int]]:
    """Greedy replies of `batches`, all submitted at once to one scheduler (decoded side by side)."""
    events: dict[str, list] = {name: [] for name in batches}
    jobs = [_job(name, b, events[name], max_tokens=max_tokens) for name, b in batches.items()]
    scheduler = Scheduler(model, ServerMetrics(len(jobs)), max_batch=len(jobs), decode_steps=4)
    _run(scheduler, jobs, events)
    assert all(isinstance(e[-1], Finished) for e in events.values()), events
    return {job.id: job.tokens for job in jobs}


def test_a_phi4_reply_reaching_longropes_switch_is_prefilled_again_from_its_prompt_and_tokens(
    phi4, monkeypatch
):
    batch = _phi4_request(phi4, TINY_LONGROPE_SWITCH - 26, seed=31)
    switch = TINY_LONGROPE_SWITCH + 1 - batch.input_ids.shape[1]
    assert 1 < switch < 4  # inside the first decode turn (4 steps): its later tokens are dropped
    prefilled = []

    def spy(model, b, *args, **kwargs):
        prefilled.append(np.asarray(b.input_ids))
        return run_prefill(model, b, *args, **kwargs)

    monkeypatch.setattr(scheduler_module, "run_prefill", spy)
    served = _served_tokens(phi4, {"crossing": batch}, max_tokens=10)["crossing"]
    assert len(prefilled) == 2
    np.testing.assert_array_equal(prefilled[1], [list(batch.input_ids[0]) + served[:switch]])
    assert served == hr_jax.generate_batch(phi4.replace(stop_ids=()), batch, max_new_tokens=10).token_ids[0]
